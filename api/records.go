package api

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/zcc-harness/zcc/broker"
)

// Record helpers for Result.Data and for callers that build or read
// payloads outside an event (the controller's get_instances data, the
// fake agents' received configurations, the client's output). They use
// the profile's layouts, so nobody outside this package touches a record
// vector. Decode errors are *ValueError.

// InstancesValue returns instances as a vector of Instance records, the
// Result.Data of get_instances_response.
func (p *Profile) InstancesValue(instances []Instance) (broker.Value, error) {
	elems := make([]broker.Value, len(instances))
	for i, in := range instances {
		v, err := instanceValue(in)
		if err != nil {
			return broker.Value{}, err
		}
		elems[i] = v
	}
	return broker.Vector(elems...), nil
}

// DecodeInstances reads a vector of Instance records (get_instances data).
// An empty vector gives nil; none is an error, since the data is expected.
func (p *Profile) DecodeInstances(v broker.Value) ([]Instance, error) {
	return decodeRecordVector(v, "Instance", decodeInstance)
}

// NodeValue returns n as this profile's Node record.
func (p *Profile) NodeValue(n Node) (broker.Value, error) { return p.codec.nodeValue(n) }

// DecodeNode reads a Node record in this profile's layout.
func (p *Profile) DecodeNode(v broker.Value) (Node, error) { return p.codec.decodeNode(v) }

// ConfigurationValue returns c as a Configuration record.
func (p *Profile) ConfigurationValue(c Configuration) (broker.Value, error) {
	return configurationValue(p.codec, c)
}

// DecodeConfiguration reads a Configuration record. Instances and nodes
// come out in Broker's set order.
func (p *Profile) DecodeConfiguration(v broker.Value) (Configuration, error) {
	return decodeConfiguration(p.codec, v)
}

// ResultValue returns r as this profile's Result record.
func (p *Profile) ResultValue(r Result) broker.Value { return p.codec.resultValue(r) }

// DecodeResult reads a Result record in this profile's layout.
func (p *Profile) DecodeResult(v broker.Value) (Result, error) { return p.codec.decodeResult(v) }

// ResultsValue returns rs as a ResultVec.
func (p *Profile) ResultsValue(rs []Result) broker.Value { return resultsValue(p.codec, rs) }

// DecodeResults reads a ResultVec.
func (p *Profile) DecodeResults(v broker.Value) ([]Result, error) { return decodeResults(p.codec, v) }

// --- scalars -----------------------------------------------------------------

func wantKind(want broker.Kind, v broker.Value) *ValueError {
	return valueErrorf("want %s, got %s", want, v.Kind())
}

func asString(v broker.Value) (string, error) {
	s, ok := v.AsString()
	if !ok {
		return "", wantKind(broker.KindString, v)
	}
	return s, nil
}

func asBool(v broker.Value) (bool, error) {
	b, ok := v.AsBool()
	if !ok {
		return false, wantKind(broker.KindBoolean, v)
	}
	return b, nil
}

func asCount(v broker.Value) (uint64, error) {
	n, ok := v.AsCount()
	if !ok {
		return 0, wantKind(broker.KindCount, v)
	}
	return n, nil
}

func asInteger(v broker.Value) (int64, error) {
	n, ok := v.AsInteger()
	if !ok {
		return 0, wantKind(broker.KindInteger, v)
	}
	return n, nil
}

func asAddr(v broker.Value) (netip.Addr, error) {
	a, ok := v.AsAddress()
	if !ok {
		return netip.Addr{}, wantKind(broker.KindAddress, v)
	}
	return a, nil
}

func asPort(v broker.Value) (broker.Port, error) {
	p, ok := v.AsPort()
	if !ok {
		return broker.Port{}, wantKind(broker.KindPort, v)
	}
	return p, nil
}

func addrValue(a netip.Addr) (broker.Value, error) {
	if !a.IsValid() {
		return broker.Value{}, fmt.Errorf("address is not set")
	}
	return broker.Address(a), nil
}

func optValue[T any](o Opt[T], conv func(T) broker.Value) broker.Value {
	if !o.Set {
		return broker.None()
	}
	return conv(o.V)
}

// --- records -----------------------------------------------------------------

// record reads the fields of one record vector. Reads after the first
// failure return zero values, and err holds that failure with its field
// label, so a decoder is a straight sequence of reads.
type record struct {
	fields []string
	elems  []broker.Value
	err    error
}

// openRecord applies the record rules of spec §1.3: the value must be a
// vector with at least one element per declared field; extra trailing
// elements are ignored.
func openRecord(v broker.Value, name string, fields []string) (record, error) {
	elems, ok := v.AsVector()
	if !ok {
		return record{}, valueErrorf("want vector (record %s), got %s", name, v.Kind())
	}
	if len(elems) < len(fields) {
		return record{}, valueErrorf("record %s needs %d fields, got %d", name, len(fields), len(elems))
	}
	return record{fields: fields, elems: elems[:len(fields)]}, nil
}

