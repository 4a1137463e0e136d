package broker

import "sync"

// frameQueue is a client's bounded outbound queue of encoded frames. Its
// storage grows on demand up to the limit and is released when the queue
// empties after a burst, so an idle client costs a few words instead of
// a buffer of `limit` slots (24 KiB at the default 1,024).
type frameQueue struct {
	mu    sync.Mutex
	ring  [][]byte // len(ring) is the current capacity; nil while empty
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

// push appends b. When the queue is full and dropOldest is set, the oldest
// frame makes room (dropped reports it); otherwise b is refused (ok false).
func (q *frameQueue) push(b []byte, dropOldest bool) (ok, dropped bool) {
	q.mu.Lock()
	if q.n == q.limit {
		if !dropOldest {
			q.mu.Unlock()
			return false, false
		}
		q.ring[q.head] = nil
		q.head = (q.head + 1) % len(q.ring)
		q.n--
		dropped = true
	}
	if q.n == len(q.ring) {
		q.grow()
	}
	q.ring[(q.head+q.n)%len(q.ring)] = b
	q.n++
	q.mu.Unlock()
	q.signal()
	return true, dropped
}

// grow doubles the storage (up to the limit), keeping the order.
func (q *frameQueue) grow() {
	size := min(max(2*len(q.ring), minQueueStorage), q.limit)
	ring := make([][]byte, size)
	for i := range q.n {
		ring[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	q.ring, q.head = ring, 0
}

// pop removes the oldest frame. more says whether others remain (and then
// the ready token is renewed for them).
func (q *frameQueue) pop() (b []byte, ok, more bool) {
	q.mu.Lock()
	if q.n == 0 {
		q.mu.Unlock()
		return nil, false, false
	}
	b = q.ring[q.head]
	q.ring[q.head] = nil
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
	return b, true, more
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
