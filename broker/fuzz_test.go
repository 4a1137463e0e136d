package broker

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// seedFromVectors adds every golden vector input to the fuzz corpus.
func seedFromVectors(f *testing.F, level string) {
	for _, c := range loadValueCases(f) {
		if c.Level != level {
			continue
		}
		if c.JSON != nil {
			f.Add([]byte(*c.JSON))
		}
	}
}

// FuzzDecodeValue: decoding never panics; whatever decodes re-encodes to
// valid JSON that decodes to a value whose encoding is stable.
func FuzzDecodeValue(f *testing.F) {
	seedFromVectors(f, "value")
	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := DecodeValue(in)
		if err != nil {
			if _, ok := err.(*DecodeError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		out, err := EncodeValue(v)
		if err != nil {
			t.Fatalf("encode %s: %v", v, err)
		}
		if !json.Valid(out) {
			t.Fatalf("encoder wrote invalid JSON %q", out)
		}
		v2, err := DecodeValue(out)
		if err != nil {
			t.Fatalf("re-decode %q: %v", out, err)
		}
		out2, err := EncodeValue(v2)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("encoding not stable:\n%s\n%s", out, out2)
		}
		_ = v.String()
	})
}

// FuzzDecodeFrame: frames decode without panics and data messages
// round-trip through the encoder; event interpretation never panics.
func FuzzDecodeFrame(f *testing.F) {
	seedFromVectors(f, "message")
	f.Add([]byte(`{"type":"ack","endpoint":"e","version":"v"}`))
	f.Add([]byte(`{"type":"error","code":"c","context":"x"}`))
	f.Add([]byte(`{"data":{},"@data-type":"none","topic":"t"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		fr, err := DecodeFrame(in)
		if err != nil {
			if _, ok := err.(*ProtocolError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		_, _ = fr.Event()
		_ = fr.String()
		out, err := fr.Encode()
		if err != nil {
			t.Fatalf("encode %s: %v", fr, err)
		}
		if !json.Valid(out) {
			t.Fatalf("encoder wrote invalid JSON %q", out)
		}
		fr2, err := DecodeFrame(out)
		if err != nil {
			t.Fatalf("re-decode %q: %v", out, err)
		}
		// Bytes that are not UTF-8 become U+FFFD on the way out (valid JSON
		// cannot carry them), so only valid strings must come back equal.
		same := func(a, b string) bool { return !utf8.ValidString(a) || a == b }
		if fr2.Type != fr.Type || !same(fr.Topic, fr2.Topic) || !same(fr.Code, fr2.Code) || !same(fr.Endpoint, fr2.Endpoint) ||
			!same(fr.Version, fr2.Version) || !same(fr.Context, fr2.Context) {
			t.Fatalf("frame changed: %s -> %s", fr, fr2)
		}
	})
}

// FuzzDecodeHandshake: subscription lists decode without panics and
// re-encode to the same topics.
func FuzzDecodeHandshake(f *testing.F) {
	for _, s := range []string{`[]`, `["zeek/management/controller"]`, `{"foo":1}`, `[1]`, `["a","b\u0000"]`, `[`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		topics, err := DecodeHandshake(in)
		if err != nil {
			if _, ok := err.(*ProtocolError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		back, err := DecodeHandshake(EncodeHandshake(topics))
		if err != nil || len(back) != len(topics) {
			t.Fatalf("round trip %q: %v %q", topics, err, back)
		}
	})
}
