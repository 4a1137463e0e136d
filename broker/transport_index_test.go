package broker

import (
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestRouteIndexMatchesBruteForce checks the prefix index against the
// definition (MatchesPrefix over every live subscriber, by id) through
// random joins and departures, with prefixes drawn from a small alphabet so
// that they nest, repeat and include the empty prefix.
func TestRouteIndexMatchesBruteForce(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		x := newRouteIndex()
		var live []*subscriber
		nextID := PeerID(4)
		prefixGen := rapid.StringOfN(rapid.SampledFrom([]rune("ab/")), 0, 4, -1)
		topicGen := rapid.StringOfN(rapid.SampledFrom([]rune("ab/")), 0, 6, -1)
		steps := rapid.IntRange(1, 60).Draw(t, "steps")
		for step := range steps {
			switch op := rapid.IntRange(0, 2).Draw(t, fmt.Sprintf("op%d", step)); {
			case op == 0 || len(live) == 0:
				prefixes := rapid.SliceOfN(prefixGen, 0, 3).Draw(t, fmt.Sprintf("prefixes%d", step))
				// Ids usually grow, but a client that finishes its handshake
				// late joins after a younger one: odd ids below the last even
				// one stand for those (each used once).
				id := nextID
				if rapid.Bool().Draw(t, fmt.Sprintf("late%d", step)) {
					id = nextID - 3
				}
				nextID += 2
				s := newSubscriber(id, prefixes, nil, nil)
				x.add(s)
				live = append(live, s)
			case op == 1:
				i := rapid.IntRange(0, len(live)-1).Draw(t, fmt.Sprintf("leave%d", step))
				x.remove(live[i])
				x.remove(live[i]) // twice is harmless
				live = slices.Delete(live, i, i+1)
			default:
				topic := topicGen.Draw(t, fmt.Sprintf("topic%d", step))
				var from PeerID
				if len(live) > 0 && rapid.Bool().Draw(t, fmt.Sprintf("fromSub%d", step)) {
					from = live[rapid.IntRange(0, len(live)-1).Draw(t, fmt.Sprintf("from%d", step))].id
				}
				var want []PeerID
				for _, s := range live {
					if s.id != from && MatchesPrefix(topic, s.prefixes) {
						want = append(want, s.id)
					}
				}
				slices.Sort(want)
				var got []PeerID
				for _, s := range x.match(topic, from, nil) {
					got = append(got, s.id)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("match(%q, from %d) = %v, want %v", topic, from, got, want)
				}
			}
		}
		// Once everyone has left, nothing of them stays in the index.
		for _, s := range live {
			x.remove(s)
		}
		if len(x.byPrefix) != 0 || len(x.lens) != 0 || len(x.lenRefs) != 0 {
			t.Fatalf("index not empty after every subscriber left: %d prefixes, lengths %v", len(x.byPrefix), x.lens)
		}
	})
}
