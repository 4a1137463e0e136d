package fakeagent

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// writeTimeout bounds one frame write of an agent.
const writeTimeout = 5 * time.Second

// Status is a snapshot of an agent's state.
type Status struct {
	Name    string `json:"name"`
	Running bool   `json:"running"`
	// Connected: a connection to the controller is up (listening agents:
	// at least one controller is connected).
	Connected bool `json:"connected"`
	// Welcomed: on the current connection the agent answered a welcome
	// request with success.
	Welcomed bool `json:"welcomed"`
	// Connections counts the connections established so far.
	Connections int `json:"connections"`
	// DialFailures counts failed connection attempts.
	DialFailures int `json:"dial_failures"`
	// ConfigsReceived counts configuration pushes received.
	ConfigsReceived int `json:"configs_received"`
	// FaultsInjected counts requests on which the agent deviated from a
	// real agent (any action but a plain, undelayed reply).
	FaultsInjected int `json:"faults_injected"`
	// LastError says why the agent last failed to connect or lost its
	// connection.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// RetryIn is the backoff before the next connection attempt, while
	// the agent is waiting to reconnect.
	RetryIn time.Duration `json:"retry_in_ns,omitempty"`
	// URL is where a listening agent accepts the controller.
	URL string `json:"url,omitempty"`
}

// statusWatcher hears of changes to the connected and welcomed flags (a
// Fleet keeps its totals this way instead of scanning every agent).
type statusWatcher interface {
	agentChanged(connected, welcomed int)
}

// Agent is one fake agent. Create it with New; it is safe for concurrent
// use.
type Agent struct {
	opts       resolved
	name       string
	host       netip.Addr
	profile    *api.Profile
	topic      string
	transcript *Transcript
	// poke carries hello-repeat ticks from the shared clock to the loop.
	poke chan struct{}
	// dialSem bounds concurrent dials across a fleet; nil: unbounded.
	dialSem chan struct{}
	watcher statusWatcher

	// bg tracks goroutines outside the loop (delayed actions, closes) so
	// that Stop can wait for them.
	bg sync.WaitGroup

	mu        sync.Mutex
	running   bool
	cancel    context.CancelFunc
	done      chan struct{}
	killing   bool
	sess      *session
	listen    *listenRes
	boundPort int // the port a listening agent got, kept for restarts
	behaviour Behaviour
	hook      Hook
	rules     ruleState
	recent    []seenReqid
	unknownN  int
	config    *api.Configuration
	st        Status
	changed   chan struct{} // closed and replaced on status changes; nil until awaited
	helloSub  bool
	// pids are the made-up process ids of the agent and its nodes (mgmt
	// get_nodes), nextPID the last one handed out.
	pids    map[string]int64
	nextPID int64
}

type seenReqid struct {
	kind  api.EventKind
	reqid string
}

// New checks opts and returns a stopped agent.
func New(opts Options) (*Agent, error) {
	r, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	return newAgent(r), nil
}

func newAgent(r resolved) *Agent {
	epoch := r.Epoch
	if epoch.IsZero() {
		epoch = time.Now()
	}
	a := &Agent{
		opts:       r,
		name:       r.Name,
		host:       r.host,
		profile:    r.profile,
		topic:      r.profile.AgentTopic(r.Name),
		transcript: newTranscript(r.Name, epoch, r.TranscriptLimit),
		poke:       make(chan struct{}, 1),
		behaviour:  r.Behaviour,
		hook:       r.Hook,
		boundPort:  r.ListenPort,
	}
	a.st.Name = r.Name
	return a
}

// Name returns the agent's instance name.
func (a *Agent) Name() string { return a.name }

// Topic returns the agent's own topic.
func (a *Agent) Topic() string { return a.topic }

// Profile returns the agent's dialect.
func (a *Agent) Profile() *api.Profile { return a.profile }

// Transcript returns the agent's transcript.
func (a *Agent) Transcript() *Transcript { return a.transcript }

// Received returns the incoming transcript entries of kind.
func (a *Agent) Received(kind api.EventKind) []Entry { return a.transcript.Received(kind) }

