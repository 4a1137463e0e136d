package api

import (
	"net/netip"
	"reflect"
	"slices"

	"github.com/zcc-harness/zcc/broker"
)

// Equality with the wire's meaning, for tests and for fake agents that
// check what they received: a Configuration's instances and nodes and a
// Node's options compare as sets, nil and empty collections are the same,
// an unset Opt ignores its V, and Result.Data compares as Broker data
// (broker.Equal). Other slices compare in order, including the []string
// that travel as sets (NotifyAgentsReady.Instances): Decode returns those
// in Broker's sorted order, so sort an expected list before comparing.

// Equal reports whether two Instances are the same record.
func (in Instance) Equal(o Instance) bool {
	return in.Name == o.Name && in.Host == o.Host && optEqual(in.ListenPort, o.ListenPort)
}

// Equal reports whether two Nodes are the same record. Options compare as
// a set, since they travel as one.
func (n Node) Equal(o Node) bool {
	return n.Name == o.Name && n.Instance == o.Instance &&
		optEqual(n.Port, o.Port) && n.Role == o.Role && n.State == o.State &&
		n.Scripts.Set == o.Scripts.Set && (!n.Scripts.Set || slices.Equal(n.Scripts.V, o.Scripts.V)) &&
		n.Options.Set == o.Options.Set && (!n.Options.Set || sameSet(n.Options.V, o.Options.V, optionKey, optionEq)) &&
		optEqual(n.Interface, o.Interface) && optEqual(n.CPUAffinity, o.CPUAffinity) &&
		mapsEqual(n.Env, o.Env) && optEqual(n.MetricsPort, o.MetricsPort)
}

// Equal reports whether two Configurations are the same, ignoring the
// order of instances and nodes (and duplicates, which a set cannot hold).
func (c Configuration) Equal(o Configuration) bool {
	return c.ID == o.ID &&
		sameSet(c.Instances, o.Instances, func(in Instance) string { return in.Name }, Instance.Equal) &&
		sameSet(c.Nodes, o.Nodes, func(n Node) string { return n.Name }, Node.Equal)
}

// Equal reports whether two Results are the same; Data compares as Broker
// data.
func (r Result) Equal(o Result) bool {
	return r.Reqid == o.Reqid && r.Instance == o.Instance && r.Success == o.Success &&
		broker.Equal(r.Data, o.Data) && r.Error == o.Error && optEqual(r.Node, o.Node)
}

// MessagesEqual reports whether two messages are the same event with the
// same content, by the rules above. It is meant for tests and recorded
// transcripts, not for hot paths.
func MessagesEqual(a, b Message) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return deepEqual(reflect.ValueOf(a), reflect.ValueOf(b))
}

func optEqual[T comparable](a, b Opt[T]) bool {
	return a.Set == b.Set && (!a.Set || a.V == b.V)
}

func optionKey(o Option) string { return o.Name }
func optionEq(a, b Option) bool { return a == b }
func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// sameSet reports whether a and b hold the same elements, as sets: each
// side is grouped by key and deduplicated, then the groups must match.
func sameSet[T any](a, b []T, key func(T) string, eq func(T, T) bool) bool {
	ga, gb := groupUnique(a, key, eq), groupUnique(b, key, eq)
	if len(ga) != len(gb) {
		return false
	}
	for k, xs := range ga {
		ys, ok := gb[k]
		if !ok || len(xs) != len(ys) {
			return false
		}
		for _, x := range xs {
			if !slices.ContainsFunc(ys, func(y T) bool { return eq(x, y) }) {
				return false
			}
		}
	}
	return true
}

func groupUnique[T any](xs []T, key func(T) string, eq func(T, T) bool) map[string][]T {
	g := make(map[string][]T, len(xs))
	for _, x := range xs {
		k := key(x)
		if !slices.ContainsFunc(g[k], func(y T) bool { return eq(x, y) }) {
			g[k] = append(g[k], x)
		}
	}
	return g
}

// optional lets deepEqual recognise any Opt[T] without knowing T.
type optional interface{ optIsSet() bool }

func (o Opt[T]) optIsSet() bool { return o.Set }

var (
	typeValue  = reflect.TypeFor[broker.Value]()
	typeConfig = reflect.TypeFor[Configuration]()
	typeNode   = reflect.TypeFor[Node]()
	typeResult = reflect.TypeFor[Result]()
	typeInst   = reflect.TypeFor[Instance]()
	typeAddr   = reflect.TypeFor[netip.Addr]()
)

func deepEqual(x, y reflect.Value) bool {
	if x.Type() != y.Type() {
		return false
	}
	switch x.Type() {
	case typeValue:
		return broker.Equal(x.Interface().(broker.Value), y.Interface().(broker.Value))
	case typeConfig:
		return x.Interface().(Configuration).Equal(y.Interface().(Configuration))
	case typeNode:
		return x.Interface().(Node).Equal(y.Interface().(Node))
	case typeResult:
		return x.Interface().(Result).Equal(y.Interface().(Result))
	case typeInst:
		return x.Interface().(Instance).Equal(y.Interface().(Instance))
	case typeAddr:
		return x.Interface().(netip.Addr) == y.Interface().(netip.Addr)
	}
	switch x.Kind() {
	case reflect.Pointer, reflect.Interface:
		if x.IsNil() || y.IsNil() {
			return x.IsNil() && y.IsNil()
		}
		return deepEqual(x.Elem(), y.Elem())
	case reflect.Struct:
		if o, ok := x.Interface().(optional); ok {
			ySet := y.Interface().(optional).optIsSet()
			if o.optIsSet() != ySet {
				return false
			}
			if !ySet {
				return true
			}
		}
		for i := 0; i < x.NumField(); i++ {
			if !x.Type().Field(i).IsExported() {
				return x.Comparable() && x.Equal(y)
			}
			if !deepEqual(x.Field(i), y.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice, reflect.Array:
		if x.Len() != y.Len() {
			return false
		}
		for i := 0; i < x.Len(); i++ {
			if !deepEqual(x.Index(i), y.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if x.Len() != y.Len() {
			return false
		}
		for it := x.MapRange(); it.Next(); {
			w := y.MapIndex(it.Key())
			if !w.IsValid() || !deepEqual(it.Value(), w) {
				return false
			}
		}
		return true
	default:
		return x.Equal(y)
	}
}
