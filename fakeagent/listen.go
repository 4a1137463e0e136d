package fakeagent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/zcc-harness/zcc/broker"
)

// A listening agent is the server side of Broker's WebSocket API on
// 127.0.0.1: the controller dials it, sends its subscriptions, gets an ack,
// and then both exchange data messages.
//
// It serves connections itself (gorilla/websocket for the framing, the
// broker codec for every frame) rather than through a broker.Hub, because
// its actions need what a Hub does not offer: writing a reply before a
// clean close (a Hub drops what is still queued when it closes), closing or
// resetting one connection, and sending malformed frames. Each accepted
// connection is a session of its own, exactly like a dialed one.

// listenPath is where Broker serves its WebSocket JSON API.
const listenPath = "/v1/messages/json"

// handshakeTimeout bounds how long a controller may take to send its
// subscriptions.
const handshakeTimeout = 10 * time.Second

// listenRes is a listening agent's server, for one Start.
type listenRes struct {
	agent  *Agent
	ln     net.Listener
	srv    *http.Server
	served chan struct{} // closed when srv.Serve returned
	events chan listenEvent
	// quit is closed when the loop stops reading events, so that
	// connection goroutines never block on a loop that is gone.
	quit     chan struct{}
	handlers sync.WaitGroup

	mu       sync.Mutex
	stopping bool                     // no new handlers once set
	conns    map[*serverConn]struct{} // connections past the handshake
}

// listenEvent is what a connection's goroutine tells the loop, in order.
type listenEvent struct {
	conn  *serverConn
	kind  listenEventKind
	frame inFrame
}

type listenEventKind uint8

const (
	evConnected listenEventKind = iota
	evFrame
	evDisconnected
)

// inFrame is one frame read from a connection.
type inFrame struct {
	topic string
	raw   []byte
	data  broker.Value
	err   error
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
	a.mu.Lock()
	a.boundPort = ln.Addr().(*net.TCPAddr).Port
	a.mu.Unlock()
	lr := &listenRes{
		agent:  a,
		ln:     ln,
		served: make(chan struct{}),
		events: make(chan listenEvent, a.opts.queueSize),
		quit:   make(chan struct{}),
		conns:  map[*serverConn]struct{}{},
	}
	lr.srv = &http.Server{Handler: lr, ReadHeaderTimeout: handshakeTimeout}
	go func() {
		defer close(lr.served)
		_ = lr.srv.Serve(ln)
	}()
	a.transcript.add(Entry{Dir: State, Conn: a.connNo(), Detail: "listening on " + ln.Addr().String()})
	return lr, nil
}

// send hands an event to the loop unless the loop has stopped.
func (lr *listenRes) send(ev listenEvent) bool {
	select {
	case lr.events <- ev:
		return true
	case <-lr.quit:
		return false
	}
}

var upgrader = websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}

// ServeHTTP accepts one controller connection and reads it until it ends.
func (lr *listenRes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != listenPath {
		http.Error(w, "invalid path; use "+listenPath, http.StatusNotFound)
		return
	}
	lr.mu.Lock()
	if lr.stopping {
		lr.mu.Unlock()
		http.Error(w, "agent stopping", http.StatusServiceUnavailable)
		return
	}
	lr.handlers.Add(1)
	lr.mu.Unlock()
	defer lr.handlers.Done()
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered with an HTTP error
	}
	a := lr.agent
	_ = ws.SetReadDeadline(time.Now().Add(handshakeTimeout))
	_, hs, err := ws.ReadMessage()
	var topics []string
	if err == nil {
		topics, err = broker.DecodeHandshake(hs)
	}
	if err != nil {
		// As zcc's Hub does: an error frame, then close 1008.
		a.transcript.add(Entry{Dir: In, Conn: a.connNo(), Raw: string(hs), Action: ActionIgnore, Err: err.Error(),
			Detail: "bad subscription handshake from " + r.RemoteAddr})
		if b, eerr := broker.ErrorFrame(broker.CodeDeserializationFailed, err.Error()).Encode(); eerr == nil {
			_ = ws.WriteMessage(websocket.TextMessage, b)
		}
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "bad handshake"),
			time.Now().Add(time.Second))
		_ = ws.Close()
		return
	}
	_ = ws.SetReadDeadline(time.Time{})
	ack, err := broker.AckFrame(a.endpointID(), "zcc-fakeagent").Encode()
	if err == nil {
		err = ws.WriteMessage(websocket.TextMessage, ack)
	}
	if err != nil {
		_ = ws.Close()
		return
	}
	c := &serverConn{ws: ws, topics: topics, remote: r.RemoteAddr, done: make(chan struct{})}
	lr.mu.Lock()
	lr.conns[c] = struct{}{}
	lr.mu.Unlock()
	defer func() {
		lr.mu.Lock()
		delete(lr.conns, c)
		lr.mu.Unlock()
	}()
	if !lr.send(listenEvent{conn: c, kind: evConnected}) {
		c.kill()
		return
	}
	c.readLoop(lr)
}

// serverConn is one controller connection to a listening agent.
type serverConn struct {
	ws     *websocket.Conn
	topics []string // the controller's subscriptions
	remote string
	wmu    sync.Mutex
	done   chan struct{} // closed when the reader has ended
	errMu  sync.Mutex
	err    error
}

