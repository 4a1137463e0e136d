package controller

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strconv"
	"time"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// PeerKind tells the runtime how to reach a peer.
type PeerKind uint8

const (
	// PeerNone is an unknown or in-process sender; error replies to it are
	// not possible and its loss is never reported.
	PeerNone PeerKind = iota
	// PeerHub is a WebSocket client of the controller's own hub.
	PeerHub
	// PeerDialed is a connection the controller dialled to a listening
	// agent.
	PeerDialed
)

// Peer identifies the connection a message came from. The core learns
// which peer speaks for which instance from the hellos it sees.
type Peer struct {
	Kind PeerKind
	ID   uint64
}

func (p Peer) String() string {
	switch p.Kind {
	case PeerHub:
		return "hub peer " + strconv.FormatUint(p.ID, 10)
	case PeerDialed:
		return "dialled peer " + strconv.FormatUint(p.ID, 10)
	}
	return "local"
}

// Input is one thing that happened to the controller: Receive,
// Undecodable, PeerConnected, PeerLost, Startup or Tick.
type Input interface{ isInput() }

// Receive is a decoded event that arrived on Topic from From.
type Receive struct {
	Topic string
	From  Peer
	Msg   api.Message
}

// Undecodable is a data message on a subscribed topic that is not an event
// of the profile (wrong argument count or types, unknown name, not an
// event at all). Err says why, naming the event and argument.
type Undecodable struct {
	Topic string
	From  Peer
	Err   error
}

// PeerLost reports that a connection went away.
type PeerLost struct{ Peer Peer }

// PeerConnected reports a new connection and where it comes from: the
// Management profile records a known agent's host (and, for a connection
// the controller dialled, its listening port) from the connection its
// hello arrived on, as Zeek does from the Broker peering.
type PeerConnected struct {
	Peer Peer
	Addr netip.Addr
	// Port is the agent's listening port when the controller dialled it.
	Port api.Opt[broker.Port]
}

// Startup is the first input of a running controller. Under the
// Management profile it redeploys a restored DEPLOYED configuration
// (Config.Restore) as Zeek's zeek_init does; otherwise it does nothing.
// Only the first Startup counts.
type Startup struct{}

// Tick only advances time; the runtime sends it when Output.Wake is due.
type Tick struct{}

func (Receive) isInput()       {}
func (Undecodable) isInput()   {}
func (PeerConnected) isInput() {}
func (PeerLost) isInput()      {}
func (Startup) isInput()       {}
func (Tick) isInput()          {}

// Outbound is a message to publish on Topic.
type Outbound struct {
	Topic string
	Msg   api.Message
}

// ErrorReply asks the runtime to send an error frame to a peer.
type ErrorReply struct {
	To      Peer
	Code    string
	Context string
}

// LogRecord is one line of the controller's log (spec §8).
type LogRecord struct {
	Level slog.Level
	Msg   string
}

// DialRequest asks the runtime to connect to a listening agent and keep
// reconnecting (Zeek's Broker::peer with connect_retry). Zeek never
// unpeers, so there is no matching stop request.
type DialRequest struct {
	Instance string
	Host     netip.Addr
	Port     broker.Port
}

// Output is everything one Step asks the runtime to do, in order.
type Output struct {
	Publish     []Outbound
	Errors      []ErrorReply
	Logs        []LogRecord
	AgentsReady []api.NotifyAgentsReady
	Dials       []DialRequest
	// Configs is set when the Management profile's staged, ready or
	// deployed configuration changed: the state to persist.
	Configs *StoredConfigs
	// Wake is when the core next needs a Tick; zero when no request can
	// expire.
	Wake time.Time
}

// Config parameterises a Core.
type Config struct {
	// Profile is the API dialect: api.CC42 (set_configuration, Zeek 4.2)
	// or api.Mgmt (stage/deploy, Zeek 5.2+; see MgmtConfig). Default
	// api.CC42.
	Profile *api.Profile
	Mode    Mode
	// RequestTimeout is Zeek's ClusterController::request_timeout.
	RequestTimeout time.Duration
	// SweepInterval is Zeek's table_expire_interval: requests expire at
	// the first sweep at or after creation + RequestTimeout.
	SweepInterval time.Duration
	// NewID returns a fresh request id (Zeek's unique_id("")).
	NewID func() string
	// Start is the origin of the sweep grid: sweeps run at Start + k ×
	// SweepInterval, k ≥ 1.
	Start time.Time
	// Defects deliberately break the controller, for testing conformance
	// suites (see Defect). Empty in any real use.
	Defects []Defect
	// Mgmt holds the settings only the Management profile uses.
	Mgmt MgmtConfig
}

