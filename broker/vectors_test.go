package broker

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// valueCase is one entry of testdata/vectors/broker/values.json.
type valueCase struct {
	Name      string          `json:"name"`
	Kind      string          `json:"kind"`
	Level     string          `json:"level"`
	JSON      *string         `json:"json"`
	JSONB64   string          `json:"json_b64"`
	Canonical *string         `json:"canonical"`
	Expect    json.RawMessage `json:"expect"`
	Notes     string          `json:"notes"`
}

func (c valueCase) input(t *testing.T) []byte {
	if c.JSON != nil {
		return []byte(*c.JSON)
	}
	b, err := base64.StdEncoding.DecodeString(c.JSONB64)
	if err != nil {
		t.Fatalf("%s: json_b64: %v", c.Name, err)
	}
	return b
}

func loadValueCases(t testing.TB) []valueCase {
	raw, err := os.ReadFile("../testdata/vectors/broker/values.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []valueCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	return cases
}

// TestValueVectors runs every case of the Broker data-model vectors:
// canonical and tolerant inputs decode to the expected value and re-encode
// to the canonical text; reject inputs fail with an error.
func TestValueVectors(t *testing.T) {
	cases := loadValueCases(t)
	if len(cases) < 100 {
		t.Fatalf("only %d vector cases loaded", len(cases))
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			in := c.input(t)
			if c.Level == "message" {
				checkMessageCase(t, c, in)
				return
			}
			v, err := DecodeValue(in)
			switch c.Kind {
			case "reject":
				if err == nil {
					t.Fatalf("decoded %s, want an error", v)
				}
				if !strings.Contains(err.Error(), "at byte") {
					t.Errorf("error %q does not say where", err)
				}
				return
			case "avoid":
				if err != nil {
					return // a decoder may refuse it
				}
				out, err := EncodeValue(v)
				if err != nil {
					t.Fatal(err)
				}
				if string(out) == string(in) {
					t.Errorf("encoder wrote the avoided form %s", out)
				}
				checkExpect(t, c, v)
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			checkExpect(t, c, v)
			out, err := EncodeValue(v)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if !json.Valid(out) {
				t.Fatalf("encoder wrote invalid JSON: %q", out)
			}
			if c.Canonical == nil {
				// Only the invalid-UTF-8 case: its bytes cannot survive
				// valid JSON, so the encoder writes U+FFFD instead.
				if !strings.Contains(string(out), "\uFFFD") {
					t.Errorf("invalid UTF-8 not replaced: %s", out)
				}
				return
			}
			back, err := DecodeValue(out)
			if err != nil || !Equal(back, v) {
				t.Fatalf("round trip: %v, %s != %s", err, back, v)
			}
			canon, err := DecodeValue([]byte(*c.Canonical))
			if err != nil {
				t.Fatalf("decode canonical: %v", err)
			}
			if !Equal(canon, v) {
				t.Fatalf("decoded %s, canonical is %s", v, canon)
			}
			// Byte-exact where Broker's own rendering is deterministic; reals
			// are compared numerically (Broker writes %f).
			if !strings.Contains(*c.Canonical, `"real"`) && string(out) != *c.Canonical {
				t.Errorf("encoded\n %s\nwant\n %s", out, *c.Canonical)
			}
		})
	}
}

