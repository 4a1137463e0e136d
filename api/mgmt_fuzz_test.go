package api_test

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/api/mgmtvectors"
	"github.com/zcc-harness/zcc/broker"
)

// mgmtSeedFrames returns the text of every data frame in the mgmt vectors:
// zeek-client's requests, the canned responses and the Zeek 8.1.2
// transcripts (both directions).
func mgmtSeedFrames(tb testing.TB) [][]byte {
	tb.Helper()
	dir := mgmtDir(tb)
	var out [][]byte
	reqs, err := mgmtvectors.LoadRequests(dir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range reqs {
		for _, f := range r.FramesRaw {
			out = append(out, []byte(f))
		}
		for _, sf := range r.ServerFrames {
			out = append(out, []byte(sf.Text))
		}
	}
	outs, err := mgmtvectors.LoadOutputs(dir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, o := range outs {
		for _, f := range o.ResponseFramesRaw {
			if f != nil {
				out = append(out, []byte(*f))
			}
		}
	}
	trs, err := mgmtvectors.LoadTranscripts(dir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, tr := range trs {
		for _, f := range tr.Frames {
			if f.Kind == "" && f.Dir != mgmtvectors.DirObserver && strings.HasPrefix(f.Text, "{") {
				out = append(out, []byte(f.Text))
			}
		}
	}
	return out
}

// FuzzDecodeMgmtEvent is FuzzDecodeEvent for the mgmt profile: whatever
// decodes must encode, and decoding that encoding gives the identical
// message. Seeded with every frame of the mgmt vectors.
func FuzzDecodeMgmtEvent(f *testing.F) {
	for _, b := range mgmtSeedFrames(f) {
		f.Add(b)
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
		m, err := api.Mgmt.Decode(ev)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error text")
			}
			return
		}
		back, err := api.Mgmt.Encode(m)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", m, err)
		}
		m2, err := api.Mgmt.Decode(back)
		if err != nil {
			t.Fatalf("cannot decode own encoding %s: %v", back, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed the message:\n got %+v\nwant %+v", m2, m)
		}
		again, err := api.Mgmt.Encode(m2)
		if err != nil || !broker.Equal(again.Value(), back.Value()) {
			t.Fatalf("second encode differs: %s vs %s (%v)", again, back, err)
		}
	})
}

// TestMgmtMutatedVectorsRoundTrip is TestMutatedVectorsRoundTrip over the
// mgmt vectors' events.
func TestMgmtMutatedVectorsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	var events []broker.Event
	for _, b := range mgmtSeedFrames(t) {
		fr, err := broker.DecodeFrame(b)
		if err != nil || fr.Type != broker.FrameDataMessage {
			continue
		}
		ev, err := fr.Event()
		if err != nil || len(ev.Args) == 0 {
			continue
		}
		if _, err := api.Mgmt.Decode(ev); err == nil {
			events = append(events, ev)
		}
	}
	if len(events) < 100 {
		t.Fatalf("only %d decodable seed events", len(events))
	}
	accepted, rejected := 0, 0
	for i := range 10000 {
		orig := events[i%len(events)]
		args := append([]broker.Value(nil), orig.Args...)
		j := rng.IntN(len(args))
		args[j] = mutateValue(rng, args[j])
		ev := broker.NewEvent(orig.Name, args...)
		m, err := api.Mgmt.Decode(ev)
		if err != nil {
			var ae *api.ArgError
			if !errors.As(err, &ae) || ae.Index != j {
				t.Fatalf("mutation of arg %d of %s: error %T %v does not point at it", j, ev, err, err)
			}
			rejected++
			continue
		}
		accepted++
		back, err := api.Mgmt.Encode(m)
		if err != nil {
			t.Fatalf("%s decoded to %+v but does not encode: %v", ev, m, err)
		}
		m2, err := api.Mgmt.Decode(back)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("%s: round trip\n got %+v (%v)\nwant %+v", ev, m2, err, m)
		}
	}
	t.Logf("%d mutations accepted, %d rejected", accepted, rejected)
	if accepted < 1000 || rejected < 1000 {
		t.Fatalf("%d mutations accepted, %d rejected: the mutator is lopsided", accepted, rejected)
	}
}
