package client

import (
	"math"
	"sort"
	"time"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// Plain JSON views of API values, for output meant to be read by people
// and scripts (`zcc client`, reports). They lose Broker's type tags on
// purpose; use broker.Value's MarshalJSON for the wire form.

// JSONValue converts a Broker value to plain JSON data: none is null,
// numbers and booleans are themselves, ports, addresses, subnets, enums,
// timestamps and timespans are strings, sets and vectors are arrays, and
// tables are objects when every key is a string (arrays of {"key",
// "value"} pairs otherwise).
func JSONValue(v broker.Value) any {
	switch v.Kind() {
	case broker.KindNone:
		return nil
	case broker.KindBoolean:
		b, _ := v.AsBool()
		return b
	case broker.KindCount:
		n, _ := v.AsCount()
		return n
	case broker.KindInteger:
		n, _ := v.AsInteger()
		return n
	case broker.KindReal:
		f, _ := v.AsReal()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return v.String() // JSON has no NaN or infinity
		}
		return f
	case broker.KindString:
		s, _ := v.AsString()
		return s
	case broker.KindAddress:
		a, _ := v.AsAddress()
		return a.String()
	case broker.KindSubnet:
		p, _ := v.AsSubnet()
		return p.String()
	case broker.KindPort:
		p, _ := v.AsPort()
		return p.String()
	case broker.KindTimestamp:
		t, _ := v.AsTimestamp()
		return t.UTC().Format(time.RFC3339Nano)
	case broker.KindTimespan:
		d, _ := v.AsTimespan()
		return d.String()
	case broker.KindEnum:
		e, _ := v.AsEnum()
		return e
	case broker.KindSet:
		elems, _ := v.AsSet()
		return jsonList(elems)
	case broker.KindVector:
		elems, _ := v.AsVector()
		return jsonList(elems)
	case broker.KindTable:
		entries, _ := v.AsTable()
		obj := make(map[string]any, len(entries))
		for _, e := range entries {
			k, ok := e.Key.AsString()
			if !ok {
				pairs := make([]any, len(entries))
				for i, e := range entries {
					pairs[i] = map[string]any{"key": JSONValue(e.Key), "value": JSONValue(e.Value)}
				}
				return pairs
			}
			obj[k] = JSONValue(e.Value)
		}
		return obj
	}
	return v.String()
}

func jsonList(elems []broker.Value) []any {
	out := make([]any, len(elems))
	for i, e := range elems {
		out[i] = JSONValue(e)
	}
	return out
}

// ResultJSON renders a Result as an object with its six fields; an unset
// node is null.
func ResultJSON(r api.Result) map[string]any {
	var node any
	if n, ok := r.Node.Get(); ok {
		node = n
	}
	return map[string]any{
		"reqid":    r.Reqid,
		"instance": r.Instance,
		"success":  r.Success,
		"data":     JSONValue(r.Data),
		"error":    r.Error,
		"node":     node,
	}
}

// InstancesJSON renders instances as zeek-client 0.2's get-instances
// prints them: sorted by name, each {"addr", "name", "port"} with the port
// as "2151/tcp", or null for an agent that connects to the controller.
func InstancesJSON(instances []api.Instance) []any {
	sorted := append([]api.Instance(nil), instances...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	out := make([]any, len(sorted))
	for i, in := range sorted {
		var port any
		if p, ok := in.ListenPort.Get(); ok {
			port = p.String()
		}
		out[i] = map[string]any{"addr": in.Host.Unmap().String(), "name": in.Name, "port": port}
	}
	return out
}
