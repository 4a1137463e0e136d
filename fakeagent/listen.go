package fakeagent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zcc-harness/zcc/broker"
)

// A listening agent serves Broker's WebSocket API with a broker.Hub on
// 127.0.0.1 and talks through an in-process subscriber on its own topic.
// It runs its own http.Server over a listener that tracks the accepted TCP
// connections, because the Hub offers no per-client close: a clean close
// swaps in a fresh Hub and closes the old one (close frames to every
// client), and a reset drops the tracked TCP connections.

// listenRes is a listening agent's server side, for one Start.
type listenRes struct {
	ln      *trackingListener
	srv     *http.Server
	srvDone chan struct{}
	inbox   inbox

	mu    sync.Mutex
	hub   *broker.Hub
	local *broker.Local
	peers int // connected controllers, counted from peer events
}

// inboxItem is one thing for the listen loop: a delivery or a peer event.
type inboxItem struct {
	delivery *broker.Delivery
	peer     *broker.PeerEvent
}

// inbox is an unbounded queue, so that a Hub's client goroutine never waits
// for the agent.
type inbox struct {
	mu     sync.Mutex
	items  []inboxItem
	signal chan struct{}
}

func (q *inbox) push(it inboxItem) {
	q.mu.Lock()
	q.items = append(q.items, it)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *inbox) take() []inboxItem {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}

func (a *Agent) startListening(ctx context.Context) (*listenRes, error) {
	a.mu.Lock()
	port := a.boundPort
	a.mu.Unlock()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("agent %s: listen on 127.0.0.1:%d: %w", a.name, port, err)
	}
	bound := ln.Addr().(*net.TCPAddr).Port
	a.mu.Lock()
	a.boundPort = bound
	a.mu.Unlock()
	lr := &listenRes{
		ln:      &trackingListener{Listener: ln, conns: map[*trackedConn]struct{}{}},
		srvDone: make(chan struct{}),
		inbox:   inbox{signal: make(chan struct{}, 1)},
	}
	lr.hub, lr.local = a.newHub(lr)
	lr.srv = &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { lr.currentHub().ServeHTTP(w, r) }),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		defer close(lr.srvDone)
		_ = lr.srv.Serve(lr.ln)
	}()
	a.transcript.add(Entry{Dir: State, Conn: a.connNo(), Detail: "listening on " + ln.Addr().String()})
	return lr, nil
}

// newHub builds a Hub whose events feed lr's inbox, and subscribes the
// agent's topic on it.
func (a *Agent) newHub(lr *listenRes) (*broker.Hub, *broker.Local) {
	h := broker.NewHub(broker.HubOptions{Logger: slog.New(&hubLogHandler{agent: a})})
	h.OnPeer(func(ev broker.PeerEvent) { lr.inbox.push(inboxItem{peer: &ev}) })
	l := h.Subscribe([]string{a.topic}, func(d broker.Delivery) { lr.inbox.push(inboxItem{delivery: &d}) })
	return h, l
}

func (lr *listenRes) currentHub() *broker.Hub {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return lr.hub
}

func (lr *listenRes) currentLocal() *broker.Local {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return lr.local
}

// swapHub closes every controller connection cleanly and keeps listening
// with a fresh Hub.
func (a *Agent) swapHub(lr *listenRes) {
	h, l := a.newHub(lr)
	lr.mu.Lock()
	old := lr.hub
	lr.hub, lr.local = h, l
	lr.mu.Unlock()
	_ = old.Close()
}

// shutdown stops serving: cleanly (close frames) or abruptly.
func (lr *listenRes) shutdown(kill bool) {
	_ = lr.srv.Close() // stops accepting; upgraded connections are the Hub's
	if kill {
		lr.ln.killAll()
	}
	lr.mu.Lock()
	h := lr.hub
	lr.mu.Unlock()
	_ = h.Close()
	<-lr.srvDone
}

// listenLink is the link of a listening agent: publishing goes through
// the current Hub to every connected controller.
type listenLink struct {
	a  *Agent
	lr *listenRes
}