// Sent returns the outgoing transcript entries of kind.
func (a *Agent) Sent(kind api.EventKind) []Entry { return a.transcript.Sent(kind) }

// Count returns how many messages of kind the agent received.
func (a *Agent) Count(kind api.EventKind) int { return a.transcript.Count(kind) }

// WaitFor waits for a transcript entry satisfying pred.
func (a *Agent) WaitFor(ctx context.Context, pred func(Entry) bool) (Entry, error) {
	return a.transcript.WaitFor(ctx, pred)
}

// Instance returns the api.Instance a configuration uses for this agent:
// 0.0.0.0 without a port for a dialing agent, 127.0.0.1 and its port for a
// listening one (once started, so that port 0 has become a real port).
func (a *Agent) Instance() api.Instance {
	if a.opts.Connect == ConnectListen {
		a.mu.Lock()
		port := a.boundPort
		a.mu.Unlock()
		return api.Instance{Name: a.name, Host: defaultHost, ListenPort: api.Some(broker.TCPPort(uint16(port)))}
	}
	return api.Instance{Name: a.name, Host: netip.IPv4Unspecified()}
}

// Port returns the port a listening agent accepts on (0 for a dialing
// agent, or before a port-0 agent first started).
func (a *Agent) Port() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.opts.Connect != ConnectListen {
		return 0
	}
	return a.boundPort
}

// URL returns the WebSocket URL a listening agent accepts the controller
// on ("" for a dialing agent or before the first Start).
func (a *Agent) URL() string {
	if p := a.Port(); p != 0 {
		return fmt.Sprintf("ws://127.0.0.1:%d/v1/messages/json", p)
	}
	return ""
}

// SetBehaviour replaces the agent's declarative behaviour (sequence
// positions start over).
func (a *Agent) SetBehaviour(b Behaviour) error {
	if err := b.Validate(a.profile); err != nil {
		return fmt.Errorf("agent %s: behaviour: %w", a.name, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.behaviour = b
	a.rules.counters = nil
	return nil
}

// SetHook replaces the agent's Go hook (nil removes it).
func (a *Agent) SetHook(h Hook) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hook = h
	a.rules.counters = nil
}

// Status returns a snapshot of the agent's state.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.st
	st.Running = a.running
	if a.opts.Connect == ConnectListen && a.boundPort != 0 {
		st.URL = fmt.Sprintf("ws://127.0.0.1:%d/v1/messages/json", a.boundPort)
	}
	return st
}

// Config returns the configuration the agent last adopted (nil if none,
// or after a standby).
func (a *Agent) Config() *api.Configuration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.config
}

// update changes the status under the lock, wakes waiters and tells the
// watcher how the connected and welcomed flags moved.
func (a *Agent) update(f func(st *Status)) {
	a.mu.Lock()
	oc, ow := a.st.Connected, a.st.Welcomed
	f(&a.st)
	if !a.st.Connected {
		a.st.Welcomed = false
	}
	nc, nw := a.st.Connected, a.st.Welcomed
	if a.changed != nil {
		close(a.changed)
		a.changed = nil
	}
	// Told under the lock, so that the watcher sums the changes in the
	// order they happened and never overshoots. (A Fleet never takes an
	// agent's lock while holding its own.)
	if a.watcher != nil && (oc != nc || ow != nw) {
		a.watcher.agentChanged(delta(oc, nc), delta(ow, nw))
	}
	a.mu.Unlock()
}

func delta(before, after bool) int {
	switch {
	case !before && after:
		return 1
	case before && !after:
		return -1
	}
	return 0
}

// WaitStatus blocks until pred holds for the agent's status, and returns
// that status. It wakes only on status changes.
func (a *Agent) WaitStatus(ctx context.Context, pred func(Status) bool) (Status, error) {
	for {
		st := a.Status()
		if pred(st) {
			return st, nil
		}
		a.mu.Lock()
		if a.changed == nil {
			a.changed = make(chan struct{})
		}
		ch := a.changed
		a.mu.Unlock()
		// The status may have changed between the check and taking the
		// channel; re-check before sleeping.
		if st2 := a.Status(); pred(st2) {
			return st2, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			st := a.Status()
			return st, fmt.Errorf("agent %s: waiting for its status (connected=%t welcomed=%t last error %q): %w",
				a.name, st.Connected, st.Welcomed, st.LastError, ctx.Err())
		}
	}
}