func checkMessageCase(t *testing.T, c valueCase, in []byte) {
	f, err := DecodeFrame(in)
	if c.Kind == "reject" {
		if err == nil {
			t.Fatalf("decoded %s, want an error", f)
		}
		return
	}
	if err != nil {
		t.Fatalf("decode frame: %v", err)
	}
	var exp struct {
		Message  string `json:"message"`
		Event    string `json:"event"`
		NArgs    int    `json:"nargs"`
		Metadata []struct {
			Key  string `json:"key"`
			Type string `json:"type"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(c.Expect, &exp); err != nil {
		t.Fatal(err)
	}
	switch {
	case exp.Message != "":
		if f.Type != exp.Message {
			t.Fatalf("frame type %q, want %q", f.Type, exp.Message)
		}
	default:
		ev, err := f.Event()
		if err != nil {
			t.Fatalf("event: %v", err)
		}
		if ev.Name != exp.Event || len(ev.Args) != exp.NArgs {
			t.Fatalf("event %s with %d args, want %s with %d", ev.Name, len(ev.Args), exp.Event, exp.NArgs)
		}
		if (exp.Metadata == nil) != (ev.Metadata == nil) || len(exp.Metadata) != len(ev.Metadata) {
			t.Fatalf("metadata %v, want %v", ev.Metadata, exp.Metadata)
		}
		for i, m := range exp.Metadata {
			if strconv.FormatUint(ev.Metadata[i].Key, 10) != m.Key || ev.Metadata[i].Value.Kind().String() != m.Type {
				t.Errorf("metadata %d = %d/%s, want %s/%s", i, ev.Metadata[i].Key, ev.Metadata[i].Value.Kind(), m.Key, m.Type)
			}
		}
	}
	out, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if c.Canonical != nil {
		canon, err := DecodeFrame([]byte(*c.Canonical))
		if err != nil {
			t.Fatalf("decode canonical: %v", err)
		}
		if canon.Type != f.Type || canon.Topic != f.Topic || !Equal(canon.Data, f.Data) ||
			canon.Endpoint != f.Endpoint || canon.Version != f.Version || canon.Code != f.Code || canon.Context != f.Context {
			t.Fatalf("decoded %s, canonical is %s", f, canon)
		}
		if string(out) != *c.Canonical {
			t.Errorf("encoded\n %s\nwant\n %s", out, *c.Canonical)
		}
	}
}

// checkExpect compares a decoded value with the case's "expect" object.
func checkExpect(t *testing.T, c valueCase, v Value) {
	t.Helper()
	var exp map[string]any
	if err := json.Unmarshal(c.Expect, &exp); err != nil {
		t.Fatal(err)
	}
	if got := v.Kind().String(); got != exp["type"] {
		t.Fatalf("kind %s, want %v", got, exp["type"])
	}
	str := func(k string) string { s, _ := exp[k].(string); return s }
	switch v.Kind() {
	case KindBoolean:
		b, _ := v.AsBool()
		if b != exp["value"] {
			t.Errorf("got %v, want %v", b, exp["value"])
		}
	case KindCount:
		n, _ := v.AsCount()
		if strconv.FormatUint(n, 10) != str("value") {
			t.Errorf("got %d, want %s", n, str("value"))
		}
	case KindInteger:
		n, _ := v.AsInteger()
		if strconv.FormatInt(n, 10) != str("value") {
			t.Errorf("got %d, want %s", n, str("value"))
		}
	case KindReal:
		f, _ := v.AsReal()
		if want := exp["value"].(float64); math.Abs(f-want) > 1e-9 {
			t.Errorf("got %v, want %v", f, want)
		}
	case KindString:
		s, _ := v.AsString()
		if h, ok := exp["bytes_hex"].(string); ok {
			if hex.EncodeToString([]byte(s)) != h {
				t.Errorf("got bytes %x, want %s", s, h)
			}
		} else if s != str("value") {
			t.Errorf("got %q, want %q", s, str("value"))
		}
	case KindEnum:
		s, _ := v.AsEnum()
		if s != str("value") {
			t.Errorf("got %q, want %q", s, str("value"))
		}
	case KindAddress:
		a, _ := v.AsAddress()
		if a.String() != str("value") {
			t.Errorf("got %s, want %s", a, str("value"))
		}
	case KindSubnet:
		p, _ := v.AsSubnet()
		if p.String() != str("value") {
			t.Errorf("got %s, want %s", p, str("value"))
		}
	case KindPort:
		p, _ := v.AsPort()
		if float64(p.Number) != exp["number"] || p.Proto.String() != str("proto") {
			t.Errorf("got %s, want %v/%v", p, exp["number"], exp["proto"])
		}
	case KindTimestamp:
		ts, _ := v.AsTimestamp()
		if strconv.FormatInt(ts.UnixMilli(), 10) != str("unix_ms") {
			t.Errorf("got %d ms, want %s", ts.UnixMilli(), str("unix_ms"))
		}
	case KindTimespan:
		d, _ := v.AsTimespan()
		if strconv.FormatInt(int64(d/time.Nanosecond), 10) != str("ns") {
			t.Errorf("got %d ns, want %s", d, str("ns"))
		}
	case KindVector, KindSet, KindTable:
		if l, ok := exp["len"].(float64); ok && v.Len() != int(l) {
			t.Errorf("len %d, want %v", v.Len(), l)
		}
		if depth, ok := exp["depth"].(float64); ok {
			n := 0
			for x := v; x.Kind() == KindVector; n++ {
				elems, _ := x.AsVector()
				if len(elems) == 0 {
					n++
					break
				}
				x = elems[0]
			}
			if n < int(depth) {
				t.Errorf("depth %d, want %v", n, depth)
			}
		}
	}
}
