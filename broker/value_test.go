package broker

import (
	"encoding/json"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestConstructorsAndAccessors(t *testing.T) {
	a := netip.MustParseAddr("::ffff:10.1.2.3")
	cases := []struct {
		v    Value
		kind Kind
		text string
		wire string
	}{
		{None(), KindNone, "nil", `{"@data-type":"none","data":{}}`},
		{Bool(true), KindBoolean, "T", `{"@data-type":"boolean","data":true}`},
		{Count(7), KindCount, "7", `{"@data-type":"count","data":7}`},
		{Integer(-3), KindInteger, "-3", `{"@data-type":"integer","data":-3}`},
		{Real(1), KindReal, "1", `{"@data-type":"real","data":1.0}`},
		{Real(1e21), KindReal, "1e+21", `{"@data-type":"real","data":1000000000000000000000.0}`},
		{String("a\x00\v\"é"), KindString, `"a\x00\v\"é"`, `{"@data-type":"string","data":"a\u0000\u000b\"é"}`},
		{Address(a), KindAddress, "10.1.2.3", `{"@data-type":"address","data":"10.1.2.3"}`},
		{Subnet(netip.MustParsePrefix("10.9.8.7/8")), KindSubnet, "10.0.0.0/8", `{"@data-type":"subnet","data":"10.0.0.0/8"}`},
		{FromPort(TCPPort(2151)), KindPort, "2151/tcp", `{"@data-type":"port","data":"2151/tcp"}`},
		{FromPort(Port{}), KindPort, "0/?", `{"@data-type":"port","data":"0/?"}`},
		{Timestamp(time.UnixMilli(1500)), KindTimestamp, "1970-01-01T00:00:01.500Z", `{"@data-type":"timestamp","data":"1970-01-01T00:00:01.500"}`},
		{Timespan(90 * time.Second), KindTimespan, "1m30s", `{"@data-type":"timespan","data":"90s"}`},
		{Timespan(1500 * time.Microsecond), KindTimespan, "1.5ms", `{"@data-type":"timespan","data":"1500us"}`},
		{Enum("Supervisor::WORKER"), KindEnum, "Supervisor::WORKER", `{"@data-type":"enum-value","data":"Supervisor::WORKER"}`},
		{Strings("b", "a"), KindVector, `["b", "a"]`, `{"@data-type":"vector","data":[{"@data-type":"string","data":"b"},{"@data-type":"string","data":"a"}]}`},
		{StringSet("b", "a", "b"), KindSet, `{"a", "b"}`, `{"@data-type":"set","data":[{"@data-type":"string","data":"a"},{"@data-type":"string","data":"b"}]}`},
		{StringTable(map[string]string{"k": "v"}), KindTable, `{"k" -> "v"}`, `{"@data-type":"table","data":[{"key":{"@data-type":"string","data":"k"},"value":{"@data-type":"string","data":"v"}}]}`},
	}
	for _, c := range cases {
		if c.v.Kind() != c.kind {
			t.Errorf("%s: kind %s, want %s", c.text, c.v.Kind(), c.kind)
		}
		if got := c.v.String(); got != c.text {
			t.Errorf("String() = %s, want %s", got, c.text)
		}
		out, err := EncodeValue(c.v)
		if err != nil || string(out) != c.wire {
			t.Errorf("encode %s = %s, %v; want %s", c.text, out, err, c.wire)
		}
		back, err := DecodeValue(out)
		if err != nil || !Equal(back, c.v) {
			t.Errorf("round trip %s: %v, %s", c.text, err, back)
		}
	}
}

func TestTimestampWireHasMilliseconds(t *testing.T) {
	out, err := EncodeValue(Timestamp(time.UnixMilli(1500).Add(999 * time.Microsecond)))
	if err != nil || string(out) != `{"@data-type":"timestamp","data":"1970-01-01T00:00:01.500"}` {
		t.Fatalf("got %s, %v: Broker writes exactly three fraction digits", out, err)
	}
}

func TestAccessorsRejectOtherKinds(t *testing.T) {
	v := String("x")
	if _, ok := v.AsCount(); ok {
		t.Error("AsCount on a string reported ok")
	}
	if _, ok := v.AsPort(); ok {
		t.Error("AsPort on a string reported ok")
	}
	if _, ok := v.AsVector(); ok {
		t.Error("AsVector on a string reported ok")
	}
	if _, ok := Count(1).AsString(); ok {
		t.Error("AsString on a count reported ok")
	}
	if _, ok := Enum("E").AsString(); ok {
		t.Error("AsString on an enum reported ok")
	}
}

func TestSetAndTableCanonicalOrder(t *testing.T) {
	s1 := Set(Count(3), Count(1), Count(2), Count(1))
	s2 := Set(Count(2), Count(3), Count(1))
	if !Equal(s1, s2) || s1.Len() != 3 {
		t.Fatalf("sets differ: %s vs %s", s1, s2)
	}
	t1 := Table(TableEntry{String("b"), Count(2)}, TableEntry{String("a"), Count(1)}, TableEntry{String("a"), Count(9)})
	entries, _ := t1.AsTable()
	if len(entries) != 2 || entries[0].Key.str != "a" || entries[0].Value.bits != 1 {
		t.Fatalf("table = %s, want a->1 first and the first duplicate kept", t1)
	}
	if Equal(Vector(Count(1), Count(2)), Vector(Count(2), Count(1))) {
		t.Fatal("vectors compare as unordered")
	}
	if Compare(Count(1), Integer(0)) >= 0 {
		t.Fatal("kinds must order by Broker's variant order (count before integer)")
	}
	if !Equal(Real(math.NaN()), Real(math.NaN())) {
		t.Fatal("NaN must equal NaN so that a value equals itself")
	}
}

func TestEncodeRejectsNonFiniteReals(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := EncodeValue(Vector(Real(f))); err == nil {
			t.Errorf("encoding %v succeeded", f)
		}
	}
}