// Defaults of Zeek 4.2.
const (
	DefaultRequestTimeout = 10 * time.Second
	DefaultSweepInterval  = 10 * time.Second
)

// DefaultMgmtSweepInterval is the sweep interval of Zeek 5.0+'s
// controller, which redefines table_expire_interval to 2 s: requests time
// out 10–12 s after they arrived.
const DefaultMgmtSweepInterval = 2 * time.Second

// Core is the controller's state machine (spec §5, §6): one input at a
// time in, everything to do out. It does no I/O, reads no clock and starts
// no goroutines; it is not safe for concurrent use.
type Core struct {
	cfg     Config
	p       *api.Profile
	defects defectSet

	instances map[string]api.Instance // g_instances
	// known is g_instances_known. cc42 only needs the names; mgmt keeps
	// each agent's Instance (host and, if the controller dialled it, port)
	// as Zeek 5.0+ does.
	known   map[string]api.Instance
	ready   map[string]bool   // g_instances_ready
	pending string            // g_config_reqid_pending
	current api.Configuration // g_config_current

	// speakers maps an instance to the peer its latest hello came from.
	speakers map[string]Peer
	// peers is what PeerConnected told about each live connection.
	peers map[Peer]PeerConnected

	// mgmt is the Management profile's state; nil under cc42.
	mgmt *mgmtState
	// started records the first Startup.
	started bool

	table requestTable
	seq   uint64 // creation counter, for fixed-mode test-timeout keys

	now       time.Time
	lastSweep time.Time

	out   Output
	queue []queuedEvent
}

// queuedEvent is a Zeek event raised with `event`: it runs after the
// current handler. Controller responses are auto-published when they are
// dispatched, so they queue too.
type queuedEvent struct {
	publish *Outbound
	expired *request // request_expired
	isReady bool     // notify_agents_ready(ready)
	ready   []string
}

// NewCore validates cfg and returns a core in Zeek's start state.
func NewCore(cfg Config) (*Core, error) {
	if cfg.Profile == nil {
		cfg.Profile = api.CC42
	}
	isMgmt := cfg.Profile.Supports(api.KindDeployRequest)
	required := []api.EventKind{api.KindSetConfigurationRequest, api.KindAgentSetConfigurationRequest, api.KindAgentWelcomeRequest}
	if isMgmt {
		required = mgmtRequiredKinds
	}
	for _, k := range required {
		if !cfg.Profile.Supports(k) {
			return nil, fmt.Errorf("controller: profile %s is not supported: it has no event of kind %d (the reference controller speaks the ClusterController API of cc42 or the Management API of mgmt)",
				cfg.Profile.Name, k)
		}
	}
	if cfg.Mode != ModeZeek42 && cfg.Mode != ModeFixed {
		return nil, fmt.Errorf("controller: unknown mode %d", cfg.Mode)
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = DefaultSweepInterval
		if isMgmt {
			cfg.SweepInterval = DefaultMgmtSweepInterval
		}
	}
	if cfg.RequestTimeout < 0 {
		return nil, fmt.Errorf("controller: request timeout %v is negative", cfg.RequestTimeout)
	}
	if cfg.SweepInterval < 0 {
		return nil, fmt.Errorf("controller: sweep interval %v is negative", cfg.SweepInterval)
	}
	if cfg.NewID == nil {
		return nil, errors.New("controller: Config.NewID is required")
	}
	defects, err := newDefectSet(cfg.Defects)
	if err != nil {
		return nil, err
	}
	c := &Core{
		defects:   defects,
		cfg:       cfg,
		p:         cfg.Profile,
		instances: map[string]api.Instance{},
		known:     map[string]api.Instance{},
		ready:     map[string]bool{},
		speakers:  map[string]Peer{},
		peers:     map[Peer]PeerConnected{},
		now:       cfg.Start,
		lastSweep: cfg.Start,
	}
	c.table.init()
	if isMgmt {
		m, err := newMgmtState(&c.cfg.Mgmt)
		if err != nil {
			return nil, err
		}
		c.mgmt = m
	} else if cfg.Mgmt.Restore != nil {
		return nil, errors.New("controller: Config.Mgmt.Restore needs the mgmt profile")
	}
	return c, nil
}