// openRecordAtLeast is openRecord for a record whose last fields were
// added in a later Zeek version: a vector with at least required elements
// is accepted, and the missing trailing fields read as none (unset).
func openRecordAtLeast(v broker.Value, name string, fields []string, required int) (record, error) {
	elems, ok := v.AsVector()
	if !ok {
		return record{}, valueErrorf("want vector (record %s), got %s", name, v.Kind())
	}
	if len(elems) < required {
		return record{}, valueErrorf("record %s needs at least %d fields, got %d", name, required, len(elems))
	}
	if len(elems) >= len(fields) {
		return record{fields: fields, elems: elems[:len(fields)]}, nil
	}
	padded := make([]broker.Value, len(fields))
	copy(padded, elems)
	return record{fields: fields, elems: padded}, nil
}

// get returns field i, or false when the record already failed or the
// field is none. None is an error in a mandatory field (want names the
// field's type for the message) and means "unset" otherwise (&optional,
// &default).
func (r *record) get(i int, want broker.Kind, mandatory bool) (broker.Value, bool) {
	if r.err != nil {
		return broker.Value{}, false
	}
	v := r.elems[i]
	if v.IsNone() {
		if mandatory {
			r.fail(i, valueErrorf("none in mandatory field (want %s)", want))
		}
		return v, false
	}
	return v, true
}

func (r *record) fail(i int, err error) {
	if r.err == nil {
		r.err = inField(err, i, r.fields[i])
	}
}

func (r *record) check(i int, err error) {
	if err != nil {
		r.fail(i, err)
	}
}

func (r *record) str(i int) string {
	v, ok := r.get(i, broker.KindString, true)
	if !ok {
		return ""
	}
	s, err := asString(v)
	r.check(i, err)
	return s
}

// defStr reads a string &default=def field.
func (r *record) defStr(i int, def string) string {
	v, ok := r.get(i, broker.KindString, false)
	if !ok {
		return def
	}
	s, err := asString(v)
	r.check(i, err)
	return s
}

func (r *record) optStr(i int) Opt[string] {
	v, ok := r.get(i, broker.KindString, false)
	if !ok {
		return Opt[string]{}
	}
	s, err := asString(v)
	r.check(i, err)
	return Opt[string]{V: s, Set: err == nil}
}

// defBool reads a bool &default=def field.
func (r *record) defBool(i int, def bool) bool {
	v, ok := r.get(i, broker.KindBoolean, false)
	if !ok {
		return def
	}
	b, err := asBool(v)
	r.check(i, err)
	return b
}

func (r *record) optInt(i int) Opt[int64] {
	v, ok := r.get(i, broker.KindInteger, false)
	if !ok {
		return Opt[int64]{}
	}
	n, err := asInteger(v)
	r.check(i, err)
	return Opt[int64]{V: n, Set: err == nil}
}

func (r *record) addr(i int) netip.Addr {
	v, ok := r.get(i, broker.KindAddress, true)
	if !ok {
		return netip.Addr{}
	}
	a, err := asAddr(v)
	r.check(i, err)
	return a
}

func (r *record) port(i int) broker.Port {
	v, ok := r.get(i, broker.KindPort, true)
	if !ok {
		return broker.Port{}
	}
	p, err := asPort(v)
	r.check(i, err)
	return p
}

func (r *record) optPort(i int) Opt[broker.Port] {
	v, ok := r.get(i, broker.KindPort, false)
	if !ok {
		return Opt[broker.Port]{}
	}
	p, err := asPort(v)
	r.check(i, err)
	return Opt[broker.Port]{V: p, Set: err == nil}
}

// optStrings reads a `vector of string &optional` field.
func (r *record) optStrings(i int) Opt[[]string] {
	v, ok := r.get(i, broker.KindVector, false)
	if !ok {
		return Opt[[]string]{}
	}
	ss, err := decodeStrings(v)
	r.check(i, err)
	return Opt[[]string]{V: ss, Set: err == nil}
}

// optOptions reads a `set[Option] &optional` field.
func (r *record) optOptions(i int) Opt[[]Option] {
	v, ok := r.get(i, broker.KindSet, false)
	if !ok {
		return Opt[[]Option]{}
	}
	opts, err := decodeRecordSet(v, "Option", decodeOption, func(a, b Option) bool { return a == b })
	r.check(i, err)
	return Opt[[]Option]{V: opts, Set: err == nil}
}

// stringTable reads a `table[string] of string &default=table()` field;
// none and the empty table both give nil.
func (r *record) stringTable(i int) map[string]string {
	v, ok := r.get(i, broker.KindTable, false)
	if !ok {
		return nil
	}
	m, err := decodeStringTable(v)
	r.check(i, err)
	return m
}

