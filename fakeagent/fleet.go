package fakeagent

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/zcc-harness/zcc/api"
)

// DefaultNamePattern names a fleet's agents agent-001, agent-002, ….
const DefaultNamePattern = "agent-%03d"

// DefaultDialConcurrency bounds a fleet's simultaneous connection
// attempts, so that thousands of agents starting together do not overrun
// the controller's listen backlog.
const DefaultDialConcurrency = 64

// FleetOptions configure a Fleet.
type FleetOptions struct {
	// Count is the number of agents (at least 1).
	Count int `json:"count" yaml:"count"`
	// NamePattern is a fmt pattern with one integer verb; default
	// DefaultNamePattern.
	NamePattern string `json:"name_pattern,omitempty" yaml:"name_pattern,omitempty"`
	// FirstIndex is the index of the first agent; 0 means 1.
	FirstIndex int `json:"first_index,omitempty" yaml:"first_index,omitempty"`
	// ListenBasePort, for listening agents, gives agent i the port
	// ListenBasePort+i (i from 0); 0 lets each agent pick a free port.
	ListenBasePort int `json:"listen_base_port,omitempty" yaml:"listen_base_port,omitempty"`
	// Template holds every agent's options; Name and ListenPort are set
	// per agent, and Epoch is shared.
	Template Options `json:"template" yaml:"template"`
	// Customize adjusts one agent's options (its behaviour, its
	// api_version…) before it is created; index counts from FirstIndex.
	Customize func(index int, name string, o *Options) `json:"-" yaml:"-"`
	// DialConcurrency bounds simultaneous connection attempts; default
	// DefaultDialConcurrency.
	DialConcurrency int `json:"dial_concurrency,omitempty" yaml:"dial_concurrency,omitempty"`
}

// Fleet is a group of agents started, stopped and awaited together.
type Fleet struct {
	agents []*Agent
	byName map[string]*Agent

	mu        sync.Mutex
	connected int
	welcomed  int
	changed   chan struct{} // closed and replaced on changes; nil until awaited
}

// FleetStatus aggregates the agents' status.
type FleetStatus struct {
	Agents          int `json:"agents"`
	Running         int `json:"running"`
	Connected       int `json:"connected"`
	Welcomed        int `json:"welcomed"`
	ConfigsReceived int `json:"configs_received"`
	FaultsInjected  int `json:"faults_injected"`
	DialFailures    int `json:"dial_failures"`
	// Problems lists, for a few agents that are running but not connected,
	// why not ("agent-007: connect to controller: … connection refused").
	Problems []string `json:"problems,omitempty"`
}

// String renders the status as the one-line summary zcc agents prints.
func (s FleetStatus) String() string {
	return fmt.Sprintf("agents %d  connected %d  welcomed %d  configs received %d  failures injected %d  dial failures %d",
		s.Agents, s.Connected, s.Welcomed, s.ConfigsReceived, s.FaultsInjected, s.DialFailures)
}

// NewFleet creates the agents (stopped).
func NewFleet(o FleetOptions) (*Fleet, error) {
	if o.Count < 1 {
		return nil, fmt.Errorf("fleet: count must be at least 1, got %d", o.Count)
	}
	pattern := o.NamePattern
	if pattern == "" {
		pattern = DefaultNamePattern
	}
	first := o.FirstIndex
	if first == 0 {
		first = 1
	}
	if o.ListenBasePort < 0 || o.ListenBasePort+o.Count-1 > 65535 {
		return nil, fmt.Errorf("fleet: listen_base_port %d with %d agents leaves the port range", o.ListenBasePort, o.Count)
	}
	conc := o.DialConcurrency
	if conc <= 0 {
		conc = DefaultDialConcurrency
	}
	f := &Fleet{agents: make([]*Agent, 0, o.Count), byName: make(map[string]*Agent, o.Count)}
	sem := make(chan struct{}, conc)
	epoch := o.Template.Epoch
	if epoch.IsZero() {
		epoch = time.Now()
	}
	var errs []error
	for i := 0; i < o.Count; i++ {
		idx := first + i
		name := fmt.Sprintf(pattern, idx)
		if strings.Contains(name, "%!") {
			return nil, fmt.Errorf("fleet: name pattern %q must hold exactly one integer verb such as %%03d (got %q)", pattern, name)
		}
		if _, dup := f.byName[name]; dup {
			return nil, fmt.Errorf("fleet: name pattern %q gives the name %q twice", pattern, name)
		}
		opts := o.Template
		opts.Name = name
		opts.Epoch = epoch
		if o.ListenBasePort != 0 {
			opts.ListenPort = o.ListenBasePort + i
		}
		if o.Customize != nil {
			o.Customize(idx, name, &opts)
		}
		r, err := opts.resolve()
		if err != nil {
			errs = append(errs, err)
			if len(errs) >= 10 {
				break
			}
			continue
		}
		a := newAgent(r)
		a.dialSem = sem
		a.watcher = f
		f.agents = append(f.agents, a)
		f.byName[name] = a
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("fleet: %w", errors.Join(errs...))
	}
	return f, nil
}