// WaitConnected waits until the agent is connected.
func (a *Agent) WaitConnected(ctx context.Context) error {
	_, err := a.WaitStatus(ctx, func(s Status) bool { return s.Connected })
	return err
}

// WaitWelcomed waits until the agent has answered a welcome on its current
// connection.
func (a *Agent) WaitWelcomed(ctx context.Context) error {
	_, err := a.WaitStatus(ctx, func(s Status) bool { return s.Welcomed })
	return err
}

// Start runs the agent in the background until Stop, Kill or the end of
// ctx. A listening agent binds its port before Start returns; a dialing
// agent connects (and reconnects) in the background and reports problems
// through Status.
func (a *Agent) Start(ctx context.Context) error {
	a.mu.Lock()
	if a.running {
		a.mu.Unlock()
		return fmt.Errorf("agent %s: already running", a.name)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	a.running, a.cancel, a.done, a.killing = true, cancel, done, false
	a.mu.Unlock()

	if a.opts.Connect == ConnectListen {
		lr, err := a.startListening(runCtx)
		if err != nil {
			cancel()
			a.mu.Lock()
			a.running = false
			a.mu.Unlock()
			close(done)
			a.update(func(st *Status) { st.LastError, st.LastErrorAt = err.Error(), time.Now() })
			return err
		}
		go a.runListen(runCtx, lr, done)
		return nil
	}
	go a.runDial(runCtx, done)
	return nil
}

// Stop closes the connection cleanly (a close frame) and stops the agent.
func (a *Agent) Stop() { a.halt(false) }

// Kill drops the connection abruptly (no close frame, as a crashed
// process) and stops the agent.
func (a *Agent) Kill() { a.halt(true) }

// Restart stops the agent cleanly (if running) and starts it again; its
// transcript and counters carry on.
func (a *Agent) Restart(ctx context.Context) error {
	a.Stop()
	return a.Start(ctx)
}

func (a *Agent) halt(kill bool) {
	a.mu.Lock()
	cancel, done := a.cancel, a.done
	if a.running {
		a.killing = kill
	}
	a.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
	a.bg.Wait()
}

// finish marks the agent stopped; the loop calls it on its way out.
func (a *Agent) finish() {
	a.mu.Lock()
	a.running = false
	a.mu.Unlock()
	a.helloRepeat(false)
	a.update(func(st *Status) { st.Connected, st.RetryIn = false, 0 })
}

func (a *Agent) isKilling() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.killing
}

// runDial connects, serves the connection, and reconnects with backoff.
func (a *Agent) runDial(ctx context.Context, done chan struct{}) {
	defer close(done)
	defer a.finish()
	backoff := a.opts.backoffInit
	for {
		conn, err := a.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.transcript.add(Entry{Dir: State, Detail: "dial failed", Err: err.Error(), Conn: a.connNo()})
			a.update(func(st *Status) {
				st.DialFailures++
				st.LastError, st.LastErrorAt, st.RetryIn = err.Error(), time.Now(), backoff
			})
			if a.opts.NoReconnect || !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, a.opts.backoffMax)
			continue
		}
		backoff = a.opts.backoffInit
		a.serveConn(ctx, conn)
		if ctx.Err() != nil || a.opts.NoReconnect {
			return
		}
		a.update(func(st *Status) { st.RetryIn = backoff })
		if !sleep(ctx, backoff) {
			return
		}
	}
}

