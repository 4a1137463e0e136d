// Package broker is zcc's wire layer: Broker's WebSocket JSON data model
// (Value and its exact encoding), Zeek events, WebSocket frames, a client
// connection (Conn) and a server side (Hub) for /v1/messages/json.
//
// Everything else in zcc — the reference controller, the fake agents, the
// suites and the CLI — speaks through this package, so the encoding lives in
// exactly one place. The encoder writes what Broker writes; the decoder is
// strict about types and tolerant of the invalid JSON real Broker emits
// (\v escapes, raw control bytes, non-UTF-8 bytes inside strings).
package broker

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Kind is one of Broker's 15 data types, in Broker's variant order.
type Kind uint8

// The Broker data kinds. Their order is Broker's variant order, which is also
// the first criterion of Compare.
const (
	KindNone Kind = iota
	KindBoolean
	KindCount
	KindInteger
	KindReal
	KindString
	KindAddress
	KindSubnet
	KindPort
	KindTimestamp
	KindTimespan
	KindEnum
	KindSet
	KindTable
	KindVector
)

var kindTags = [...]string{
	KindNone:      "none",
	KindBoolean:   "boolean",
	KindCount:     "count",
	KindInteger:   "integer",
	KindReal:      "real",
	KindString:    "string",
	KindAddress:   "address",
	KindSubnet:    "subnet",
	KindPort:      "port",
	KindTimestamp: "timestamp",
	KindTimespan:  "timespan",
	KindEnum:      "enum-value",
	KindSet:       "set",
	KindTable:     "table",
	KindVector:    "vector",
}

