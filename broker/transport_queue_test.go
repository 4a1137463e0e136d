package broker

import (
	"fmt"
	"slices"
	"strconv"
	"testing"

	"pgregory.net/rapid"
)

// TestFrameQueueMatchesModel checks the growable ring against a plain
// slice: FIFO order, the limit, drop-oldest, refusal, and the ready token
// whenever frames wait.
func TestFrameQueueMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		limit := rapid.IntRange(1, 200).Draw(t, "limit")
		q := newFrameQueue(limit)
		var model [][]byte
		seq := 0
		for step := range rapid.IntRange(1, 400).Draw(t, "steps") {
			if rapid.IntRange(0, 2).Draw(t, fmt.Sprintf("op%d", step)) > 0 {
				b := []byte(strconv.Itoa(seq))
				seq++
				dropOldest := rapid.Bool().Draw(t, fmt.Sprintf("dropOldest%d", step))
				ok, dropped := q.push(outFrame{b: b}, dropOldest)
				full := len(model) == limit
				switch {
				case full && !dropOldest:
					if ok || dropped {
						t.Fatalf("push into a full queue without dropOldest: ok %v dropped %v", ok, dropped)
					}
				case full:
					if !ok || !dropped {
						t.Fatalf("push into a full queue with dropOldest: ok %v dropped %v", ok, dropped)
					}
					model = append(model[1:], b)
				default:
					if !ok || dropped {
						t.Fatalf("push into a queue with room: ok %v dropped %v", ok, dropped)
					}
					model = append(model, b)
				}
			} else {
				f, ok, more := q.pop()
				b := f.b
				if ok != (len(model) > 0) {
					t.Fatalf("pop: ok %v with %d queued", ok, len(model))
				}
				if ok {
					if string(b) != string(model[0]) {
						t.Fatalf("pop returned %q, want %q", b, model[0])
					}
					model = model[1:]
					if more != (len(model) > 0) {
						t.Fatalf("pop: more %v with %d left", more, len(model))
					}
				}
			}
			if q.queued() != len(model) || len(q.ring) > limit {
				t.Fatalf("queued %d (storage %d, limit %d), want %d", q.queued(), len(q.ring), limit, len(model))
			}
			if len(model) > 0 && len(q.ready) != 1 {
				t.Fatalf("%d frames wait but there is no ready token", len(model))
			}
		}
		// Draining gives the rest in order.
		var rest [][]byte
		for {
			f, ok, _ := q.pop()
			if !ok {
				break
			}
			rest = append(rest, f.b)
		}
		if !slices.EqualFunc(rest, model, func(a, b []byte) bool { return string(a) == string(b) }) {
			t.Fatalf("drained %q, want %q", rest, model)
		}
	})
}