func (a *Agent) dial(ctx context.Context) (*broker.Conn, error) {
	if a.dialSem != nil {
		select {
		case a.dialSem <- struct{}{}:
			defer func() { <-a.dialSem }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	dctx, cancel := context.WithTimeout(ctx, a.opts.dialTimeout)
	defer cancel()
	conn, err := broker.Dial(dctx, a.opts.url, []string{a.topic}, &broker.DialOptions{QueueSize: a.opts.queueSize, Dialer: agentDialer})
	if err != nil {
		return nil, fmt.Errorf("connect to controller: %w", err)
	}
	return conn, nil
}

// agentDialer keeps an idle agent's connection small: an agent mostly
// waits, so its write buffer comes from a shared pool while it writes, and
// its read buffer is small (large frames are read in several steps).
var agentDialer = &websocket.Dialer{
	Proxy:           http.ProxyFromEnvironment,
	ReadBufferSize:  1024,
	WriteBufferSize: 4096,
	WriteBufferPool: &sync.Pool{},
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (a *Agent) connNo() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st.Connections
}

// serveConn runs one dialed connection until it ends or ctx is done.
func (a *Agent) serveConn(ctx context.Context, conn *broker.Conn) {
	s := a.sessionUp(ctx, &dialLink{conn: conn})
	defer a.sessionDown(s, func() string {
		if err := conn.Err(); err != nil {
			return err.Error()
		}
		return "connection ended"
	}, false)
	a.greet(s)
	msgs, errs := conn.Messages(), conn.Errors()
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				return
			}
			a.onFrame(s, m.Topic, m.Raw, m.Data, m.Err)
		case f, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			a.transcript.add(Entry{Dir: In, Conn: s.num(), Action: ActionIgnore, Err: f.Code + ": " + f.Context,
				Detail: "error frame from the controller"})
		case <-a.poke:
			a.repeatHello(s)
		case <-ctx.Done():
			if a.isKilling() {
				conn.Kill()
			} else {
				_ = conn.Close()
			}
			return
		}
	}
}

// sessionUp records a new connection.
func (a *Agent) sessionUp(ctx context.Context, l link) *session {
	var n int
	a.update(func(st *Status) {
		st.Connections++
		n = st.Connections
		st.Connected, st.Welcomed, st.RetryIn = true, false, 0
	})
	s := &session{agent: a, ctx: ctx, link: l}
	s.n.Store(int64(n))
	a.mu.Lock()
	a.sess = s
	a.mu.Unlock()
	a.transcript.add(Entry{Dir: State, Conn: n, Detail: "connected"})
	return s
}

// sessionDown records the end of a connection and cancels its pending
// delayed actions. stillConnected says whether another connection (of a
// listening agent) is still up.
func (a *Agent) sessionDown(s *session, reason func() string, stillConnected bool) {
	s.end()
	if !stillConnected {
		a.helloRepeat(false)
	}
	a.mu.Lock()
	if a.sess == s {
		a.sess = nil
	}
	a.mu.Unlock()
	why := reason()
	a.transcript.add(Entry{Dir: State, Conn: s.num(), Detail: "disconnected", Err: why})
	a.update(func(st *Status) {
		st.Connected = stillConnected
		st.LastError, st.LastErrorAt = why, time.Now()
	})
}

// greet sends the hello a new connection starts with, per policy.
func (a *Agent) greet(s *session) {
	switch a.opts.Hello {
	case HelloNone:
		return
	case HelloRepeat:
		a.helloRepeat(true)
	}
	a.sendHello(s, a.opts.apiVersion, "hello")
}

func (a *Agent) repeatHello(s *session) {
	if a.opts.Hello != HelloRepeat {
		return
	}
	a.mu.Lock()
	welcomed := a.st.Welcomed
	a.mu.Unlock()
	if welcomed {
		a.helloRepeat(false)
		return
	}
	a.sendHello(s, a.opts.apiVersion, "hello (repeat)")
}

// helloRepeat joins or leaves the shared hello clock.
func (a *Agent) helloRepeat(on bool) {
	a.mu.Lock()
	if a.helloSub == on || (on && a.opts.Hello != HelloRepeat) {
		a.mu.Unlock()
		return
	}
	a.helloSub = on
	a.mu.Unlock()
	if on {
		subscribeHello(a, a.opts.helloInterval)
	} else {
		unsubscribeHello(a, a.opts.helloInterval)
	}
}

func (a *Agent) sendHello(s *session, version uint64, why Action) error {
	return a.send(s, a.hello(version), why)
}

// endpointID is the Broker endpoint id a mgmt hello carries; a fake agent
// has no Broker endpoint, so it uses a stable id derived from its name.
func (a *Agent) endpointID() string { return "zcc-fakeagent-" + a.name }

