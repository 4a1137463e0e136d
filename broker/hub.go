package broker

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// Hub defaults.
const (
	DefaultPath             = "/v1/messages/json"
	DefaultHubVersion       = "zcc"
	DefaultHubMaxFrameSize  = 1 << 20
	DefaultHubQueueSize     = 1024
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultFlushTimeout     = time.Second
	// hardFrameCeilingFactor: frames up to this many times MaxFrameSize are
	// read and discarded with an error frame; anything larger closes the
	// connection (1009), so a hostile peer cannot make the hub read
	// unbounded data.
	hardFrameCeilingFactor = 64
)

// CodeInvalidApplicationName is the error code Zeek ≥ 8.1 sends for a bad
// X-Application-Name header.
const CodeInvalidApplicationName = "invalid_application_name"

// OverflowPolicy says what a Hub does when a client's outbound queue is full.
type OverflowPolicy int

const (
	// DropOldest discards the oldest queued frame to make room, as Broker
	// ≤ 8.0 did with its per-client buffer. The client stays connected.
	DropOldest OverflowPolicy = iota
	// Disconnect closes the client (1008, "outbound queue overflow").
	Disconnect
)

func (p OverflowPolicy) String() string {
	switch p {
	case DropOldest:
		return "drop-oldest"
	case Disconnect:
		return "disconnect"
	}
	return fmt.Sprintf("OverflowPolicy(%d)", int(p))
}

// HubOptions configures a Hub. Zero values give the defaults.
type HubOptions struct {
	Endpoint         string         // ack endpoint; default "<random uuid>-websocket-<n>" per connection (as Zeek 8.1)
	Version          string         // ack version; default "zcc"
	Path             string         // default "/v1/messages/json"
	MaxFrameSize     int64          // default 1 MiB; larger frames get an error frame and are discarded; above 64x the connection closes 1009
	QueueSize        int            // per-client outbound queue (frames); default 1024
	Overflow         OverflowPolicy // default DropOldest
	PingInterval     time.Duration  // 0 = no pings; otherwise ping at connect and every interval, close 1011 "Ping timeout" when a pong is missing at the next tick
	HandshakeTimeout time.Duration  // how long a client may take to send its subscriptions; default 10 s
	// WriteTimeout bounds one frame write to a client; a client that
	// stays blocked that long is disconnected. Default: 2 x PingInterval
	// when pinging (a client that cannot take a frame cannot take a
	// ping either), otherwise none (the queue's overflow policy applies).
	WriteTimeout time.Duration
	// FlushTimeout bounds how long Close (for all clients together) and
	// Disconnect wait for frames already queued to be written before the
	// close frame; what is left then is dropped. Default 1 s.
	FlushTimeout time.Duration
	Logger       *slog.Logger // default: discard
}

// PeerID identifies a Hub client or local subscriber. 0 is never used.
type PeerID uint64

// Delivery is one data message handed to a local subscriber. Raw is the
// frame's JSON text, shared with every other recipient: do not modify it.
type Delivery struct {
	From  PeerID
	Topic string
	Data  Value
	Raw   []byte
}

// PeerEvent reports a client that connected (after a good handshake) or
// disconnected.
type PeerEvent struct {
	ID          PeerID
	Connected   bool
	Remote      string   // client's address, host:port
	Topics      []string // its subscription prefixes
	Reason      string   // why it disconnected (empty on connect)
	Application string   // X-Application-Name header, "unknown" if absent (as in Zeek)
}

// HubStats are the Hub's counters. Counters only grow; Clients and Locals
// are current values.
type HubStats struct {
	Clients             int    // connected clients (handshake done)
	Locals              int    // in-process subscribers
	Accepted            uint64 // clients that completed the handshake
	Delivered           uint64 // frames queued to clients plus calls of local handlers
	Dropped             uint64 // frames discarded by DropOldest
	OverflowDisconnects uint64 // clients closed by the Disconnect policy
	Oversized           uint64 // frames above MaxFrameSize
	BadFrames           uint64 // frames answered with an error frame (undecodable, binary, ack/error from a client)
	BadHandshakes       uint64 // connections whose first frame was not a list of strings, or never came
	PingsSent           uint64
	Pongs               uint64
	PingTimeouts        uint64
	WriteTimeouts       uint64
	FlushTimeouts       uint64 // clients closed by Close or Disconnect with frames still queued at the deadline
}

type hubCounters struct {
	accepted, delivered, dropped, overflowDisconnects, oversized,
	badFrames, badHandshakes, pingsSent, pongs, pingTimeouts, writeTimeouts, flushTimeouts atomic.Uint64
}

