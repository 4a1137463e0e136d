package uuid1

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var uuid1Form = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-1[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// timestampOf recovers the 100 ns timestamp a version 1 UUID carries.
func timestampOf(t *testing.T, s string) uint64 {
	t.Helper()
	parts := strings.Split(s, "-")
	low, err1 := strconv.ParseUint(parts[0], 16, 32)
	mid, err2 := strconv.ParseUint(parts[1], 16, 16)
	hi, err3 := strconv.ParseUint(parts[2][1:], 16, 16)
	if err1 != nil || err2 != nil || err3 != nil {
		t.Fatalf("unparsable uuid %q", s)
	}
	return hi<<48 | mid<<32 | low
}

func TestFormatAndTimestamp(t *testing.T) {
	at := time.Date(2021, 12, 20, 10, 30, 0, 123456700, time.UTC)
	g := NewGenerator(func() time.Time { return at })
	id := g.New()
	if !uuid1Form.MatchString(id) {
		t.Fatalf("%q is not a version 1 UUID string", id)
	}
	got := timestampOf(t, id)
	want := uint64(at.UnixNano()/100) + gregorianOffset
	if got != want {
		t.Errorf("timestamp %d, want %d", got, want)
	}
	// The node id is random but must carry the multicast bit (RFC 4122 §4.5).
	node, _ := strconv.ParseUint(id[24:26], 16, 8)
	if node&1 != 1 {
		t.Errorf("node id %s lacks the multicast bit", id[24:])
	}
}

func TestStrictlyIncreasingWithFrozenClock(t *testing.T) {
	at := time.Unix(1_700_000_000, 0)
	g := NewGenerator(func() time.Time { return at })
	prev := timestampOf(t, g.New())
	for i := 0; i < 1000; i++ {
		ts := timestampOf(t, g.New())
		if ts != prev+1 {
			t.Fatalf("call %d: timestamp %d after %d, want +1", i, ts, prev)
		}
		prev = ts
	}
}

func TestUniqueAcrossGoroutines(t *testing.T) {
	const workers, each = 8, 500
	var mu sync.Mutex
	seen := make(map[string]bool, workers*each)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]string, 0, each)
			for i := 0; i < each; i++ {
				local = append(local, New())
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range local {
				if seen[id] {
					t.Errorf("duplicate id %s", id)
				}
				seen[id] = true
			}
		}()
	}
	wg.Wait()
	if len(seen) != workers*each {
		t.Errorf("%d distinct ids, want %d", len(seen), workers*each)
	}
}
