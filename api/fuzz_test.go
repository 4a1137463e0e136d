package api_test

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
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

// TestMutatedVectorsRoundTrip is the structure-aware complement of
// FuzzDecodeEvent, which mostly mutates JSON syntax: it rewrites one spot
// deep inside each vector's arguments (a field of another kind, none, an
// unknown or foreign enum, a record one element short or one too long, a
// duplicated set element) and checks that Decode either fails with a
// located error or yields a message that survives Encode and Decode
// unchanged. The seed is fixed so a failure reproduces.
func TestMutatedVectorsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 2))
	var events []broker.Event
	for _, e := range loadVectors(t) {
		ev, err := decodeVector(t, e).Event()
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, ev)
	}
	accepted, rejected := 0, 0
	for i := range 20000 {
		orig := events[i%len(events)]
		args := append([]broker.Value(nil), orig.Args...)
		j := rng.IntN(len(args))
		args[j] = mutateValue(rng, args[j])
		ev := broker.NewEvent(orig.Name, args...)
		m, err := api.CC42.Decode(ev)
		if err != nil {
			var ae *api.ArgError
			if !errors.As(err, &ae) || ae.Index != j {
				t.Fatalf("mutation of arg %d of %s: error %T %v does not point at it", j, ev, err, err)
			}
			rejected++
			continue
		}
		accepted++
		back, err := api.CC42.Encode(m)
		if err != nil {
			t.Fatalf("%s decoded to %+v but does not encode: %v", ev, m, err)
		}
		m2, err := api.CC42.Decode(back)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("%s: round trip\n got %+v (%v)\nwant %+v", ev, m2, err, m)
		}
	}
	t.Logf("%d mutations accepted, %d rejected", accepted, rejected)
	// Both outcomes must be common, or the mutations test nothing.
	if accepted < 2000 || rejected < 2000 {
		t.Fatalf("%d mutations accepted, %d rejected: the mutator is lopsided", accepted, rejected)
	}
}

var mutationEnums = []string{
	"Supervisor::WORKER", "Supervisor::worker", "ClusterController::Types::Running",
	"ClusterController::Types::RUNNING", "Management::RUNNING", "ClusterController::Types::Crashed",
}

// mutateValue returns v with one change at a random depth.
func mutateValue(rng *rand.Rand, v broker.Value) broker.Value {
	var elems []broker.Value
	switch v.Kind() {
	case broker.KindVector:
		elems, _ = v.AsVector()
	case broker.KindSet:
		elems, _ = v.AsSet()
	case broker.KindTable:
		entries, _ := v.AsTable()
		if len(entries) > 0 && rng.IntN(2) == 0 {
			entries = append([]broker.TableEntry(nil), entries...)
			k := rng.IntN(len(entries))
			entries[k].Value = mutateValue(rng, entries[k].Value)
			return broker.Table(entries...)
		}
	}
	if len(elems) > 0 && rng.IntN(3) > 0 {
		elems = append([]broker.Value(nil), elems...)
		k := rng.IntN(len(elems))
		switch rng.IntN(8) {
		case 0: // one element short
			elems = elems[:len(elems)-1]
		case 1: // one trailing element too many
			elems = append(elems, broker.String("extra"))
		case 2: // a near-duplicate: same element with a trailing extra
			elems = append(elems, broker.Vector(append(vectorElems(elems[k]), broker.Count(7))...))
		default:
			elems[k] = mutateValue(rng, elems[k])
		}
		if v.Kind() == broker.KindSet {
			return broker.Set(elems...)
		}
		return broker.Vector(elems...)
	}
	switch rng.IntN(10) {
	case 0:
		return broker.None()
	case 1:
		return broker.String("x")
	case 2:
		return broker.Count(uint64(rng.IntN(3)))
	case 3:
		return broker.Integer(int64(rng.IntN(3)) - 1)
	case 4:
		return broker.Enum(mutationEnums[rng.IntN(len(mutationEnums))])
	case 5:
		return broker.Bool(rng.IntN(2) == 0)
	case 6:
		return broker.FromPort(broker.TCPPort(uint16(rng.IntN(3))))
	case 7:
		return broker.Vector()
	case 8:
		return broker.Set()
	default:
		return broker.Table()
	}
}

func vectorElems(v broker.Value) []broker.Value {
	elems, _ := v.AsVector()
	return append([]broker.Value(nil), elems...)
}
