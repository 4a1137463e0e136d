package broker

import (
	"sync"
	"sync/atomic"
)

// outFrame is one encoded frame waiting in a client's queue. shared is set
// when b lives in a pooled buffer that several clients' queues hold; each
// of them releases it once, when written or discarded.
type outFrame struct {
	b      []byte
	shared *sharedFrame
}

// release gives up this queue's hold on a pooled buffer.
func (f outFrame) release() { f.shared.release() }

// sharedFrame is a data-message frame encoded once for every client it
// is routed to. Pushing a configuration to N agents makes N frames of
// O(N) bytes; reusing their buffers keeps that out of the garbage
// collector's way.
type sharedFrame struct {
	b    []byte
	refs atomic.Int32
}

// maxPooledFrame bounds the buffers kept for reuse, so that one huge
// frame does not pin its memory in the pool.
const maxPooledFrame = 4 << 20

var sharedFrames = sync.Pool{New: func() any { return new(sharedFrame) }}

// poisonReleasedFrames makes release overwrite a buffer before pooling it
// (set by the package's tests only, before any goroutine starts), so that
// a use after release corrupts the frame visibly instead of by chance.
var poisonReleasedFrames bool

// newSharedFrame returns a pooled buffer with room for size bytes, held
// by refs users.
func newSharedFrame(size int, refs int) *sharedFrame {
	f := sharedFrames.Get().(*sharedFrame)
	if cap(f.b) < size {
		f.b = make([]byte, 0, size)
	}
	f.b = f.b[:0]
	f.refs.Store(int32(refs))
	return f
}

// release drops one hold; the last returns the buffer to the pool. A
// frame still queued for a client that went away is never released and
// is simply collected.
func (f *sharedFrame) release() {
	if f == nil {
		return
	}
	switch n := f.refs.Add(-1); {
	case n == 0 && cap(f.b) <= maxPooledFrame:
		if poisonReleasedFrames {
			for i := range f.b {
				f.b[i] = 0xff
			}
		}
		f.b = f.b[:0]
		sharedFrames.Put(f)
	case n < 0:
		panic("broker: shared frame released more often than it was held")
	}
}

// frameQueue is a client's bounded outbound queue of encoded frames. Its
// storage grows on demand up to the limit and is released when the queue
// empties after a burst, so an idle client costs a few words instead of
// a buffer of `limit` slots (24 KiB at the default 1,024).
type frameQueue struct {
	mu    sync.Mutex
	ring  []outFrame // len(ring) is the current capacity; nil while empty
	head  int
	n     int
	limit int
	// ready holds a token while the queue may be non-empty, so that the
	// writer can wait for work in a select.
	ready chan struct{}
}

// Queue storage starts at minQueueStorage slots and is released when the
// queue empties while holding more than keepQueueStorage.
const (
	minQueueStorage  = 4
	keepQueueStorage = 64
)

func newFrameQueue(limit int) *frameQueue {
	return &frameQueue{limit: limit, ready: make(chan struct{}, 1)}
}

// push appends f. When the queue is full and dropOldest is set, the oldest
// frame makes room (dropped reports it, and its hold is released);
// otherwise f is refused (ok false) and stays the caller's.
func (q *frameQueue) push(f outFrame, dropOldest bool) (ok, dropped bool) {
	q.mu.Lock()
	if q.n == q.limit {
		if !dropOldest {
			q.mu.Unlock()
			return false, false
		}
		q.ring[q.head].release()
		q.ring[q.head] = outFrame{}
		q.head = (q.head + 1) % len(q.ring)
		q.n--
		dropped = true
	}
	if q.n == len(q.ring) {
		q.grow()
	}
	q.ring[(q.head+q.n)%len(q.ring)] = f
	q.n++
	q.mu.Unlock()
	q.signal()
	return true, dropped
}

// grow doubles the storage (up to the limit), keeping the order.
func (q *frameQueue) grow() {
	size := min(max(2*len(q.ring), minQueueStorage), q.limit)
	ring := make([]outFrame, size)
	for i := range q.n {
		ring[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	q.ring, q.head = ring, 0
}

// pop removes the oldest frame, whose hold passes to the caller. more
// says whether others remain (and then the ready token is renewed for
// them).
func (q *frameQueue) pop() (f outFrame, ok, more bool) {
	q.mu.Lock()
	if q.n == 0 {
		q.mu.Unlock()
		return outFrame{}, false, false
	}
	f = q.ring[q.head]
	q.ring[q.head] = outFrame{}
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	more = q.n > 0
	if !more && len(q.ring) > keepQueueStorage {
		q.ring, q.head = nil, 0
	}
	q.mu.Unlock()
	if more {
		q.signal()
	}
	return f, true, more
}

// queued returns the number of queued frames.
func (q *frameQueue) queued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

func (q *frameQueue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}
