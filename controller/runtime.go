package controller

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// Options configures a running controller. Zero values give Zeek 4.2's
// defaults where Zeek has one.
type Options struct {
	// ListenAddr is where the WebSocket server listens; default
	// "127.0.0.1:0" (an ephemeral port, see Controller.URL).
	ListenAddr string
	// Profile is the API dialect: api.CC42 (default; Zeek 4.2's
	// ClusterController API) or api.Mgmt (Zeek 5.2+'s Management API).
	Profile *api.Profile
	// Name is the controller's node name in log records; default
	// "controller-<hostname>", as Zeek's ClusterController::name.
	Name string
	// Mode is ModeZeek42 (default) or ModeFixed.
	Mode Mode
	// RequestTimeout is how old a request must be to expire; default 10 s.
	RequestTimeout time.Duration
	// SweepInterval is how often expired requests are swept (Zeek's
	// table_expire_interval); default 10 s (cc42) or 2 s (mgmt). A request
	// times out between RequestTimeout and RequestTimeout + SweepInterval
	// after it arrived.
	SweepInterval time.Duration
	// ConnectRetry is the pause between attempts to reach a listening
	// agent; default 1 s.
	ConnectRetry time.Duration
	// Logger receives the controller's log (spec §8) with attributes role
	// and node; default: discard.
	Logger *slog.Logger
	// Hub is passed to broker.NewHub (frame size limit, queue sizes, …).
	// Its Logger defaults to Logger.
	Hub broker.HubOptions
	// ObserverBuffer is the capacity of the AgentsReady and Logs streams;
	// default 1024. When a stream is full its oldest entry is dropped, so
	// an unread stream never slows the controller down.
	ObserverBuffer int
	// NewID generates request ids; default: 15 random alphanumerics, like
	// Zeek's unique_id("").
	NewID func() string
	// Defects deliberately break the controller to test conformance
	// suites against it (see Defect). Leave empty in any real use.
	Defects []Defect
	// Mgmt holds the Management profile's settings (port auto-assignment,
	// the controller's Broker port, agent identity); zero is Zeek's
	// default.
	Mgmt MgmtConfig
	// StateDir (mgmt only) keeps the staged, ready and deployed
	// configurations in StateDir/StateFileName across restarts, as Zeek
	// keeps them in its state directory, and the controller redeploys the
	// deployed one when it starts. Empty: nothing is kept.
	StateDir string
}

// Defaults of the runtime.
const (
	DefaultListenAddr     = "127.0.0.1:0"
	DefaultConnectRetry   = time.Second
	DefaultObserverBuffer = 1024
	inputQueue            = 4096
	dialQueue             = 1024
)

// Controller is a running reference controller: a Core fed by one event
// loop, behind a broker Hub served over WebSocket.
type Controller struct {
	opts    Options
	profile *api.Profile
	log     *slog.Logger

	mu   sync.Mutex // guards core
	core *Core

	hub    *broker.Hub
	server *broker.Server
	local  *broker.Local

	inputs chan Input
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	loopWG sync.WaitGroup
	dialWG sync.WaitGroup

	dialMu  sync.Mutex
	dialers map[string]bool        // host:port being dialled
	dialed  map[uint64]*dialedConn // live dialled connections by peer id
	dialSeq uint64

	agentsReady chan api.NotifyAgentsReady
	logs        chan LogRecord

	// The last configuration push's Broker value (loop goroutine only).
	pushKey   configKey
	pushValue broker.Value
	pushValid bool
	// The same for mgmt's deploy_request.
	deployKey   configKey
	deployValue broker.Value
	deployValid bool

	// statePath is where the mgmt configurations are kept ("": nowhere).
	statePath string

	lifeMu    sync.Mutex // guards stopAfter, set after Close may already run
	stopAfter func() bool
	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
}

