package fakeagent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/zcc-harness/zcc/api"
)

// Direction says what a transcript entry records.
type Direction string

// Transcript entry directions.
const (
	In    Direction = "in"    // a frame the agent received
	Out   Direction = "out"   // a frame the agent sent (or tried to send)
	State Direction = "state" // a connection change: connected, disconnected, dial failure, listening
)

// Entry is one transcript record.
type Entry struct {
	Seq   int           `json:"seq"`  // 1, 2, … in the order recorded
	At    time.Duration `json:"t_ns"` // monotonic time since the agent's (or fleet's) epoch
	Time  time.Time     `json:"time"` // wall-clock time, for people
	Agent string        `json:"agent"`
	Conn  int           `json:"conn"` // connection number, 1 for the first
	Dir   Direction     `json:"dir"`
	Topic string        `json:"topic,omitempty"`
	// Raw is the frame's exact text.
	Raw string `json:"raw,omitempty"`
	// Event is the fully qualified event name, when the frame carried one.
	Event string `json:"event,omitempty"`
	// Kind is the event's kind; KindInvalid when it did not decode.
	Kind api.EventKind `json:"-"`
	// Msg is the decoded message.
	Msg api.Message `json:"msg,omitempty"`
	// Err is the decode error (in), the send error (out), or the reason
	// (state).
	Err string `json:"error,omitempty"`
	// Action is what the agent did with an incoming frame, or why it sent
	// an outgoing one (reply, twice, hello, notify_error, …).
	Action Action `json:"action,omitempty"`
	// Detail holds the action's parameters or a state change's name.
	Detail string `json:"detail,omitempty"`
	// Fault marks an incoming request on which the agent deviated from a
	// real agent (an injected action or a delay).
	Fault bool `json:"fault,omitempty"`
}

// Reqid returns the reqid the entry's message carries, if any.
func (e Entry) Reqid() (string, bool) {
	if e.Msg == nil {
		return "", false
	}
	return api.ReqidOf(e.Msg)
}

// Transcript is an agent's record of every frame in and out. It is safe
// for concurrent use; queries return copies.
type Transcript struct {
	mu      sync.Mutex
	agent   string
	epoch   time.Time
	limit   int
	entries []Entry
	dropped int
	seq     int
	// counts[kind] counts received messages of each kind, including those
	// no longer retained because of the limit.
	counts map[api.EventKind]int
	// changed is closed and replaced whenever an entry is added; nil until
	// someone waits.
	changed chan struct{}
}

func newTranscript(agent string, epoch time.Time, limit int) *Transcript {
	return &Transcript{agent: agent, epoch: epoch, limit: limit}
}

// add records e, filling in its sequence number and timestamps.
func (t *Transcript) add(e Entry) Entry {
	now := time.Now()
	t.mu.Lock()
	t.seq++
	e.Seq = t.seq
	e.At = now.Sub(t.epoch) // monotonic: both carry a monotonic reading
	e.Time = now
	e.Agent = t.agent
	if e.Dir == In && e.Kind != api.KindInvalid {
		if t.counts == nil {
			t.counts = make(map[api.EventKind]int)
		}
		t.counts[e.Kind]++
	}
	if t.limit > 0 && len(t.entries) >= t.limit {
		// Keep the newest; shift in place so the backing array stays bounded.
		n := copy(t.entries, t.entries[1:])
		t.entries = t.entries[:n]
		t.dropped++
	}
	t.entries = append(t.entries, e)
	if t.changed != nil {
		close(t.changed)
		t.changed = nil
	}
	t.mu.Unlock()
	return e
}

// Entries returns every retained entry in order.
func (t *Transcript) Entries() []Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Entry(nil), t.entries...)
}

// Len returns how many entries were recorded (including dropped ones).
func (t *Transcript) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.seq
}

// Dropped returns how many old entries were discarded to respect the
// transcript limit.
func (t *Transcript) Dropped() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropped
}

// Filter returns the retained entries for which keep is true.
func (t *Transcript) Filter(keep func(Entry) bool) []Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Entry
	for _, e := range t.entries {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// Received returns the retained incoming entries of kind, in order.
func (t *Transcript) Received(kind api.EventKind) []Entry {
	return t.Filter(func(e Entry) bool { return e.Dir == In && e.Kind == kind })
}

// Sent returns the retained outgoing entries of kind, in order.
func (t *Transcript) Sent(kind api.EventKind) []Entry {
	return t.Filter(func(e Entry) bool { return e.Dir == Out && e.Kind == kind })
}

// Count returns how many messages of kind the agent received, ever (also
// when the transcript limit discarded some).
func (t *Transcript) Count(kind api.EventKind) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.counts[kind]
}

// Injected returns the incoming entries on which the agent deviated from a
// real agent's behaviour, in order: the fault sequence.
func (t *Transcript) Injected() []Entry {
	return t.Filter(func(e Entry) bool { return e.Dir == In && e.Fault })
}

// WaitFor blocks until an entry satisfying pred exists (already recorded
// or recorded later) and returns the first such entry. It wakes only when
// entries are added; it never polls.
func (t *Transcript) WaitFor(ctx context.Context, pred func(Entry) bool) (Entry, error) {
	next := 0 // index of the first entry not yet examined, counted by Seq
	for {
		t.mu.Lock()
		for _, e := range t.entries {
			if e.Seq <= next {
				continue
			}
			next = e.Seq
			if pred(e) {
				t.mu.Unlock()
				return e, nil
			}
		}
		if t.changed == nil {
			t.changed = make(chan struct{})
		}
		ch := t.changed
		t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Entry{}, fmt.Errorf("agent %s: waiting for a transcript entry: %w", t.agent, ctx.Err())
		}
	}
}

// WaitReceived waits until the agent has received a message of kind and
// returns its entry (the first one, if several arrived).
func (t *Transcript) WaitReceived(ctx context.Context, kind api.EventKind) (Entry, error) {
	return t.WaitFor(ctx, func(e Entry) bool { return e.Dir == In && e.Kind == kind })
}

// WriteJSONL writes every retained entry as one JSON object per line.
func (t *Transcript) WriteJSONL(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, e := range t.Entries() {
		if err := enc.Encode(e); err != nil {
			// A message JSON cannot carry (a NaN inside Data) must not
			// cost the rest of the dump: write the entry without it.
			var je *json.MarshalerError
			if !errors.As(err, &je) && !isUnsupported(err) {
				return fmt.Errorf("agent %s: write transcript entry %d: %w", t.agent, e.Seq, err)
			}
			e.Msg = nil
			e.Err = strings.TrimSpace(e.Err + " (message not representable in JSON: " + err.Error() + ")")
			if err := enc.Encode(e); err != nil {
				return fmt.Errorf("agent %s: write transcript entry %d: %w", t.agent, e.Seq, err)
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("agent %s: write transcript: %w", t.agent, err)
	}
	return nil
}

func isUnsupported(err error) bool {
	var ue *json.UnsupportedValueError
	var ut *json.UnsupportedTypeError
	return errors.As(err, &ue) || errors.As(err, &ut)
}
