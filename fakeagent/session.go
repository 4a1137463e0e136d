package fakeagent

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zcc-harness/zcc/broker"
)

// link is what an agent's actions need from a connection, whichever side
// opened it.
type link interface {
	publish(ctx context.Context, topic string, ev broker.Event, raw []byte) error
	writeRaw(ctx context.Context, raw []byte) error
	// close ends the connection cleanly (close frame); kill drops it.
	close()
	kill()
}

// dialLink is a connection the agent dialed.
type dialLink struct{ conn *broker.Conn }

func (l *dialLink) publish(ctx context.Context, _ string, _ broker.Event, raw []byte) error {
	// raw is exactly the frame Publish would write; sending it keeps the
	// transcript byte-identical to the wire.
	return l.conn.WriteRaw(ctx, raw)
}

func (l *dialLink) writeRaw(ctx context.Context, raw []byte) error { return l.conn.WriteRaw(ctx, raw) }
func (l *dialLink) close()                                         { _ = l.conn.Close() }
func (l *dialLink) kill()                                          { l.conn.Kill() }

// session is one connection's worth of agent state: its number, its link,
// and the delayed actions still pending on it.
type session struct {
	agent *Agent
	ctx   context.Context
	n     atomic.Int64 // connection number; a listening agent's changes as controllers come and go
	link  link
	// closing is set once an action closed or reset the connection;
	// frames still queued are then recorded and ignored.
	closing atomic.Bool

	mu     sync.Mutex
	ended  bool
	timers map[*time.Timer]struct{}
}

// after runs f after d unless the session ends first. The agent's bg group
// tracks f so that Stop waits for it.
func (s *session) after(d time.Duration, f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	if s.timers == nil {
		s.timers = make(map[*time.Timer]struct{})
	}
	s.agent.bg.Add(1)
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		defer s.agent.bg.Done()
		s.mu.Lock()
		_, pending := s.timers[t]
		delete(s.timers, t)
		ended := s.ended
		s.mu.Unlock()
		if pending && !ended {
			f()
		}
	})
	s.timers[t] = struct{}{}
}

// end cancels pending delayed actions.
func (s *session) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
	for t := range s.timers {
		if t.Stop() {
			s.agent.bg.Done()
		}
		delete(s.timers, t)
	}
}

// background runs f on its own goroutine, tracked for Stop.
func (s *session) background(f func()) {
	s.agent.bg.Add(1)
	go func() {
		defer s.agent.bg.Done()
		f()
	}()
}

// writeContext bounds one write on this session.
func (s *session) writeContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, writeTimeout)
}

func (s *session) num() int { return int(s.n.Load()) }