// Hub is the server side of Broker's WebSocket JSON API: an http.Handler
// for /v1/messages/json that routes each client's data messages to every
// other subscriber (clients and in-process Locals) whose topic prefix
// matches, never back to the sender.
//
// Each client has a bounded outbound queue drained by its own writer
// goroutine, so a slow client never blocks the hub, the sender or other
// clients; when its queue is full the Overflow policy applies. The queue's
// storage grows with use, so idle clients cost little.
//
// Subscribers are indexed by prefix: a client's connect and disconnect
// cost at most logarithmic time in the number of other clients, and
// routing a message costs in proportion to its recipients and the number
// of distinct prefix lengths in use, not to the number of subscribers.
//
// Close, Disconnect and Reset end connections from the server side; the
// first two write what is already queued before the close frame.
type Hub struct {
	opts     HubOptions
	log      *slog.Logger
	upgrader websocket.Upgrader
	uuid     string
	connSeq  atomic.Uint64
	nextID   atomic.Uint64
	stats    hubCounters

	mu      sync.Mutex
	closed  bool
	conns   map[*hubClient]struct{} // every upgraded connection, handshake done or not
	clients map[PeerID]*hubClient   // clients past the handshake
	locals  map[PeerID]*Local
	onPeer  []func(PeerEvent)
	// index is the routing table. It changes under mu (and its own lock);
	// routing takes only the index's read lock, for as long as it takes to
	// list the matching subscribers.
	index *routeIndex
	wg    sync.WaitGroup
}

// NewHub returns a Hub with opts (defaults filled in).
func NewHub(opts HubOptions) *Hub {
	if opts.Version == "" {
		opts.Version = DefaultHubVersion
	}
	if opts.Path == "" {
		opts.Path = DefaultPath
	}
	if opts.MaxFrameSize <= 0 {
		opts.MaxFrameSize = DefaultHubMaxFrameSize
	}
	// Beyond this the hard ceiling would overflow; it is no limit anyway.
	opts.MaxFrameSize = min(opts.MaxFrameSize, math.MaxInt64/hardFrameCeilingFactor-1)
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultHubQueueSize
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if opts.FlushTimeout <= 0 {
		opts.FlushTimeout = DefaultFlushTimeout
	}
	if opts.WriteTimeout <= 0 && opts.PingInterval > 0 {
		opts.WriteTimeout = 2 * opts.PingInterval
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Hub{
		opts:    opts,
		log:     log,
		uuid:    newUUID(),
		conns:   map[*hubClient]struct{}{},
		clients: map[PeerID]*hubClient{},
		locals:  map[PeerID]*Local{},
		index:   newRouteIndex(),
	}
	h.upgrader = websocket.Upgrader{HandshakeTimeout: opts.HandshakeTimeout}
	return h
}

// newUUID returns a random (version 4) UUID, the form of a Broker endpoint id.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// OnPeer registers fn for connect and disconnect notifications. fn runs on
// the client's own goroutine; it must not block for long and must not call
// Hub.Close. Register before serving: clients that connected earlier are
// not reported.
func (h *Hub) OnPeer(fn func(PeerEvent)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onPeer = append(h.onPeer, fn)
}

func (h *Hub) notify(ev PeerEvent) {
	h.mu.Lock()
	fns := slices.Clone(h.onPeer)
	h.mu.Unlock()
	for _, fn := range fns {
		fn(ev)
	}
}

// route delivers one data message from `from` to every other matching
// subscriber. The frame is encoded once, on the first match, and the bytes
// are shared. Locals' handlers run here, on the sender's goroutine, with no
// lock held.
func (h *Hub) route(from PeerID, topic string, data Value) error {
	buf := matchBuffers.Get().(*[]*subscriber)
	matches := h.index.match(topic, from, (*buf)[:0])
	defer func() {
		clear(matches) // the pool must not keep departed subscribers alive
		*buf = matches[:0]
		matchBuffers.Put(buf)
	}()
	if len(matches) == 0 {
		return nil
	}
	size := len(topic) + data.sizeHint(4) + 64
	clients := 0
	for _, s := range matches {
		if s.client != nil {
			clients++
		}
	}
	if clients == len(matches) {
		// Only clients' writers see the frame, and each releases it after
		// writing it: the buffer can be reused.
		f := newSharedFrame(size, clients)
		raw, err := DataFrame(topic, data).AppendJSON(f.b)
		if err != nil {
			f.refs.Store(1)
			f.release()
			return fmt.Errorf("encode data message for %q: %w", topic, err)
		}
		f.b = raw
		for _, s := range matches {
			if s.client.enqueue(outFrame{b: raw, shared: f}) {
				h.stats.delivered.Add(1)
			}
		}
		return nil
	}
	// Local handlers may keep Delivery.Raw: this frame is never reused.
	raw, err := DataFrame(topic, data).AppendJSON(make([]byte, 0, size))
	if err != nil {
		return fmt.Errorf("encode data message for %q: %w", topic, err)
	}
	for _, s := range matches {
		if s.client != nil {
			if s.client.enqueue(outFrame{b: raw}) {
				h.stats.delivered.Add(1)
			}
			continue
		}
		if s.local.closed.Load() {
			continue
		}
		h.stats.delivered.Add(1)
		s.local.handler(Delivery{From: from, Topic: topic, Data: data, Raw: raw})
	}
	return nil
}

// Subscribe adds an in-process subscriber for prefixes. handler receives
// every data message on a matching topic from clients and other Locals.
//
// handler runs synchronously on the sender's goroutine (a client's reader,
// or the goroutine calling another Local's Publish), so a slow handler
// slows down that sender only, and handler may be called concurrently for
// different senders. It may call Publish (no lock is held while it runs)
// and Close, but it must not call Hub.Close or Server.Close, which wait for
// the very goroutine the handler is running on, nor block waiting for a
// later message from the same sender. A handler already running when Close
// is called may still finish after Close returns.
func (h *Hub) Subscribe(prefixes []string, handler func(Delivery)) *Local {
	l := &Local{
		id:      PeerID(h.nextID.Add(1)),
		hub:     h,
		handler: handler,
	}
	l.sub = newSubscriber(l.id, prefixes, nil, l)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		l.closed.Store(true)
		return l
	}
	h.locals[l.id] = l
	h.index.add(l.sub)
	return l
}