func TestDecodeErrorsNameThePlace(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"@data-type":"vector","data":[{"@data-type":"count","data":-1}]}`, `at byte 60 ($.data[0].data): count must be an unsigned integer, got -1`},
		{`{"@data-type":"table","data":[{"key":{"@data-type":"string","data":"k"}}]}`, `($.data[0]): table entry needs both "key" and "value"`},
		{`{"data":1,"@data-type":"port"}`, `($.data): port payload must be a string, got number`},
		{`{"@data-type":"port","data":"70000/tcp"}`, `invalid port "70000/tcp": number must be 0..65535`},
		{`{"@data-type":"timespan","data":"5"}`, `timespan "5" lacks a unit`},
		{`{"@data-type":"string","data":"x"} x`, `unexpected data after the JSON value`},
		{`{"@data-type":"string","data":"x","@data-type":"count"}`, `duplicate "@data-type" key`},
		{`{"@data-type":"none","data":null}`, `none payload must be {}, got null`},
		{strings.Repeat(`{"@data-type":"vector","data":[`, 100), `values nested deeper than 64 levels`},
	}
	for _, c := range cases {
		_, err := DecodeValue([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("DecodeValue(%.60s…) error = %v, want it to contain %q", c.in, err, c.want)
		}
	}
}

func TestDataBeforeTag(t *testing.T) {
	v, err := DecodeValue([]byte(`{"data":[{"data":"x","@data-type":"string"}],"@data-type":"set"}`))
	if err != nil || !Equal(v, StringSet("x")) {
		t.Fatalf("got %s, %v", v, err)
	}
	f, err := DecodeFrame([]byte(`{"data":{},"topic":"t","@data-type":"none","type":"data-message"}`))
	if err != nil || f.Topic != "t" || !f.Data.IsNone() {
		t.Fatalf("got %s, %v", f, err)
	}
}

func TestFrames(t *testing.T) {
	ev := NewEvent("X::y", String("r"), Count(1))
	f := EventFrame("zeek/t", ev)
	out, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"data-message","topic":"zeek/t","@data-type":"vector","data":[{"@data-type":"count","data":1},{"@data-type":"count","data":1},{"@data-type":"vector","data":[{"@data-type":"string","data":"X::y"},{"@data-type":"vector","data":[{"@data-type":"string","data":"r"},{"@data-type":"count","data":1}]}]}]}`
	if string(out) != want {
		t.Fatalf("encoded\n%s\nwant\n%s", out, want)
	}
	back, err := DecodeFrame(out)
	if err != nil {
		t.Fatal(err)
	}
	ev2, err := back.Event()
	if err != nil || ev2.Name != "X::y" || len(ev2.Args) != 2 || ev2.Metadata != nil {
		t.Fatalf("event %v, %v", ev2, err)
	}
	if s := back.String(); s != `zeek/t X::y("r", 1)` {
		t.Errorf("String() = %s", s)
	}

	bad := []struct{ in, ctx, detail string }{
		{`{"type":"data-message","@data-type":"count","data":1}`, ContextNoTopic, ""},
		{`{"type":"data-message",`, ContextBadJSON, "want a string, got end of input"},
		{`[1]`, ContextBadJSON, "frame must be a JSON object, got array"},
		{`{"type":"ack","endpoint":"e"}`, ContextBadJSON, `ack lacks "endpoint" or "version"`},
		{`{"type":"bogus","topic":"t"}`, ContextBadJSON, `unknown frame type "bogus"`},
		{`{"topic":1}`, ContextBadJSON, `"topic" must be a string, got number`},
	}
	for _, b := range bad {
		_, err := DecodeFrame([]byte(b.in))
		pe, ok := err.(*ProtocolError)
		if !ok || pe.Context != b.ctx || !strings.Contains(err.Error(), b.detail) {
			t.Errorf("DecodeFrame(%s) = %v, want context %q and %q", b.in, err, b.ctx, b.detail)
		}
	}
}

func TestEventFromValueRejects(t *testing.T) {
	cases := []struct {
		v    Value
		want string
	}{
		{String("hello"), "want a vector"},
		{Vector(Count(1), Count(1)), "want 3 elements"},
		{Vector(Count(2), Count(1), Vector(String("n"), Vector())), "format) must be count 1"},
		{Vector(Count(1), Count(5), Vector(String("n"), Vector())), "must be count 1 (event)"},
		{Vector(Count(1), Count(1), Vector(Count(3), Vector())), "(name) must be a string"},
		{Vector(Count(1), Count(1), Vector(String("n"), String("x"))), "(args) must be a vector"},
		{Vector(Count(1), Count(1), Vector(String("n"), Vector(), Vector(Vector(String("k"), Count(1))))), "key must be a count"},
	}
	for _, c := range cases {
		_, err := EventFromValue(c.v)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("EventFromValue(%s) = %v, want %q", c.v, err, c.want)
		}
	}
}