// Start starts a controller. It runs until Close is called or ctx ends.
func Start(ctx context.Context, opts Options) (*Controller, error) {
	if opts.ListenAddr == "" {
		opts.ListenAddr = DefaultListenAddr
	}
	if opts.Profile == nil {
		opts.Profile = api.CC42
	}
	if opts.Name == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		opts.Name = "controller-" + host
	}
	if opts.ConnectRetry == 0 {
		opts.ConnectRetry = DefaultConnectRetry
	}
	if opts.ConnectRetry < 0 {
		return nil, fmt.Errorf("controller: connect retry %v is negative", opts.ConnectRetry)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ObserverBuffer <= 0 {
		opts.ObserverBuffer = DefaultObserverBuffer
	}
	if opts.NewID == nil {
		opts.NewID = RandomID
	}
	statePath, err := prepareStateDir(&opts)
	if err != nil {
		return nil, err
	}
	core, err := NewCore(Config{
		Profile:        opts.Profile,
		Mode:           opts.Mode,
		RequestTimeout: opts.RequestTimeout,
		SweepInterval:  opts.SweepInterval,
		NewID:          opts.NewID,
		Start:          time.Now(),
		Defects:        opts.Defects,
		Mgmt:           opts.Mgmt,
	})
	if err != nil {
		return nil, err
	}
	hubOpts := opts.Hub
	if hubOpts.Logger == nil {
		hubOpts.Logger = opts.Logger.With("component", "hub")
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c := &Controller{
		opts:        opts,
		profile:     opts.Profile,
		log:         opts.Logger.With("role", "CONTROLLER", "node", opts.Name),
		core:        core,
		hub:         broker.NewHub(hubOpts),
		inputs:      make(chan Input, inputQueue),
		ctx:         runCtx,
		cancel:      cancel,
		dialers:     map[string]bool{},
		dialed:      map[uint64]*dialedConn{},
		agentsReady: make(chan api.NotifyAgentsReady, opts.ObserverBuffer),
		logs:        make(chan LogRecord, opts.ObserverBuffer),
		done:        make(chan struct{}),
		statePath:   statePath,
	}
	c.hub.OnPeer(c.onPeer)
	c.local = c.hub.Subscribe([]string{c.profile.ControllerTopic, c.profile.AgentTopicPrefix}, c.deliver)
	c.server, err = broker.Serve(ctx, opts.ListenAddr, c.hub)
	if err != nil {
		cancel()
		c.local.Close()
		_ = c.hub.Close()
		return nil, fmt.Errorf("controller: listen on %s: %w", opts.ListenAddr, err)
	}
	// Logged before anything can close the log stream.
	c.emitLog(LogRecord{Level: slog.LevelInfo, Msg: "controller is live"}, "url", c.server.URL(), "mode", opts.Mode.String())
	c.loopWG.Add(1)
	go c.loop()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	c.lifeMu.Lock()
	c.stopAfter = stop
	c.lifeMu.Unlock()
	return c, nil
}

// URL is the controller's WebSocket URL, ws://HOST:PORT/v1/messages/json.
func (c *Controller) URL() string { return c.server.URL() }

// Name is the controller's node name as it appears in the log.
func (c *Controller) Name() string { return c.opts.Name }

// Addr is the listening address.
func (c *Controller) Addr() net.Addr { return c.server.Addr() }

// AgentsReady streams every notify_agents_ready the controller raises.
// The stream is closed by Close.
func (c *Controller) AgentsReady() <-chan api.NotifyAgentsReady { return c.agentsReady }

// Logs streams the controller's log records (the same lines as Logger
// gets, debug included). The stream is closed by Close.
func (c *Controller) Logs() <-chan LogRecord { return c.logs }

// Snapshot returns a copy of the controller's state. It may be called
// from any goroutine, also after Close.
func (c *Controller) Snapshot() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.core.Snapshot()
}

// Done is closed when the controller has shut down.
func (c *Controller) Done() <-chan struct{} { return c.done }

// Close stops the controller: the listener, every client and dialled
// connection, and the event loop. It waits for all of its goroutines and
// is safe to call more than once.
func (c *Controller) Close() error {
	c.closeOnce.Do(func() {
		c.lifeMu.Lock()
		if c.stopAfter != nil {
			c.stopAfter()
		}
		c.lifeMu.Unlock()
		c.cancel()
		c.closeErr = c.server.Close()
		c.loopWG.Wait()
		c.dialWG.Wait()
		close(c.agentsReady)
		close(c.logs)
		close(c.done)
	})
	return c.closeErr
}

// --- inputs ------------------------------------------------------------------

// deliver runs on the sender's goroutine: decoding happens there, in
// parallel, and only typed inputs reach the loop.
func (c *Controller) deliver(d broker.Delivery) {
	c.enqueue(c.decode(d.Topic, d.Data, Peer{Kind: PeerHub, ID: uint64(d.From)}))
}

func (c *Controller) decode(topic string, data broker.Value, from Peer) Input {
	ev, err := broker.EventFromValue(data)
	if err != nil {
		return Undecodable{Topic: topic, From: from, Err: fmt.Errorf("payload is not a Zeek event: %w", err)}
	}
	m, err := c.profile.Decode(ev)
	if err != nil {
		return Undecodable{Topic: topic, From: from, Err: err}
	}
	return Receive{Topic: topic, From: from, Msg: m}
}

func (c *Controller) onPeer(ev broker.PeerEvent) {
	peer := Peer{Kind: PeerHub, ID: uint64(ev.ID)}
	if ev.Connected {
		in := PeerConnected{Peer: peer}
		if ap, err := netip.ParseAddrPort(ev.Remote); err == nil {
			in.Addr = ap.Addr().Unmap()
		}
		c.enqueue(in)
		return
	}
	c.enqueue(PeerLost{Peer: peer})
}

// enqueue hands an input to the loop, waiting while the loop is behind
// (backpressure on the sender) unless the controller is closing.
func (c *Controller) enqueue(in Input) {
	select {
	case c.inputs <- in:
	case <-c.ctx.Done():
	}
}