// Local is an in-process subscriber and publisher on a Hub.
type Local struct {
	id      PeerID
	hub     *Hub
	sub     *subscriber
	handler func(Delivery)
	closed  atomic.Bool
}

// ID returns the Local's peer id (the From of what it publishes).
func (l *Local) ID() PeerID { return l.id }

// Publish sends v on topic to every other matching subscriber, never back
// to l. It does not wait for clients (their queues absorb or drop), but it
// does run matching Locals' handlers before returning.
func (l *Local) Publish(topic string, v Value) error {
	if l.closed.Load() {
		return fmt.Errorf("publish to %q from local subscriber %d: %w", topic, l.id, ErrClosed)
	}
	if err := l.hub.route(l.id, topic, v); err != nil {
		return fmt.Errorf("publish from local subscriber %d: %w", l.id, err)
	}
	return nil
}

// PublishEvent sends ev on topic (see Publish).
func (l *Local) PublishEvent(topic string, ev Event) error { return l.Publish(topic, ev.Value()) }

// Close unsubscribes l; later Publish calls fail with ErrClosed.
func (l *Local) Close() {
	if l.closed.Swap(true) {
		return
	}
	h := l.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.locals, l.id)
	h.index.remove(l.sub)
}

// SendError queues one error frame to client `to`.
func (h *Hub) SendError(to PeerID, code, context string) error {
	c, err := h.client(to, "send error frame to")
	if err != nil {
		return err
	}
	if !c.sendFrame(ErrorFrame(code, context)) {
		return fmt.Errorf("send error frame to peer %d: %w", to, ErrClosed)
	}
	return nil
}

// Stats returns a snapshot of the counters.
func (h *Hub) Stats() HubStats {
	h.mu.Lock()
	clients, locals := len(h.clients), len(h.locals)
	h.mu.Unlock()
	s := &h.stats
	return HubStats{
		Clients:             clients,
		Locals:              locals,
		Accepted:            s.accepted.Load(),
		Delivered:           s.delivered.Load(),
		Dropped:             s.dropped.Load(),
		OverflowDisconnects: s.overflowDisconnects.Load(),
		Oversized:           s.oversized.Load(),
		BadFrames:           s.badFrames.Load(),
		BadHandshakes:       s.badHandshakes.Load(),
		PingsSent:           s.pingsSent.Load(),
		Pongs:               s.pongs.Load(),
		PingTimeouts:        s.pingTimeouts.Load(),
		WriteTimeouts:       s.writeTimeouts.Load(),
		FlushTimeouts:       s.flushTimeouts.Load(),
	}
}