// Step feeds one input at time now and returns what to do. Time never runs
// backwards inside the core: an earlier now counts as the latest seen.
func (c *Core) Step(now time.Time, in Input) Output {
	c.out = Output{}
	c.advance(now)
	c.drain()
	switch in := in.(type) {
	case Receive:
		if c.mgmt != nil {
			c.receiveMgmt(in)
		} else {
			c.receive(in)
		}
	case Undecodable:
		c.undecodable(in)
	case PeerConnected:
		c.peers[in.Peer] = in
	case PeerLost:
		c.peerLost(in.Peer)
		delete(c.peers, in.Peer)
	case Startup:
		if !c.started {
			c.started = true
			if c.mgmt != nil {
				c.startupMgmt()
			}
		}
	case Tick, nil:
	}
	c.drain()
	c.out.Wake = c.nextWake()
	out := c.out
	c.out = Output{}
	return out
}

func (c *Core) receive(in Receive) {
	switch m := in.Msg.(type) {
	case api.GetInstancesRequest:
		c.onGetInstances(m.Reqid)
	case api.SetConfigurationRequest:
		c.onSetConfiguration(m.Reqid, m.Config)
	case api.TestTimeoutRequest:
		c.onTestTimeout(m.Reqid, m.WithState)
	case api.NotifyAgentHello:
		c.onHello(m, in.From)
	case api.AgentWelcomeResponse:
		c.onWelcomeResponse(m.Reqid, m.Result)
	case api.AgentSetConfigurationResponse:
		c.onAgentSetConfigurationResponse(m.Reqid, m.Result)
	case api.NotifyAgentsReady:
		// Zeek dispatches a received event to its local handler, even one
		// meant to be raised only locally.
		c.onNotifyAgentsReady(m.Instances)
	case api.NotifyError:
		// Zeek's handler is empty; zcc notes it at debug level.
		c.debugf("notify_error from %s: %s (node %q) — ignored, as in Zeek", m.Instance, m.Msg, m.Node)
	case api.NotifyLog:
		c.debugf("notify_log from %s: %s (node %q) — ignored, as in Zeek", m.Instance, m.Msg, m.Node)
	case api.NotifyChange:
		c.debugf("notify_change from %s: node %s %v -> %v — ignored, as in Zeek", m.Instance, m.Node.Name, m.Old, m.New)
	default:
		// Known events without a controller handler (responses, the
		// controller's own requests to agents, agent_standby_response)
		// are dropped silently, as Zeek does.
	}
}

func (c *Core) undecodable(in Undecodable) {
	reason := "undecodable message"
	if in.Err != nil {
		reason = in.Err.Error()
	}
	c.logf(slog.LevelWarn, "dropped event from %s on topic %s: %s", in.From, in.Topic, reason)
	if in.From.Kind != PeerNone {
		c.out.Errors = append(c.out.Errors, ErrorReply{
			To:      in.From,
			Code:    broker.CodeDeserializationFailed,
			Context: broker.ContextBadEvent + ": " + reason,
		})
	}
}

// --- time and the request table (spec §6) ----------------------------------

// advance moves the clock to now and runs the sweep that is due, if any.
// Several missed sweep points collapse into one at the latest of them: an
// entry due at an earlier point is due at the later one too, and entries
// still expire in creation order.
func (c *Core) advance(now time.Time) {
	if now.Before(c.now) {
		now = c.now
	}
	c.now = now
	elapsed := now.Sub(c.cfg.Start)
	if elapsed < c.cfg.SweepInterval {
		return
	}
	grid := c.cfg.Start.Add(elapsed / c.cfg.SweepInterval * c.cfg.SweepInterval)
	if !grid.After(c.lastSweep) {
		return
	}
	c.lastSweep = grid
	for _, r := range c.table.expire(grid, c.cfg.RequestTimeout) {
		c.queue = append(c.queue, queuedEvent{expired: r})
	}
}