// any reads an `any &optional` field: whatever value is there, none if unset.
func (r *record) any(i int) broker.Value {
	if r.err != nil {
		return broker.Value{}
	}
	return r.elems[i]
}

// clusterRole reads a mandatory Supervisor::ClusterRole field.
func (r *record) clusterRole(i int) ClusterRole {
	v, ok := r.get(i, broker.KindEnum, true)
	if !ok {
		return 0
	}
	role, err := decodeClusterRole(v)
	r.check(i, err)
	return role
}

// defClusterRole reads a Supervisor::ClusterRole &default=NONE field.
func (r *record) defClusterRole(i int) ClusterRole {
	v, ok := r.get(i, broker.KindEnum, false)
	if !ok {
		return ClusterRoleNone
	}
	role, err := decodeClusterRole(v)
	r.check(i, err)
	return role
}

// role reads a Management::Role &default=NONE field.
func (r *record) role(i int) Role {
	v, ok := r.get(i, broker.KindEnum, false)
	if !ok {
		return RoleNone
	}
	role, err := decodeRole(v)
	r.check(i, err)
	return role
}

// state reads a mandatory State field with the profile's spelling.
func (r *record) state(i int, c codec) State {
	v, ok := r.get(i, broker.KindEnum, true)
	if !ok {
		return 0
	}
	s, err := c.decodeState(v)
	r.check(i, err)
	return s
}

// --- collections --------------------------------------------------------------

// decodeStrings reads a vector of string; empty gives nil.
func decodeStrings(v broker.Value) ([]string, error) {
	elems, ok := v.AsVector()
	if !ok {
		return nil, wantKind(broker.KindVector, v)
	}
	return stringElems(elems)
}

// decodeStringSet reads a set[string] in Broker's order; empty gives nil.
func decodeStringSet(v broker.Value) ([]string, error) {
	elems, ok := v.AsSet()
	if !ok {
		return nil, wantKind(broker.KindSet, v)
	}
	return stringElems(elems)
}

func stringElems(elems []broker.Value) ([]string, error) {
	if len(elems) == 0 {
		return nil, nil
	}
	out := make([]string, len(elems))
	for i, e := range elems {
		s, ok := e.AsString()
		if !ok {
			return nil, within(wantKind(broker.KindString, e), "element "+strconv.Itoa(i))
		}
		out[i] = s
	}
	return out, nil
}

// decodeStringTable reads a table[string] of string; empty gives nil.
func decodeStringTable(v broker.Value) (map[string]string, error) {
	if v.Kind() != broker.KindTable {
		return nil, wantKind(broker.KindTable, v)
	}
	if v.Len() == 0 {
		return nil, nil
	}
	entries, _ := v.AsTable()
	m := make(map[string]string, len(entries))
	for i, e := range entries {
		k, ok := e.Key.AsString()
		if !ok {
			return nil, within(wantKind(broker.KindString, e.Key), "entry "+strconv.Itoa(i)+" key")
		}
		s, ok := e.Value.AsString()
		if !ok {
			return nil, within(wantKind(broker.KindString, e.Value), "entry "+strconv.Itoa(i)+" value")
		}
		m[k] = s
	}
	return m, nil
}

// decodeRecordVector reads a vector of records; empty gives nil.
func decodeRecordVector[T any](v broker.Value, label string, one func(broker.Value) (T, error)) ([]T, error) {
	elems, ok := v.AsVector()
	if !ok {
		return nil, wantKind(broker.KindVector, v)
	}
	return recordElems(elems, label, one, nil)
}

// decodeRecordSet reads a set of records in Broker's order; empty gives
// nil. Distinct wire elements can convert to the same record (extra
// trailing fields, none versus the default); like Zeek, which inserts the
// converted records into a set, the duplicates collapse. They are always
// adjacent in Broker's order because they agree on every field before the
// one that differs only by its wire form.
func decodeRecordSet[T any](v broker.Value, label string, one func(broker.Value) (T, error), equal func(a, b T) bool) ([]T, error) {
	elems, ok := v.AsSet()
	if !ok {
		return nil, wantKind(broker.KindSet, v)
	}
	return recordElems(elems, label, one, equal)
}

func recordElems[T any](elems []broker.Value, label string, one func(broker.Value) (T, error), equal func(a, b T) bool) ([]T, error) {
	if len(elems) == 0 {
		return nil, nil
	}
	out := make([]T, 0, len(elems))
	for i, e := range elems {
		t, err := one(e)
		if err != nil {
			return nil, inElement(err, label, i)
		}
		if equal != nil && len(out) > 0 && equal(out[len(out)-1], t) {
			continue
		}
		out = append(out, t)
	}
	return out, nil
}