// Peers lists the connected clients (not Locals), ordered by id.
func (h *Hub) Peers() []PeerEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]PeerEvent, 0, len(h.clients))
	for _, c := range h.clients {
		out = append(out, c.peerEvent(true, ""))
	}
	slices.SortFunc(out, func(a, b PeerEvent) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Close closes every client (1001 "Terminating", as Zeek does on
// shutdown) and every Local, refuses new connections, and waits for all
// client goroutines. Frames already queued for a client (a response
// published just before Close) are written before its close frame, for at
// most FlushTimeout in all. It must not be called from a Local's handler
// or an OnPeer callback.
func (h *Hub) Close() error {
	h.mu.Lock()
	h.closed = true
	all := make([]*hubClient, 0, len(h.conns))
	for c := range h.conns {
		all = append(all, c)
	}
	for _, l := range h.locals {
		l.closed.Store(true)
		h.index.remove(l.sub)
	}
	clear(h.locals)
	h.mu.Unlock()
	req := closeRequest{code: websocket.CloseGoingAway, text: "Terminating", awaitEcho: true,
		flushBy: time.Now().Add(h.opts.FlushTimeout)}
	for _, c := range all {
		c.shutdownWith(req, "hub closed")
	}
	h.wg.Wait()
	return nil
}

// maxCloseReason is the longest close frame reason: a control frame carries
// at most 125 bytes, two of which are the code.
const maxCloseReason = 123

// Disconnect closes client id cleanly from the server side: the frames
// already queued for it are written first (for at most FlushTimeout), then
// a close frame with code and reason. It returns at once; the disconnect
// PeerEvent (Reason "disconnected by the hub (code reason)") reports when
// the client is gone.
//
// code must be one a peer may send: 1000–1003, 1007–1014 or 3000–4999;
// reason is UTF-8 of at most 123 bytes.
func (h *Hub) Disconnect(id PeerID, code int, reason string) error {
	if !sendableCloseCode(code) {
		return fmt.Errorf("disconnect peer %d: close code %d may not be sent; use 1000-1003, 1007-1014 or 3000-4999", id, code)
	}
	if len(reason) > maxCloseReason {
		return fmt.Errorf("disconnect peer %d: close reason is %d bytes, more than the %d a close frame holds", id, len(reason), maxCloseReason)
	}
	if !utf8.ValidString(reason) {
		return fmt.Errorf("disconnect peer %d: close reason %q is not UTF-8", id, reason)
	}
	c, err := h.client(id, "disconnect")
	if err != nil {
		return err
	}
	why := fmt.Sprintf("disconnected by the hub (%d)", code)
	if reason != "" {
		why = fmt.Sprintf("disconnected by the hub (%d %s)", code, reason)
	}
	req := closeRequest{code: code, text: reason, awaitEcho: true, flushBy: time.Now().Add(h.opts.FlushTimeout)}
	if !c.shutdownWith(req, why) {
		return fmt.Errorf("disconnect peer %d: already closing (%s): %w", id, c.reason, ErrClosed)
	}
	c.log.Debug("disconnecting client", "code", code, "reason", reason)
	return nil
}

// Reset drops client id's TCP connection at once, without a close frame
// and without writing what is queued for it, as a crashed server would.
// The disconnect PeerEvent's Reason is "reset by the hub" unless the
// client was already closing.
func (h *Hub) Reset(id PeerID) error {
	c, err := h.client(id, "reset")
	if err != nil {
		return err
	}
	if !c.shutdownWith(closeRequest{abort: true}, "reset by the hub") {
		// Already closing (perhaps flushing): cut that short too.
		_ = c.ws.NetConn().Close()
	}
	c.log.Debug("client reset")
	return nil
}

// client looks up a connected client for operation op.
func (h *Hub) client(id PeerID, op string) (*hubClient, error) {
	h.mu.Lock()
	c := h.clients[id]
	h.mu.Unlock()
	if c == nil {
		return nil, fmt.Errorf("%s peer %d: no such client", op, id)
	}
	return c, nil
}

// sendableCloseCode reports whether a peer may put code in a close frame
// (RFC 6455 section 7.4: 1004-1006 and 1015 are reserved, 1016-2999 are
// for future extensions of the protocol).
func sendableCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// ServeHTTP upgrades requests on the Hub's path and serves the client
// until it disconnects. Other paths get 404 naming the right one.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != h.opts.Path {
		http.Error(w, "invalid path; use "+h.opts.Path, http.StatusNotFound)
		return
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		http.Error(w, "hub closed", http.StatusServiceUnavailable)
		return
	}
	h.wg.Add(1)
	h.mu.Unlock()
	defer h.wg.Done()

	ws, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// Upgrade has already answered with an HTTP error.
		h.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	c := newHubClient(h, ws, r)
	c.serve()
}