func (f *Fleet) agentChanged(connected, welcomed int) {
	f.mu.Lock()
	f.connected += connected
	f.welcomed += welcomed
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
	f.mu.Unlock()
}

// Len returns the number of agents.
func (f *Fleet) Len() int { return len(f.agents) }

// Agents returns the agents in index order.
func (f *Fleet) Agents() []*Agent { return append([]*Agent(nil), f.agents...) }

// Agent returns the agent named name, or nil.
func (f *Fleet) Agent(name string) *Agent { return f.byName[name] }

// Names returns the agents' names in index order.
func (f *Fleet) Names() []string {
	out := make([]string, len(f.agents))
	for i, a := range f.agents {
		out[i] = a.name
	}
	return out
}

// Instances returns the api.Instance of every agent, for a configuration
// naming the whole fleet (call after Start for listening agents on port 0).
func (f *Fleet) Instances() []api.Instance {
	out := make([]api.Instance, len(f.agents))
	for i, a := range f.agents {
		out[i] = a.Instance()
	}
	return out
}

// Start starts every agent. If one cannot start (a listening port is
// taken), the ones already started are stopped and the error returned.
func (f *Fleet) Start(ctx context.Context) error {
	for i, a := range f.agents {
		if err := a.Start(ctx); err != nil {
			f.each(f.agents[:i], (*Agent).Stop)
			return fmt.Errorf("fleet: %w", err)
		}
	}
	return nil
}

// Stop stops every agent cleanly, in parallel.
func (f *Fleet) Stop() { f.each(f.agents, (*Agent).Stop) }

// Kill drops every agent's connection abruptly, in parallel.
func (f *Fleet) Kill() { f.each(f.agents, (*Agent).Kill) }

// each runs fn on agents with bounded parallelism: a clean close waits for
// the controller's close frame, and 10,000 of them in a row would take long.
func (f *Fleet) each(agents []*Agent, fn func(*Agent)) {
	const workers = 256
	work := make(chan *Agent)
	var wg sync.WaitGroup
	for w := 0; w < min(workers, len(agents)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range work {
				fn(a)
			}
		}()
	}
	for _, a := range agents {
		work <- a
	}
	close(work)
	wg.Wait()
}

// waitCount blocks until get() reaches the fleet size.
func (f *Fleet) waitCount(ctx context.Context, what string, get func() int) error {
	for {
		f.mu.Lock()
		n := get()
		if n >= len(f.agents) {
			f.mu.Unlock()
			return nil
		}
		if f.changed == nil {
			f.changed = make(chan struct{})
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			st := f.Status()
			return fmt.Errorf("fleet: waiting for all %d agents to be %s: %d are (%s): %w",
				len(f.agents), what, n, strings.Join(st.Problems, "; "), ctx.Err())
		}
	}
}

// WaitConnected waits until every agent is connected.
func (f *Fleet) WaitConnected(ctx context.Context) error {
	return f.waitCount(ctx, "connected", func() int { return f.connected })
}

// WaitWelcomed waits until every agent has answered a welcome on its
// current connection.
func (f *Fleet) WaitWelcomed(ctx context.Context) error {
	return f.waitCount(ctx, "welcomed", func() int { return f.welcomed })
}

// maxProblems bounds FleetStatus.Problems.
const maxProblems = 5

// Status aggregates the agents' status.
func (f *Fleet) Status() FleetStatus {
	s := FleetStatus{Agents: len(f.agents)}
	for _, a := range f.agents {
		st := a.Status()
		if st.Running {
			s.Running++
		}
		if st.Connected {
			s.Connected++
		}
		if st.Welcomed {
			s.Welcomed++
		}
		s.ConfigsReceived += st.ConfigsReceived
		s.FaultsInjected += st.FaultsInjected
		s.DialFailures += st.DialFailures
		if st.Running && !st.Connected && len(s.Problems) < maxProblems {
			why := st.LastError
			if why == "" {
				why = "not connected yet"
			}
			s.Problems = append(s.Problems, st.Name+": "+why)
		}
	}
	sort.Strings(s.Problems)
	return s
}