func (c *serverConn) readLoop(lr *listenRes) {
	defer func() {
		_ = c.ws.Close()
		close(c.done)
		lr.send(listenEvent{conn: c, kind: evDisconnected})
	}()
	for {
		mt, raw, err := c.ws.ReadMessage()
		if err != nil {
			c.setErr(err)
			return
		}
		f := inFrame{raw: raw}
		if mt != websocket.TextMessage {
			f.err = fmt.Errorf("binary frame of %d bytes; the JSON API uses text frames", len(raw))
		} else if fr, err := broker.DecodeFrame(raw); err != nil {
			f.err = fmt.Errorf("decode frame: %w", err)
		} else if fr.Type != broker.FrameDataMessage {
			f.err = fmt.Errorf("unexpected %q frame from the controller", fr.Type)
		} else {
			f.topic, f.data = fr.Topic, fr.Data
		}
		if !lr.send(listenEvent{conn: c, kind: evFrame, frame: f}) {
			return
		}
	}
}

func (c *serverConn) setErr(err error) {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

func (c *serverConn) reason() string {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if c.err == nil {
		return "connection ended"
	}
	return c.err.Error()
}

// publish sends the frame if the controller subscribed to its topic, as
// Broker routes it.
func (c *serverConn) publish(ctx context.Context, topic string, _ broker.Event, raw []byte) error {
	if !broker.MatchesPrefix(topic, c.topics) {
		return fmt.Errorf("the controller did not subscribe to %q (subscriptions %q)", topic, c.topics)
	}
	return c.writeRaw(ctx, raw)
}

func (c *serverConn) writeRaw(ctx context.Context, raw []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	deadline, _ := ctx.Deadline()
	_ = c.ws.SetWriteDeadline(deadline)
	if err := c.ws.WriteMessage(websocket.TextMessage, raw); err != nil {
		return fmt.Errorf("write to controller %s: %w", c.remote, err)
	}
	return nil
}

// close sends a close frame (1000), waits a moment for the controller's
// answer, and drops the connection.
func (c *serverConn) close() {
	c.wmu.Lock()
	err := c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
		time.Now().Add(time.Second))
	c.wmu.Unlock()
	if err == nil || errors.Is(err, websocket.ErrCloseSent) {
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case <-c.done:
		case <-t.C:
		}
	}
	_ = c.ws.NetConn().Close()
}

// kill drops the TCP connection without a close frame.
func (c *serverConn) kill() { _ = c.ws.NetConn().Close() }

// runListen is a listening agent's loop: connections, frames and hello
// ticks, one at a time in arrival order.
func (a *Agent) runListen(ctx context.Context, lr *listenRes, done chan struct{}) {
	defer close(done)
	defer a.finish()
	sessions := map[*serverConn]*session{}
	defer func() {
		lr.mu.Lock()
		lr.stopping = true
		lr.mu.Unlock()
		close(lr.quit)
		_ = lr.srv.Close() // stops accepting; upgraded connections are ours
		kill := a.isKilling()
		var wg sync.WaitGroup
		for c, s := range sessions {
			s.end()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if kill {
					c.kill()
				} else {
					c.close()
				}
			}()
		}
		wg.Wait()
		lr.handlers.Wait()
		<-lr.served
		for c, s := range sessions {
			a.sessionDown(s, c.reason, false)
		}
		a.transcript.add(Entry{Dir: State, Conn: a.connNo(), Detail: "stopped listening"})
	}()
	for {
		select {
		case ev := <-lr.events:
			switch ev.kind {
			case evConnected:
				s := a.sessionUp(ctx, ev.conn)
				a.transcript.add(Entry{Dir: State, Conn: s.num(), Detail: "controller connected from " + ev.conn.remote})
				sessions[ev.conn] = s
				a.greet(s)
			case evFrame:
				if s := sessions[ev.conn]; s != nil {
					f := ev.frame
					if f.err == nil && !broker.MatchesPrefix(f.topic, []string{a.topic}) {
						a.transcript.add(Entry{Dir: In, Conn: s.num(), Topic: f.topic, Raw: string(f.raw), Action: ActionIgnore,
							Detail: "not on a topic the agent subscribed to"})
						continue
					}
					a.onFrame(s, f.topic, f.raw, f.data, f.err)
				}
			case evDisconnected:
				if s := sessions[ev.conn]; s != nil {
					delete(sessions, ev.conn)
					a.sessionDown(s, ev.conn.reason, len(sessions) > 0)
					a.adoptLatest(sessions)
				}
			}
		case <-a.poke:
			for _, s := range sessions {
				a.repeatHello(s)
			}
		case <-ctx.Done():
			return
		}
	}
}

// adoptLatest makes the newest remaining connection the one spontaneous
// sends use.
func (a *Agent) adoptLatest(sessions map[*serverConn]*session) {
	var latest *session
	for _, s := range sessions {
		if latest == nil || s.num() > latest.num() {
			latest = s
		}
	}
	a.mu.Lock()
	if a.sess == nil {
		a.sess = latest
	}
	a.mu.Unlock()
}