// --- shared records (same layout in every dialect) -------------------------

var optionFields = []string{"name", "value"}

func optionValue(o Option) broker.Value {
	return broker.Vector(broker.String(o.Name), broker.String(o.Value))
}

func decodeOption(v broker.Value) (Option, error) {
	r, err := openRecord(v, "Option", optionFields)
	if err != nil {
		return Option{}, err
	}
	o := Option{Name: r.str(0), Value: r.str(1)}
	return o, r.err
}

func optionsValue(opts []Option) broker.Value {
	elems := make([]broker.Value, len(opts))
	for i, o := range opts {
		elems[i] = optionValue(o)
	}
	return broker.Set(elems...)
}

var instanceFields = []string{"name", "host", "listen_port"}

func instanceValue(in Instance) (broker.Value, error) {
	host, err := addrValue(in.Host)
	if err != nil {
		return broker.Value{}, fmt.Errorf("Instance %q: host: %w", in.Name, err)
	}
	return broker.Vector(broker.String(in.Name), host, optValue(in.ListenPort, broker.FromPort)), nil
}

func decodeInstance(v broker.Value) (Instance, error) {
	r, err := openRecord(v, "Instance", instanceFields)
	if err != nil {
		return Instance{}, err
	}
	in := Instance{Name: r.str(0), Host: r.addr(1), ListenPort: r.optPort(2)}
	return in, r.err
}

var configurationFields = []string{"id", "instances", "nodes"}

func configurationValue(c codec, cfg Configuration) (broker.Value, error) {
	instances := make([]broker.Value, len(cfg.Instances))
	for i, in := range cfg.Instances {
		v, err := instanceValue(in)
		if err != nil {
			return broker.Value{}, err
		}
		instances[i] = v
	}
	nodes := make([]broker.Value, len(cfg.Nodes))
	for i, n := range cfg.Nodes {
		v, err := c.nodeValue(n)
		if err != nil {
			return broker.Value{}, err
		}
		nodes[i] = v
	}
	return broker.Vector(broker.String(cfg.ID), broker.Set(instances...), broker.Set(nodes...)), nil
}

// decodeConfiguration reads [id, set[Instance], set[Node]]. All three
// fields are &default (P1 and mgmt): none gives "" for the id (Zeek would
// draw a fresh unique_id; callers that need an id assign one) and no
// instances or nodes.
func decodeConfiguration(c codec, v broker.Value) (Configuration, error) {
	r, err := openRecord(v, "Configuration", configurationFields)
	if err != nil {
		return Configuration{}, err
	}
	cfg := Configuration{ID: r.defStr(0, "")}
	if v, ok := r.get(1, broker.KindSet, false); ok {
		cfg.Instances, err = decodeRecordSet(v, "Instance", decodeInstance, func(a, b Instance) bool { return a == b })
		r.check(1, err)
	}
	if v, ok := r.get(2, broker.KindSet, false); ok {
		cfg.Nodes, err = decodeRecordSet(v, "Node", c.decodeNode, Node.Equal)
		r.check(2, err)
	}
	if r.err != nil {
		return Configuration{}, r.err
	}
	return cfg, nil
}

func resultsValue(c codec, rs []Result) broker.Value {
	elems := make([]broker.Value, len(rs))
	for i, r := range rs {
		elems[i] = c.resultValue(r)
	}
	return broker.Vector(elems...)
}

func decodeResults(c codec, v broker.Value) ([]Result, error) {
	return decodeRecordVector(v, "Result", c.decodeResult)
}

// --- enums shared by the dialects ----------------------------------------------

const clusterRolePrefix = "Supervisor::"

func clusterRoleValue(r ClusterRole) (broker.Value, error) {
	if int(r) >= len(clusterRoleNames) {
		return broker.Value{}, fmt.Errorf("cluster role %d does not exist", r)
	}
	return broker.Enum(clusterRolePrefix + clusterRoleNames[r]), nil
}

// decodeClusterRole reads a Supervisor::ClusterRole; Zeek looks enum names
// up verbatim, so the spelling must be exact.
func decodeClusterRole(v broker.Value) (ClusterRole, error) {
	name, ok := v.AsEnum()
	if !ok {
		return 0, wantKind(broker.KindEnum, v)
	}
	switch name {
	case "Supervisor::NONE":
		return ClusterRoleNone, nil
	case "Supervisor::LOGGER":
		return ClusterRoleLogger, nil
	case "Supervisor::MANAGER":
		return ClusterRoleManager, nil
	case "Supervisor::PROXY":
		return ClusterRoleProxy, nil
	case "Supervisor::WORKER":
		return ClusterRoleWorker, nil
	}
	return 0, valueErrorf("unknown Supervisor::ClusterRole %q (want Supervisor::NONE, LOGGER, MANAGER, PROXY or WORKER)", name)
}