// --- the event loop ------------------------------------------------------------

func (c *Controller) loop() {
	defer c.loopWG.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var in Input = Startup{}
	for {
		if in == nil {
			select {
			case <-c.ctx.Done():
				timer.Stop()
				return
			case in = <-c.inputs:
			case <-timer.C:
				in = Tick{}
			}
		}
		c.mu.Lock()
		out := c.core.Step(time.Now(), in)
		c.mu.Unlock()
		c.apply(out)
		in = nil
		timer.Stop()
		if !out.Wake.IsZero() {
			timer.Reset(max(time.Until(out.Wake), 0))
		}
	}
}

// apply carries out one step's output.
func (c *Controller) apply(out Output) {
	for _, l := range out.Logs {
		c.emitLog(l)
	}
	for _, o := range out.Publish {
		c.publish(o)
	}
	for _, e := range out.Errors {
		if e.To.Kind != PeerHub {
			c.log.Debug("no error frame for " + e.To.String() + ": only clients of the controller's hub can receive one")
			continue
		}
		if err := c.hub.SendError(broker.PeerID(e.To.ID), e.Code, e.Context); err != nil {
			c.log.Debug(fmt.Sprintf("error frame to %s not sent: %v", e.To, err))
		}
	}
	for _, r := range out.AgentsReady {
		offer(c.agentsReady, r)
	}
	for _, d := range out.Dials {
		c.startDialer(d)
	}
	if out.Configs != nil && c.statePath != "" {
		if err := saveState(c.statePath, c.profile, *out.Configs); err != nil {
			c.emitLog(LogRecord{Level: slog.LevelError, Msg: "cannot keep the configurations: " + err.Error()})
		}
	}
}

func (c *Controller) publish(o Outbound) {
	ev, err := c.encode(o.Msg)
	if err != nil {
		c.emitLog(LogRecord{Level: slog.LevelError, Msg: fmt.Sprintf("cannot encode %T for %s: %v", o.Msg, o.Topic, err)})
		return
	}
	if err := c.local.PublishEvent(o.Topic, ev); err != nil && !errors.Is(err, broker.ErrClosed) {
		c.emitLog(LogRecord{Level: slog.LevelError, Msg: fmt.Sprintf("publish %s on %s: %v", ev.Name, o.Topic, err)})
	}
	if strings.HasPrefix(o.Topic, c.profile.AgentTopicPrefix) {
		c.publishDialed(o.Topic, ev)
	}
}

// encode converts a message to its wire event. A configuration push goes
// to every ready agent with the same Configuration and only the reqid
// differs, so the configuration's Broker value is built once per batch:
// with N agents that saves N-1 conversions of an O(N)-sized record.
func (c *Controller) encode(m api.Message) (broker.Event, error) {
	if d, ok := m.(api.AgentDeployRequest); ok {
		return c.encodeDeploy(d)
	}
	push, ok := m.(api.AgentSetConfigurationRequest)
	if !ok {
		return c.profile.Encode(m)
	}
	key := configKeyOf(push.Config)
	if key != c.pushKey || !c.pushValid {
		v, err := c.profile.ConfigurationValue(push.Config)
		if err == nil {
			// Encode the JSON once too: every frame of the batch copies it.
			v, err = broker.Preencoded(v)
		}
		if err != nil {
			return broker.Event{}, fmt.Errorf("encode set_configuration_request arg 1 (config): %w", err)
		}
		c.pushKey, c.pushValue, c.pushValid = key, v, true
	}
	name, _ := c.profile.EventName(api.KindAgentSetConfigurationRequest)
	return broker.NewEvent(name, broker.String(push.Reqid), c.pushValue), nil
}

// configKey identifies a Configuration by its backing arrays: the core
// never modifies a configuration it holds, so the same arrays mean the
// same content.
type configKey struct {
	id       string
	inst     *api.Instance
	numInst  int
	node     *api.Node
	numNodes int
}

func configKeyOf(cfg api.Configuration) configKey {
	k := configKey{id: cfg.ID, numInst: len(cfg.Instances), numNodes: len(cfg.Nodes)}
	if len(cfg.Instances) > 0 {
		k.inst = &cfg.Instances[0]
	}
	if len(cfg.Nodes) > 0 {
		k.node = &cfg.Nodes[0]
	}
	return k
}

func (c *Controller) emitLog(l LogRecord, attrs ...any) {
	c.log.Log(context.Background(), l.Level, l.Msg, attrs...)
	offer(c.logs, l)
}

// offer sends v without blocking, dropping the oldest entry of a full
// channel. The loop is the only sender, so this terminates.
func offer[T any](ch chan T, v T) {
	for {
		select {
		case ch <- v:
			return
		default:
		}
		select {
		case <-ch:
		default:
		}
	}
}

// --- ids -------------------------------------------------------------------------

const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// RandomID returns 15 random alphanumerics, the shape of Zeek's
// unique_id("").
func RandomID() string {
	var b [15]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b[:])
}
