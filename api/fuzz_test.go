package api_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// FuzzDecodeEvent decodes arbitrary frame text into a typed cc42 message.
// Whatever decodes must encode again, and decoding that encoding must give
// the identical message (reflect.DeepEqual: same order, same nil-ness), so
// the typed form loses nothing the codec claims to keep. Seeded with every
// cc42 vector frame.
func FuzzDecodeEvent(f *testing.F) {
	for _, e := range loadVectors(f) {
		compact, err := json.Marshal(e.Frame)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(compact)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := broker.DecodeFrame(data)
		if err != nil {
			return
		}
		ev, err := fr.Event()
		if err != nil {
			return
		}
		m, err := api.CC42.Decode(ev)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error text")
			}
			return
		}
		back, err := api.CC42.Encode(m)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", m, err)
		}
		m2, err := api.CC42.Decode(back)
		if err != nil {
			t.Fatalf("cannot decode own encoding %s: %v", back, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed the message:\n got %+v\nwant %+v", m2, m)
		}
		if !api.MessagesEqual(m, m2) {
			t.Fatalf("MessagesEqual disagrees with DeepEqual for %+v", m)
		}
		// Encoding is canonical: a second encode gives the same value.
		again, err := api.CC42.Encode(m2)
		if err != nil || !broker.Equal(again.Value(), back.Value()) {
			t.Fatalf("second encode differs: %s vs %s (%v)", again, back, err)
		}
	})
}