// nextWake is the sweep point at which the oldest request expires.
func (c *Core) nextWake() time.Time {
	oldest := c.table.oldest()
	if oldest == nil {
		return time.Time{}
	}
	due := oldest.created.Add(c.cfg.RequestTimeout)
	s := c.cfg.SweepInterval
	k := (due.Sub(c.cfg.Start) + s - 1) / s
	if k < 1 {
		k = 1
	}
	wake := c.cfg.Start.Add(k * s)
	if !wake.After(c.lastSweep) {
		wake = c.lastSweep.Add(s)
	}
	return wake
}

// key returns the table key of a request. Zeek keeps all requests in one
// table keyed by id; the fixed mode keeps one namespace per kind so that a
// reused or foreign id can only ever meet a request of its own kind.
func (c *Core) key(kind reqKind, id string) reqKey {
	if c.cfg.Mode.Has(QuirkDuplicateReqid) {
		return reqKey{id: id}
	}
	return reqKey{ns: kind, id: id}
}

// create is Request::create: it inserts or overwrites the entry (an
// overwrite keeps the old creation time, as &create_expire does).
func (c *Core) create(kind reqKind, id string) *request {
	k := c.key(kind, id)
	if !c.cfg.Mode.Has(QuirkDuplicateReqid) {
		switch kind {
		case kindTest, kindGetNodes, kindGetIDValue, kindRestart:
			// Test requests are only ever expired, never looked up, and
			// fan-out requests are found through their children's
			// parentKey, so each gets its own slot and a reused reqid
			// cannot displace another.
			c.seq++
			k.seq = c.seq
		}
	}
	r := &request{key: k, id: id, kind: kind, created: c.now}
	c.table.put(r)
	return r
}

func (c *Core) lookup(kind reqKind, id string) *request { return c.table.get(c.key(kind, id)) }

// finish is Request::finish: it deletes whatever entry has the key and
// marks it finished.
func (c *Core) finish(k reqKey) {
	if r := c.table.get(k); r != nil {
		c.table.remove(r)
		r.finished = true
	}
}

// --- the event queue ---------------------------------------------------------

func (c *Core) raise(ev queuedEvent) { c.queue = append(c.queue, ev) }

func (c *Core) respond(topic string, m api.Message) {
	if c.defects.has(DefectWrongResponseTopic) {
		topic = "zeek/cluster-control/responses"
	}
	if c.defects.has(DefectWrongReqidEcho) {
		m = withWrongReqid(m)
	}
	c.raise(queuedEvent{publish: &Outbound{Topic: topic, Msg: m}})
	if c.defects.has(DefectDuplicateResponse) {
		c.raise(queuedEvent{publish: &Outbound{Topic: topic, Msg: m}})
	}
}

// withWrongReqid is DefectWrongReqidEcho: the response event names
// another reqid than the request's.
func withWrongReqid(m api.Message) api.Message {
	if r, ok := api.ReqidOf(m); ok {
		m, _ = api.WithReqid(m, r+"-x")
	}
	return m
}

func (c *Core) drain() {
	for len(c.queue) > 0 {
		ev := c.queue[0]
		c.queue = c.queue[1:]
		switch {
		case ev.publish != nil:
			c.out.Publish = append(c.out.Publish, *ev.publish)
		case ev.isReady:
			c.onNotifyAgentsReady(ev.ready)
		case ev.expired != nil:
			c.onRequestExpired(ev.expired)
		}
	}
	c.queue = c.queue[:0]
}

// publish is Broker::publish: it goes out at once, not via the queue.
func (c *Core) publish(topic string, m api.Message) {
	c.out.Publish = append(c.out.Publish, Outbound{Topic: topic, Msg: m})
}

func (c *Core) logf(level slog.Level, format string, args ...any) {
	c.out.Logs = append(c.out.Logs, LogRecord{Level: level, Msg: fmt.Sprintf(format, args...)})
}

func (c *Core) info(msg string) {
	c.out.Logs = append(c.out.Logs, LogRecord{Level: slog.LevelInfo, Msg: msg})
}

func (c *Core) debugf(format string, args ...any) { c.logf(slog.LevelDebug, format, args...) }

// --- helpers -----------------------------------------------------------------

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// addrString renders an address as Zeek's fmt("%s") does.
func addrString(a netip.Addr) string { return a.Unmap().String() }

func boolString(b bool) string {
	if b {
		return "T"
	}
	return "F"
}

var unspecifiedV4 = netip.IPv4Unspecified()
