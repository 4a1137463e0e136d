// Package uuid1 makes time-based (version 1) UUID strings, the form
// zeek-client uses for request and configuration ids (Python's
// str(uuid.uuid1())), so that ids zcc sends look like the real client's.
package uuid1

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync"
	"time"
)

// gregorianOffset is the number of 100 ns intervals between the UUID epoch
// (1582-10-15) and the Unix epoch.
const gregorianOffset = 0x01B21DD213814000

// Generator produces version 1 UUIDs with a random node id and clock
// sequence. RFC 4122 §4.5 allows a random node id when no MAC address
// should leak; its multicast bit is set so it can never collide with a
// real one.
type Generator struct {
	mu       sync.Mutex
	now      func() time.Time
	last     uint64 // last timestamp handed out, in 100 ns units
	clockSeq uint16
	node     [6]byte
}

// NewGenerator returns a generator reading time from now (time.Now when nil).
func NewGenerator(now func() time.Time) *Generator {
	if now == nil {
		now = time.Now
	}
	g := &Generator{now: now}
	var seed [8]byte
	if _, err := rand.Read(seed[:]); err != nil {
		// crypto/rand does not fail on supported platforms; a fixed seed
		// would only risk collisions with other processes, never a crash.
		binary.BigEndian.PutUint64(seed[:], uint64(time.Now().UnixNano()))
	}
	g.clockSeq = binary.BigEndian.Uint16(seed[0:2]) & 0x3fff
	copy(g.node[:], seed[2:8])
	g.node[0] |= 0x01
	return g
}

// New returns the next UUID as a lower-case string
// ("xxxxxxxx-xxxx-1xxx-yxxx-xxxxxxxxxxxx"). Timestamps strictly increase
// within a generator, as in Python's uuid1, so two calls within one clock
// tick still differ.
func (g *Generator) New() string {
	g.mu.Lock()
	ts := uint64(g.now().UnixNano()/100) + gregorianOffset
	if ts <= g.last {
		ts = g.last + 1
	}
	g.last = ts
	seq, node := g.clockSeq, g.node
	g.mu.Unlock()

	timeLow := uint32(ts)
	timeMid := uint16(ts >> 32)
	timeHiAndVersion := uint16(ts>>48)&0x0fff | 0x1000
	seqHiAndVariant := seq | 0x8000
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", timeLow, timeMid, timeHiAndVersion, seqHiAndVariant, node[:])
}

var std = NewGenerator(nil)

// New returns a fresh version 1 UUID string from the process-wide generator.
func New() string { return std.New() }