func (l *listenLink) publish(_ context.Context, topic string, ev broker.Event, _ []byte) error {
	return l.lr.currentLocal().PublishEvent(topic, ev)
}

func (l *listenLink) writeRaw(context.Context, []byte) error { return errNoRaw }
func (l *listenLink) close()                                 { l.a.swapHub(l.lr) }
func (l *listenLink) kill()                                  { l.lr.ln.killAll() }

// runListen is a listening agent's loop: it handles deliveries and
// controller (dis)connections one at a time, in arrival order.
func (a *Agent) runListen(ctx context.Context, lr *listenRes, done chan struct{}) {
	defer close(done)
	defer a.finish()
	s := &session{agent: a, ctx: ctx, link: &listenLink{a: a, lr: lr}}
	a.mu.Lock()
	a.sess = s
	a.mu.Unlock()
	defer func() {
		s.end()
		a.mu.Lock()
		if a.sess == s {
			a.sess = nil
		}
		a.mu.Unlock()
		lr.shutdown(a.isKilling())
		a.transcript.add(Entry{Dir: State, Conn: s.num(), Detail: "stopped listening"})
	}()
	for {
		select {
		case <-lr.inbox.signal:
			for _, it := range lr.inbox.take() {
				switch {
				case it.peer != nil:
					a.onPeer(s, lr, *it.peer)
				case it.delivery != nil:
					d := it.delivery
					a.onFrame(s, d.Topic, d.Raw, d.Data, nil)
				}
			}
		case <-a.poke:
			a.repeatHello(s)
		case <-ctx.Done():
			return
		}
	}
}

// onPeer handles a controller connecting to or leaving a listening agent.
func (a *Agent) onPeer(s *session, lr *listenRes, ev broker.PeerEvent) {
	if ev.Connected {
		lr.peers++
		var n int
		a.update(func(st *Status) {
			st.Connections++
			n = st.Connections
			st.Connected, st.Welcomed = true, false
		})
		s.n.Store(int64(n))
		s.closing.Store(false)
		a.transcript.add(Entry{Dir: State, Conn: n, Detail: "controller connected from " + ev.Remote})
		a.greet(s)
		return
	}
	lr.peers--
	a.transcript.add(Entry{Dir: State, Conn: s.num(), Detail: "controller disconnected", Err: ev.Reason})
	if lr.peers <= 0 {
		lr.peers = 0
		a.helloRepeat(false)
		a.update(func(st *Status) {
			st.Connected = false
			st.LastError, st.LastErrorAt = "controller disconnected: "+ev.Reason, time.Now()
		})
	}
}

// trackingListener remembers accepted connections so that a reset can
// drop them without a close frame.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

type trackedConn struct {
	net.Conn
	ln   *trackingListener
	once sync.Once
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, ln: l}
	l.mu.Lock()
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	return tc, nil
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.ln.mu.Lock()
		delete(c.ln.conns, c)
		c.ln.mu.Unlock()
	})
	return c.Conn.Close()
}

// killAll drops every accepted connection at the TCP level.
func (l *trackingListener) killAll() {
	l.mu.Lock()
	all := make([]*trackedConn, 0, len(l.conns))
	for c := range l.conns {
		all = append(all, c)
	}
	l.mu.Unlock()
	for _, c := range all {
		_ = c.Close()
	}
}

// hubLogHandler records what the agent's Hub rejects (malformed frames
// from the controller never reach the agent's subscriber) in the
// transcript, so that a listening agent's transcript misses nothing.
type hubLogHandler struct {
	agent *Agent
	attrs []slog.Attr
}

func (h *hubLogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *hubLogHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	add := func(at slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", at.Key, at.Value)
		return true
	}
	for _, at := range h.attrs {
		add(at)
	}
	r.Attrs(add)
	h.agent.transcript.add(Entry{Dir: In, Conn: h.agent.connNo(), Action: ActionIgnore, Err: b.String(),
		Detail: "rejected by the agent's WebSocket server"})
	return nil
}

func (h *hubLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &hubLogHandler{agent: h.agent, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *hubLogHandler) WithGroup(string) slog.Handler { return h }