func TestHandshake(t *testing.T) {
	topics, err := DecodeHandshake([]byte(` ["a", "b/c"] `))
	if err != nil || len(topics) != 2 || topics[1] != "b/c" {
		t.Fatalf("got %q, %v", topics, err)
	}
	if string(EncodeHandshake([]string{"zeek/management/controller"})) != `["zeek/management/controller"]` {
		t.Fatal("handshake encoding differs from zeek-client's")
	}
	for in, ctx := range map[string]string{
		`{"foo":1}`: ContextNotAnArray,
		`[1]`:       ContextSubscriptionNotStr,
		`["a",{}]`:  ContextSubscriptionNotStr,
		`"x"`:       ContextNotAnArray,
		`["a"`:      ContextBadJSON,
	} {
		_, err := DecodeHandshake([]byte(in))
		pe, ok := err.(*ProtocolError)
		if !ok || pe.Context != ctx {
			t.Errorf("DecodeHandshake(%s) = %v, want context %q", in, err, ctx)
		}
	}
	if !MatchesPrefix("zeek/cluster-control/agent/a10", []string{"zeek/cluster-control/agent/a1"}) {
		t.Error("prefix matching must be a plain string prefix (a1 covers a10)")
	}
	if MatchesPrefix("zeek/x", []string{"zeek/y"}) {
		t.Error("unrelated prefix matched")
	}
}

func TestJSONMarshalerInterop(t *testing.T) {
	type wrap struct{ V Value }
	b, err := json.Marshal(wrap{V: Count(5)})
	if err != nil || string(b) != `{"V":{"@data-type":"count","data":5}}` {
		t.Fatalf("marshal: %s, %v", b, err)
	}
	var w wrap
	if err := json.Unmarshal(b, &w); err != nil || !Equal(w.V, Count(5)) {
		t.Fatalf("unmarshal: %v, %s", err, w.V)
	}
}

func TestPreencodedKeepsTheDatum(t *testing.T) {
	v := Vector(StringSet("b", "a"), StringTable(map[string]string{"k": "v"}), Count(3))
	want, err := EncodeValue(Vector(String("r"), v))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Preencoded(v)
	if err != nil {
		t.Fatal(err)
	}
	if !Equal(p, v) || p.String() != v.String() || p.Len() != 3 {
		t.Fatalf("preencoded value differs: %s vs %s", p, v)
	}
	got, err := EncodeValue(Vector(String("r"), p))
	if err != nil || string(got) != string(want) {
		t.Fatalf("encoding with a preencoded element:\n%s\nwant\n%s", got, want)
	}
	if _, err := Preencoded(Vector(Real(math.NaN()))); err == nil {
		t.Error("a value that cannot be encoded was preencoded")
	}
	if s, err := Preencoded(String("x")); err != nil || !Equal(s, String("x")) {
		t.Errorf("scalar: %s, %v", s, err)
	}
}