// String returns the kind's wire tag (the "@data-type" value), e.g. "enum-value".
func (k Kind) String() string {
	if int(k) < len(kindTags) {
		return kindTags[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// KindFromTag maps a wire tag ("count", "enum-value", …) to its Kind.
func KindFromTag(tag string) (Kind, bool) {
	for k, t := range kindTags {
		if t == tag {
			return Kind(k), true
		}
	}
	return 0, false
}

func kindFromTagBytes(tag []byte) (Kind, bool) {
	for k, t := range kindTags {
		if t == string(tag) {
			return Kind(k), true
		}
	}
	return 0, false
}

// Protocol is the transport protocol of a Port.
type Protocol uint8

// Port protocols, numbered as in Broker (unknown=0, tcp=1, udp=2, icmp=3).
const (
	ProtoUnknown Protocol = iota
	ProtoTCP
	ProtoUDP
	ProtoICMP
)

// String returns the protocol as written on the wire ("tcp", "udp", "icmp", "?").
func (p Protocol) String() string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoICMP:
		return "icmp"
	default:
		return "?"
	}
}

// Port is a transport port: a number and a protocol, written "2151/tcp".
type Port struct {
	Number uint16
	Proto  Protocol
}

// TCPPort returns n/tcp.
func TCPPort(n uint16) Port { return Port{Number: n, Proto: ProtoTCP} }

// String renders the port as Broker writes it: "2151/tcp", "0/?".
func (p Port) String() string {
	return strconv.Itoa(int(p.Number)) + "/" + p.Proto.String()
}

// ParsePort parses "N/proto" with proto tcp, udp, icmp, ? or unknown.
func ParsePort(s string) (Port, error) {
	num, proto, ok := strings.Cut(s, "/")
	if !ok {
		return Port{}, fmt.Errorf("port %q: want N/proto", s)
	}
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil || num == "" || (len(num) > 1 && num[0] == '0') || num[0] == '+' {
		return Port{}, fmt.Errorf("port %q: number must be 0..65535", s)
	}
	var p Protocol
	switch proto {
	case "tcp":
		p = ProtoTCP
	case "udp":
		p = ProtoUDP
	case "icmp":
		p = ProtoICMP
	case "?", "unknown":
		p = ProtoUnknown
	default:
		return Port{}, fmt.Errorf("port %q: protocol must be tcp, udp, icmp or ?", s)
	}
	return Port{Number: uint16(n), Proto: p}, nil
}

// TableEntry is one key/value pair of a table.
type TableEntry struct {
	Key   Value
	Value Value
}

// Value is one Broker datum. The zero Value is none.
//
// Values are immutable once built: constructors copy what they are given,
// and accessors of containers return slices the caller must not modify.
// Sets are kept sorted and free of duplicates, and tables sorted by key with
// unique keys, so that equal sets and tables have equal representations.
type Value struct {
	kind Kind
	// bits holds boolean (0/1), count, integer (two's complement), real
	// (IEEE bits), timestamp (Unix ns), timespan (ns), port (number<<8 |
	// proto) and the subnet prefix length.
	bits uint64
	// str holds string and enum-value text; for a container it may hold
	// the container's cached JSON encoding (see Preencoded).
	str  string
	addr netip.Addr // address, subnet
	// elems holds vector and set elements; a table stores key0, value0,
	// key1, value1, … so that all containers share one slice field.
	elems []Value
}

// None returns the none value (an unset optional field on the wire).
func None() Value { return Value{} }

// Bool returns a boolean.
func Bool(b bool) Value {
	v := Value{kind: KindBoolean}
	if b {
		v.bits = 1
	}
	return v
}

// Count returns an unsigned 64-bit count.
func Count(n uint64) Value { return Value{kind: KindCount, bits: n} }

// Integer returns a signed 64-bit integer.
func Integer(i int64) Value { return Value{kind: KindInteger, bits: uint64(i)} }

// Real returns a double.
func Real(f float64) Value { return Value{kind: KindReal, bits: math.Float64bits(f)} }

// String returns a string. Go strings may hold any bytes, as Zeek strings do.
func String(s string) Value { return Value{kind: KindString, str: s} }

// Address returns an address. IPv4-mapped IPv6 addresses are stored as IPv4,
// which is how Broker renders them.
func Address(a netip.Addr) Value {
	return Value{kind: KindAddress, addr: a.Unmap().WithZone("")}
}

// Subnet returns a subnet; host bits are masked off as Broker does.
func Subnet(p netip.Prefix) Value {
	p = p.Masked()
	return Value{kind: KindSubnet, addr: p.Addr(), bits: uint64(p.Bits())}
}

// FromPort returns a port value.
func FromPort(p Port) Value {
	return Value{kind: KindPort, bits: uint64(p.Number)<<8 | uint64(p.Proto)}
}

// Timestamp returns a point in time (nanosecond precision; the wire carries
// milliseconds).
func Timestamp(t time.Time) Value { return Value{kind: KindTimestamp, bits: uint64(t.UnixNano())} }

// Timespan returns a duration.
func Timespan(d time.Duration) Value { return Value{kind: KindTimespan, bits: uint64(d)} }

// Enum returns an enum value. Zeek enum names travel fully qualified
// ("Supervisor::MANAGER").
func Enum(name string) Value { return Value{kind: KindEnum, str: name} }

// Vector returns a vector holding a copy of elems. Records travel as vectors
// with one element per field, in declaration order.
func Vector(elems ...Value) Value {
	return Value{kind: KindVector, elems: append(make([]Value, 0, len(elems)), elems...)}
}

// Set returns a set of elems, sorted, with duplicates removed.
func Set(elems ...Value) Value {
	return newSetOwned(append(make([]Value, 0, len(elems)), elems...))
}

// newSetOwned takes ownership of elems.
func newSetOwned(elems []Value) Value {
	sortValues(elems)
	out := elems[:0]
	for i, e := range elems {
		if i > 0 && Compare(out[len(out)-1], e) == 0 {
			continue
		}
		out = append(out, e)
	}
	return Value{kind: KindSet, elems: out}
}

// Table returns a table of entries, sorted by key. When a key repeats, the
// first entry wins (as with Broker's map insertion).
func Table(entries ...TableEntry) Value {
	flat := make([]Value, 0, 2*len(entries))
	for _, e := range entries {
		flat = append(flat, e.Key, e.Value)
	}
	return newTableOwned(flat)
}

// newTableOwned takes ownership of flat (key, value, key, value, …).
func newTableOwned(flat []Value) Value {
	sortPairs(flat)
	out := flat[:0]
	for i := 0; i+1 < len(flat); i += 2 {
		if len(out) > 0 && Compare(out[len(out)-2], flat[i]) == 0 {
			continue
		}
		out = append(out, flat[i], flat[i+1])
	}
	return Value{kind: KindTable, elems: out}
}

// StringTable builds a table[string] of string from a map.
func StringTable(m map[string]string) Value {
	flat := make([]Value, 0, 2*len(m))
	for k, v := range m {
		flat = append(flat, String(k), String(v))
	}
	return newTableOwned(flat)
}

// Strings builds a vector of strings.
func Strings(ss ...string) Value {
	elems := make([]Value, len(ss))
	for i, s := range ss {
		elems[i] = String(s)
	}
	return Value{kind: KindVector, elems: elems}
}

// StringSet builds a set of strings.
func StringSet(ss ...string) Value {
	elems := make([]Value, len(ss))
	for i, s := range ss {
		elems[i] = String(s)
	}
	return newSetOwned(elems)
}

// Kind reports the value's type.
func (v Value) Kind() Kind { return v.kind }

// IsNone reports whether v is none.
func (v Value) IsNone() bool { return v.kind == KindNone }

// AsBool returns the boolean, if v is one.
func (v Value) AsBool() (bool, bool) { return v.bits != 0, v.kind == KindBoolean }

// AsCount returns the count, if v is one.
func (v Value) AsCount() (uint64, bool) { return v.bits, v.kind == KindCount }

// AsInteger returns the integer, if v is one.
func (v Value) AsInteger() (int64, bool) { return int64(v.bits), v.kind == KindInteger }

// AsReal returns the real, if v is one.
func (v Value) AsReal() (float64, bool) { return math.Float64frombits(v.bits), v.kind == KindReal }

// AsString returns the string, if v is one.
func (v Value) AsString() (string, bool) {
	if v.kind != KindString {
		return "", false
	}
	return v.str, true
}

// AsEnum returns the enum name, if v is one.
func (v Value) AsEnum() (string, bool) {
	if v.kind != KindEnum {
		return "", false
	}
	return v.str, true
}

// AsAddress returns the address, if v is one.
func (v Value) AsAddress() (netip.Addr, bool) {
	if v.kind != KindAddress {
		return netip.Addr{}, false
	}
	return v.addr, true
}

// AsSubnet returns the subnet, if v is one.
func (v Value) AsSubnet() (netip.Prefix, bool) {
	if v.kind != KindSubnet {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(v.addr, int(v.bits)), true
}

// AsPort returns the port, if v is one.
func (v Value) AsPort() (Port, bool) {
	if v.kind != KindPort {
		return Port{}, false
	}
	return Port{Number: uint16(v.bits >> 8), Proto: Protocol(v.bits & 0xff)}, true
}

// AsTimestamp returns the time (UTC), if v is one.
func (v Value) AsTimestamp() (time.Time, bool) {
	if v.kind != KindTimestamp {
		return time.Time{}, false
	}
	return time.Unix(0, int64(v.bits)).UTC(), true
}

// AsTimespan returns the duration, if v is one.
func (v Value) AsTimespan() (time.Duration, bool) {
	return time.Duration(int64(v.bits)), v.kind == KindTimespan
}

// AsVector returns the elements, if v is a vector. Do not modify them.
func (v Value) AsVector() ([]Value, bool) {
	if v.kind != KindVector {
		return nil, false
	}
	return v.elems, true
}

// AsSet returns the elements in sorted order, if v is a set. Do not modify them.
func (v Value) AsSet() ([]Value, bool) {
	if v.kind != KindSet {
		return nil, false
	}
	return v.elems, true
}

// AsTable returns the entries sorted by key, if v is a table.
func (v Value) AsTable() ([]TableEntry, bool) {
	if v.kind != KindTable {
		return nil, false
	}
	out := make([]TableEntry, len(v.elems)/2)
	for i := range out {
		out[i] = TableEntry{Key: v.elems[2*i], Value: v.elems[2*i+1]}
	}
	return out, true
}

// Len returns the number of elements of a container (entries for a table),
// and 0 for scalars.
func (v Value) Len() int {
	if v.kind == KindTable {
		return len(v.elems) / 2
	}
	return len(v.elems)
}

// Equal reports whether a and b are the same datum. Sets and tables compare
// as unordered collections; reals compare numerically (NaN equals NaN, so
// that a decoded value always equals itself).
func Equal(a, b Value) bool { return Compare(a, b) == 0 }

// Equal is shorthand for Equal(v, o).
func (v Value) Equal(o Value) bool { return Compare(v, o) == 0 }

// Compare orders values totally: first by kind (Broker's variant order), then
// by content. Containers compare element by element, then by length.
func Compare(a, b Value) int {
	if a.kind != b.kind {
		return cmpOrdered(a.kind, b.kind)
	}
	switch a.kind {
	case KindNone:
		return 0
	case KindBoolean, KindCount, KindPort:
		return cmpOrdered(a.bits, b.bits)
	case KindInteger, KindTimestamp, KindTimespan:
		return cmpOrdered(int64(a.bits), int64(b.bits))
	case KindReal:
		fa, fb := math.Float64frombits(a.bits), math.Float64frombits(b.bits)
		switch {
		case fa < fb:
			return -1
		case fa > fb:
			return 1
		case fa == fb:
			return 0
		}
		// At least one NaN: NaNs sort first and equal each other.
		an, bn := math.IsNaN(fa), math.IsNaN(fb)
		switch {
		case an && bn:
			return 0
		case an:
			return -1
		default:
			return 1
		}
	case KindString, KindEnum:
		return strings.Compare(a.str, b.str)
	case KindAddress:
		return a.addr.Compare(b.addr)
	case KindSubnet:
		if c := a.addr.Compare(b.addr); c != 0 {
			return c
		}
		return cmpOrdered(a.bits, b.bits)
	default: // containers
		n := min(len(a.elems), len(b.elems))
		for i := 0; i < n; i++ {
			if c := Compare(a.elems[i], b.elems[i]); c != 0 {
				return c
			}
		}
		return cmpOrdered(len(a.elems), len(b.elems))
	}
}

func cmpOrdered[T ~uint8 | ~uint64 | ~int64 | ~int](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// String renders v for humans, in the spirit of Zeek's own rendering:
// nil, T/F, quoted strings, 2151/tcp, [vector], {set}, {key -> value}.
func (v Value) String() string {
	var b strings.Builder
	v.writeText(&b)
	return b.String()
}

func (v Value) writeText(b *strings.Builder) {
	switch v.kind {
	case KindNone:
		b.WriteString("nil")
	case KindBoolean:
		if v.bits != 0 {
			b.WriteString("T")
		} else {
			b.WriteString("F")
		}
	case KindCount:
		b.WriteString(strconv.FormatUint(v.bits, 10))
	case KindInteger:
		b.WriteString(strconv.FormatInt(int64(v.bits), 10))
	case KindReal:
		b.WriteString(strconv.FormatFloat(math.Float64frombits(v.bits), 'g', -1, 64))
	case KindString:
		b.WriteString(strconv.Quote(v.str))
	case KindEnum:
		b.WriteString(v.str)
	case KindAddress:
		b.WriteString(v.addr.String())
	case KindSubnet:
		p, _ := v.AsSubnet()
		b.WriteString(p.String())
	case KindPort:
		p, _ := v.AsPort()
		b.WriteString(p.String())
	case KindTimestamp:
		t, _ := v.AsTimestamp()
		b.WriteString(t.Format("2006-01-02T15:04:05.000Z"))
	case KindTimespan:
		d, _ := v.AsTimespan()
		b.WriteString(d.String())
	case KindVector, KindSet:
		open, closing := "[", "]"
		if v.kind == KindSet {
			open, closing = "{", "}"
		}
		b.WriteString(open)
		for i, e := range v.elems {
			if i > 0 {
				b.WriteString(", ")
			}
			e.writeText(b)
		}
		b.WriteString(closing)
	case KindTable:
		b.WriteString("{")
		for i := 0; i+1 < len(v.elems); i += 2 {
			if i > 0 {
				b.WriteString(", ")
			}
			v.elems[i].writeText(b)
			b.WriteString(" -> ")
			v.elems[i+1].writeText(b)
		}
		b.WriteString("}")
	}
}