// newRNG derives the agent's random source from the seed and its name, so
// that each agent of a fleet draws its own deterministic sequence whatever
// the goroutine scheduling.
func (a *Agent) newRNG() *rand.Rand {
	h := fnv.New64a()
	_, _ = h.Write([]byte(a.name))
	return rand.New(rand.NewPCG(a.opts.Seed, h.Sum64()))
}

// current returns the live session, or an error naming the agent.
func (a *Agent) current() (*session, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sess == nil {
		return nil, fmt.Errorf("agent %s: not connected", a.name)
	}
	return a.sess, nil
}

// SendHello re-sends the agent's hello now.
func (a *Agent) SendHello(ctx context.Context) error {
	return a.SendHelloVersion(ctx, a.opts.apiVersion)
}

// SendHelloVersion sends a hello announcing api_version v.
func (a *Agent) SendHelloVersion(ctx context.Context, v uint64) error {
	s, err := a.current()
	if err != nil {
		return err
	}
	return a.sendCtx(ctx, s, a.hello(v), "hello")
}

// SendNotifyError sends notify_error(name, msg, node).
func (a *Agent) SendNotifyError(ctx context.Context, msg, node string) error {
	return a.Send(ctx, api.NotifyError{Instance: a.name, Msg: msg, Node: node})
}

// SendNotifyLog sends notify_log(name, msg, node).
func (a *Agent) SendNotifyLog(ctx context.Context, msg, node string) error {
	return a.Send(ctx, api.NotifyLog{Instance: a.name, Msg: msg, Node: node})
}

// Send publishes any typed message on the agent's topic.
func (a *Agent) Send(ctx context.Context, m api.Message) error {
	s, err := a.current()
	if err != nil {
		return err
	}
	return a.sendCtx(ctx, s, m, "spontaneous")
}

// SendRaw writes text as one frame, unchecked (e.g. invalid JSON).
func (a *Agent) SendRaw(ctx context.Context, text []byte) error {
	s, err := a.current()
	if err != nil {
		return err
	}
	err = s.link.writeRaw(ctx, text)
	e := Entry{Dir: Out, Conn: s.num(), Raw: string(text), Action: "spontaneous"}
	if err != nil {
		e.Err = err.Error()
	}
	a.transcript.add(e)
	if err != nil {
		return fmt.Errorf("agent %s: %w", a.name, err)
	}
	return nil
}

// send encodes and publishes m on the agent's topic, within the session's
// write timeout, and records it.
func (a *Agent) send(s *session, m api.Message, why Action) error {
	ctx, cancel := s.writeContext()
	defer cancel()
	return a.sendCtx(ctx, s, m, why)
}

func (a *Agent) sendCtx(ctx context.Context, s *session, m api.Message, why Action) error {
	e := Entry{Dir: Out, Conn: s.num(), Topic: a.topic, Kind: m.Kind(), Msg: m, Action: why}
	ev, err := a.profile.Encode(m)
	if err != nil {
		e.Err = fmt.Sprintf("encode: %v", err)
		a.transcript.add(e)
		return fmt.Errorf("agent %s: encode %T: %w", a.name, m, err)
	}
	e.Event = ev.Name
	raw, err := broker.EventFrame(a.topic, ev).Encode()
	if err != nil {
		e.Err = fmt.Sprintf("encode frame: %v", err)
		a.transcript.add(e)
		return fmt.Errorf("agent %s: encode frame: %w", a.name, err)
	}
	e.Raw = string(raw)
	err = s.link.publish(ctx, a.topic, ev, raw)
	if err != nil {
		e.Err = err.Error()
	}
	a.transcript.add(e)
	if err != nil {
		return fmt.Errorf("agent %s: send %s: %w", a.name, a.profile.ShortName(m.Kind()), err)
	}
	if r, ok := m.(api.AgentWelcomeResponse); ok && r.Result.Success && r.Result.Instance == a.name {
		// Off the hello clock first, so that whoever waits for Welcomed
		// sees no more repeats.
		a.helloRepeat(false)
		a.update(func(st *Status) {
			if st.Connected {
				st.Welcomed = true
			}
		})
	}
	return nil
}
