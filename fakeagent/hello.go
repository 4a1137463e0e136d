package fakeagent

import (
	"sync"
	"time"
)

// helloClocks drive HelloRepeat for every agent in the process: one ticker
// goroutine per distinct interval, however many agents use it. A tick only
// pokes each registered agent's loop (a non-blocking send on a 1-slot
// channel); the agent sends its hello on its own goroutine, so a slow
// connection never holds up the others.
var helloClocks = struct {
	mu     sync.Mutex
	clocks map[time.Duration]*helloClock
}{clocks: map[time.Duration]*helloClock{}}

type helloClock struct {
	interval time.Duration
	members  map[*Agent]struct{}
	stop     chan struct{}
	done     chan struct{}
}

// subscribeHello registers a for hello pokes every interval.
func subscribeHello(a *Agent, interval time.Duration) {
	helloClocks.mu.Lock()
	defer helloClocks.mu.Unlock()
	c := helloClocks.clocks[interval]
	if c == nil {
		c = &helloClock{interval: interval, members: map[*Agent]struct{}{}, stop: make(chan struct{}), done: make(chan struct{})}
		helloClocks.clocks[interval] = c
		go c.run()
	}
	c.members[a] = struct{}{}
}

// unsubscribeHello removes a; the clock's goroutine ends with its last
// member.
func unsubscribeHello(a *Agent, interval time.Duration) {
	helloClocks.mu.Lock()
	c := helloClocks.clocks[interval]
	if c == nil {
		helloClocks.mu.Unlock()
		return
	}
	delete(c.members, a)
	last := len(c.members) == 0
	if last {
		delete(helloClocks.clocks, interval)
		close(c.stop)
	}
	helloClocks.mu.Unlock()
	if last {
		<-c.done
	}
}

func (c *helloClock) run() {
	defer close(c.done)
	t := time.NewTicker(c.interval)
	defer t.Stop()
	var batch []*Agent
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		helloClocks.mu.Lock()
		batch = batch[:0]
		for a := range c.members {
			batch = append(batch, a)
		}
		helloClocks.mu.Unlock()
		for _, a := range batch {
			select {
			case a.poke <- struct{}{}:
			default: // a poke is already pending
			}
		}
	}
}
