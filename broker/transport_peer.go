package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// hubClient is one WebSocket client of a Hub. Its reader runs on the
// ServeHTTP goroutine; its writer goroutine owns data writes after the
// handshake and drains the bounded queue `out`.
//
// A connection ends in one of three ways (closeRequest): a close frame at
// once, dropping whatever is queued (errors, timeouts, overflow, the client
// leaving); a close frame after the queue has been written, within a
// deadline (Hub.Close, Hub.Disconnect); or no close frame at all
// (Hub.Reset).
type hubClient struct {
	hub    *Hub
	ws     *websocket.Conn
	log    *slog.Logger
	id     PeerID
	remote string
	app    string
	topics []string // set by the reader before registration, read-only after
	sub    *subscriber
	// announced: a connect PeerEvent went out, so a disconnect one is due.
	// Reader goroutine only (serve reads it after the reader has returned).
	announced bool

	out *frameQueue

	stop     chan struct{} // closed by shutdown: the writer ends the connection
	stopOnce sync.Once
	req      closeRequest // written before stop is closed
	reason   string       // for PeerEvent and logs; written before stop is closed
	force    *time.Timer
	// registered is set once the client is in the routing table: from then
	// on frames may be queued for it, and its ack is on the way.
	registered atomic.Bool
	acked      chan struct{} // closed by the reader once the ack is written
	readerDone chan struct{}
	writerDone chan struct{}

	pingOutstanding atomic.Bool
	pingSeq         uint64 // writer goroutine only
	buf             bytes.Buffer
}

func newHubClient(h *Hub, ws *websocket.Conn, r *http.Request) *hubClient {
	c := &hubClient{
		hub:        h,
		ws:         ws,
		id:         PeerID(h.nextID.Add(1)),
		remote:     r.RemoteAddr,
		app:        r.Header.Get("X-Application-Name"),
		out:        newFrameQueue(h.opts.QueueSize),
		stop:       make(chan struct{}),
		acked:      make(chan struct{}),
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	c.log = h.log.With("peer", uint64(c.id), "remote", c.remote)
	return c
}

func (c *hubClient) peerEvent(connected bool, reason string) PeerEvent {
	app := c.app
	if app == "" {
		app = "unknown"
	}
	return PeerEvent{
		ID:          c.id,
		Connected:   connected,
		Remote:      c.remote,
		Topics:      append([]string(nil), c.topics...),
		Reason:      reason,
		Application: app,
	}
}

// serve runs the client to its end on the calling (ServeHTTP) goroutine.
func (c *hubClient) serve() {
	h := c.hub
	h.mu.Lock()
	h.conns[c] = struct{}{}
	closed := h.closed
	h.mu.Unlock()
	if closed { // Close ran between ServeHTTP's check and now.
		c.shutdown(websocket.CloseGoingAway, "Terminating", "hub closed", true)
	}

	go c.writeLoop()
	registered, readErr := c.readLoop()
	close(c.readerDone)
	if errors.Is(readErr, websocket.ErrReadLimit) {
		// gorilla has already sent close 1009.
		h.stats.oversized.Add(1)
		c.log.Warn("frame above the hard size ceiling; connection closed",
			"ceiling", h.opts.MaxFrameSize*hardFrameCeilingFactor)
	}
	c.shutdown(websocket.CloseNormalClosure, "", disconnectReason(readErr), true)
	<-c.writerDone

	h.mu.Lock()
	delete(h.conns, c)
	if registered {
		delete(h.clients, c.id)
		h.index.remove(c.sub)
	}
	h.mu.Unlock()
	if c.announced {
		c.log.Debug("client disconnected", "reason", c.reason)
		h.notify(c.peerEvent(false, c.reason))
	}
}

// disconnectReason words why the reader stopped, for PeerEvent.Reason.
func disconnectReason(err error) string {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		if ce.Code == websocket.CloseAbnormalClosure {
			return "connection lost without a close frame (1006): " + ce.Text
		}
		if ce.Text == "" {
			return fmt.Sprintf("closed by client (%d)", ce.Code)
		}
		return fmt.Sprintf("closed by client (%d %s)", ce.Code, ce.Text)
	}
	if err == nil {
		return "closed"
	}
	return "read failed: " + err.Error()
}

// closeRequest says how the writer ends the connection.
type closeRequest struct {
	code int    // close frame status
	text string // close frame reason
	// awaitEcho gives the client closeGrace to answer with its own close
	// frame; a client that stopped reading (ping or write timeout,
	// overflow) would not.
	awaitEcho bool
	// flushBy, when set, has the writer send the queued frames first, for
	// as long as this deadline allows.
	flushBy time.Time
	// abort drops the TCP connection without a close frame.
	abort bool
}

// shutdown asks the writer to end the connection with a close frame at
// once, dropping queued frames (see shutdownWith).
func (c *hubClient) shutdown(code int, closeText, reason string, awaitEcho bool) bool {
	return c.shutdownWith(closeRequest{code: code, text: closeText, awaitEcho: awaitEcho}, reason)
}

// shutdownWith asks the writer to end the connection as req says. The
// first call wins, and it reports whether this call was the first. Should
// the writer be stuck in a write to a peer that does not read, a timer
// drops the TCP connection closeGrace after the flush deadline (or after
// the call).
func (c *hubClient) shutdownWith(req closeRequest, reason string) bool {
	first := false
	c.stopOnce.Do(func() {
		first = true
		c.req, c.reason = req, reason
		grace := closeGrace
		if !req.flushBy.IsZero() {
			grace += time.Until(req.flushBy)
		}
		c.force = time.AfterFunc(grace, func() { _ = c.ws.NetConn().Close() })
		close(c.stop)
		switch {
		case req.abort:
			// Also ends a write in progress and the reader.
			_ = c.ws.NetConn().Close()
		case !req.flushBy.IsZero():
			// A write already in progress (without a deadline of its own
			// when WriteTimeout is 0) must not outlast the flush either;
			// the writer's own deadlines, set per frame, take over after it.
			_ = c.ws.NetConn().SetWriteDeadline(req.flushBy)
		}
	})
	return first
}

// closing reports whether shutdown has been called.
func (c *hubClient) closing() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

// enqueue queues a data frame for the writer without ever blocking. When
// the queue is full the Hub's overflow policy applies. A frame that is
// not queued has its hold released.
func (c *hubClient) enqueue(f outFrame) bool {
	if c.closing() {
		f.release()
		return false
	}
	stats := &c.hub.stats
	policy := c.hub.opts.Overflow
	ok, dropped := c.out.push(f, policy != Disconnect)
	if dropped && stats.dropped.Add(1) == 1 {
		c.log.Warn("outbound queue full; dropping oldest frames", "queue", c.hub.opts.QueueSize)
	}
	if !ok {
		f.release()
		if c.shutdown(websocket.ClosePolicyViolation, "outbound queue overflow", "outbound queue overflow", false) {
			stats.overflowDisconnects.Add(1)
			c.log.Warn("outbound queue full; disconnecting client", "queue", c.hub.opts.QueueSize)
		}
	}
	return ok
}

// sendFrame encodes f and queues it.
func (c *hubClient) sendFrame(f Frame) bool {
	b, err := f.AppendJSON(nil)
	if err != nil {
		c.log.Error("encode frame", "frame", f.String(), "err", err)
		return false
	}
	return c.enqueue(outFrame{b: b})
}

// replyError answers a bad frame; it is queued like data so that it stays
// in order with the frames around it.
func (c *hubClient) replyError(code, context string) {
	c.hub.stats.badFrames.Add(1)
	c.sendFrame(ErrorFrame(code, context))
}

// writeDirect writes one frame from the reader goroutine. Only allowed
// before c.acked is closed: until then the writer goroutine sends nothing
// but control frames, which gorilla allows concurrently.
func (c *hubClient) writeDirect(f Frame) error {
	b, err := f.AppendJSON(nil)
	if err != nil {
		return err
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.hub.opts.HandshakeTimeout))
	defer c.ws.SetWriteDeadline(time.Time{})
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// keepReadBuffer is the largest read buffer a client keeps between frames.
const keepReadBuffer = 64 << 10

// readFrame reads one message into c.buf, keeping at most MaxFrameSize
// bytes. size is the message's full length; a larger one is read to its
// end and thrown away (gorilla's read limit closes the connection with
// 1009 beyond the hard ceiling).
func (c *hubClient) readFrame() (mt int, size int64, err error) {
	if c.buf.Cap() > keepReadBuffer {
		// Do not hold on to one large frame's worth of memory while the
		// client idles: with large MaxFrameSize and many clients, that
		// would add up.
		c.buf = bytes.Buffer{}
	}
	mt, r, err := c.ws.NextReader()
	if err != nil {
		return 0, 0, err
	}
	limit := c.hub.opts.MaxFrameSize
	c.buf.Reset()
	n, err := c.buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return 0, 0, err
	}
	if n > limit {
		rest, err := io.Copy(io.Discard, r)
		if err != nil {
			return 0, 0, err
		}
		n += rest
	}
	return mt, n, nil
}

func (c *hubClient) frameTooLarge(size int64) string {
	return fmt.Sprintf("%s: %d bytes exceeds the limit of %d bytes", ContextFrameTooLargePrefix, size, c.hub.opts.MaxFrameSize)
}

// validAppName applies Zeek 8.1's rule for X-Application-Name:
// alphanumerics and / _ - . = : * @.
func validAppName(s string) bool {
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9':
		case ch == '/', ch == '_', ch == '-', ch == '.', ch == '=', ch == ':', ch == '*', ch == '@':
		default:
			return false
		}
	}
	return true
}

// readLoop performs the handshake and then reads data frames until the
// connection fails. It reports whether the client got registered.
func (c *hubClient) readLoop() (registered bool, err error) {
	h := c.hub
	opts := &h.opts
	c.ws.SetReadLimit(opts.MaxFrameSize * hardFrameCeilingFactor)
	c.ws.SetPongHandler(func(string) error {
		c.pingOutstanding.Store(false)
		h.stats.pongs.Add(1)
		return nil
	})
	c.log.Debug("client connected; waiting for subscriptions", "application", c.app)

	reject := func(code, context, closeText, reason string) error {
		h.stats.badHandshakes.Add(1)
		c.log.Warn("bad handshake", "code", code, "context", context)
		if err := c.writeDirect(ErrorFrame(code, context)); err != nil {
			c.log.Debug("write handshake error frame", "err", err)
		}
		// zcc closes on purpose (Zeek 8.1.2 leaves such a connection open
		// but dead), so that the client knows to reconnect.
		c.shutdown(websocket.ClosePolicyViolation, closeText, reason, true)
		// Read on until the client answers the close (or closeGrace ends it).
		for {
			if _, _, err := c.readFrame(); err != nil {
				break
			}
		}
		return errors.New(reason)
	}

	if c.app != "" && !validAppName(c.app) {
		return false, reject(CodeInvalidApplicationName,
			fmt.Sprintf("invalid application name %q: allowed are alphanumerics and /_-.=:*@", c.app),
			"invalid application name", "bad handshake: invalid X-Application-Name")
	}

	_ = c.ws.SetReadDeadline(time.Now().Add(opts.HandshakeTimeout))
	mt, size, err := c.readFrame()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			h.stats.badHandshakes.Add(1)
			c.log.Warn("no subscriptions within the handshake timeout", "timeout", opts.HandshakeTimeout)
			c.shutdown(websocket.ClosePolicyViolation, "handshake timeout", "handshake timeout", true)
		}
		return false, err
	}
	_ = c.ws.SetReadDeadline(time.Time{})
	switch {
	case size > opts.MaxFrameSize:
		h.stats.oversized.Add(1)
		return false, reject(CodeDeserializationFailed, c.frameTooLarge(size), ContextFrameTooLargePrefix, "bad handshake: "+ContextFrameTooLargePrefix)
	case mt != websocket.TextMessage:
		return false, reject(CodeDeserializationFailed, ContextNotAnArray+": binary frame; send a JSON array of strings as text",
			ContextNotAnArray, "bad handshake: binary frame")
	}
	topics, err := DecodeHandshake(c.buf.Bytes())
	if err != nil {
		context, closeText := err.Error(), ContextNotAnArray
		var pe *ProtocolError
		if errors.As(err, &pe) {
			closeText = pe.Context
		}
		return false, reject(CodeDeserializationFailed, context, closeText, "bad handshake: "+context)
	}
	c.topics = topics
	c.sub = newSubscriber(c.id, topics, c, nil)

	endpoint := opts.Endpoint
	if endpoint == "" {
		endpoint = h.uuid + "-websocket-" + strconv.FormatUint(h.connSeq.Add(1), 10)
	}
	// Register before the ack, so that a client that has its ack is sure
	// to get every later message; the writer holds queued data back until
	// the ack is out. The ack is written here, not queued, so that no
	// overflow policy can ever drop it.
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return false, errors.New("hub closed")
	}
	h.clients[c.id] = c
	h.index.add(c.sub)
	c.registered.Store(true)
	h.mu.Unlock()
	if err := c.writeDirect(AckFrame(endpoint, opts.Version)); err != nil {
		return true, fmt.Errorf("write ack: %w", err)
	}
	close(c.acked)
	h.stats.accepted.Add(1)
	c.log.Debug("client subscribed", "topics", topics, "endpoint", endpoint)
	c.announced = true
	h.notify(c.peerEvent(true, ""))

	for {
		mt, size, err := c.readFrame()
		if err != nil {
			return true, err
		}
		if size > opts.MaxFrameSize {
			h.stats.oversized.Add(1)
			context := c.frameTooLarge(size)
			c.log.Warn("oversized frame discarded", "size", size, "limit", opts.MaxFrameSize)
			c.sendFrame(ErrorFrame(CodeDeserializationFailed, context))
			continue
		}
		if mt != websocket.TextMessage {
			c.log.Warn("binary frame rejected", "size", size)
			c.replyError(CodeDeserializationFailed, ContextBadJSON+": binary frame; the JSON API takes text frames")
			continue
		}
		f, err := DecodeFrame(c.buf.Bytes())
		if err != nil {
			// ProtocolError's text is already "<Zeek context>: <details>".
			c.log.Warn("bad frame", "err", err, "size", size)
			c.replyError(CodeDeserializationFailed, err.Error())
			continue
		}
		if f.Type != FrameDataMessage {
			c.log.Warn("client sent a non-data frame", "type", f.Type)
			c.replyError(CodeDeserializationFailed,
				fmt.Sprintf("unexpected %q frame: clients may only send data messages", f.Type))
			continue
		}
		if c.log.Enabled(context.Background(), slog.LevelDebug) {
			c.log.Debug("data message", "topic", f.Topic, "size", size)
		}
		if err := h.route(c.id, f.Topic, f.Data); err != nil {
			c.log.Warn("route data message", "err", err)
			c.replyError(CodeDeserializationFailed, err.Error())
		}
	}
}

// writeLoop drains the queue, pings, and finally closes the connection.
func (c *hubClient) writeLoop() {
	defer close(c.writerDone)
	defer c.finish()
	h := c.hub
	var tick <-chan time.Time
	if h.opts.PingInterval > 0 {
		// Zeek 8.1 pings at once on connect, then every interval.
		if !c.ping() {
			return
		}
		t := time.NewTicker(h.opts.PingInterval)
		defer t.Stop()
		tick = t.C
	}
	// Queued data waits until the reader has written the ack.
	var ready chan struct{}
	acked := c.acked
	for {
		select {
		case <-c.stop:
			return
		case <-acked:
			ready, acked = c.out.ready, nil
		case <-ready:
			// One frame per turn, so that pings and stop are not held up
			// by a long queue; pop renews the token for the rest.
			f, ok, _ := c.out.pop()
			if !ok {
				continue
			}
			written := c.write(f.b, time.Time{})
			f.release() // gorilla keeps nothing of a written message
			if !written {
				return
			}
		case <-tick:
			if c.pingOutstanding.Load() {
				h.stats.pingTimeouts.Add(1)
				c.log.Warn("no pong since the last ping; closing", "interval", h.opts.PingInterval)
				c.shutdown(websocket.CloseInternalServerErr, "Ping timeout", "ping timeout", false)
				return
			}
			if !c.ping() {
				return
			}
		}
	}
}

func (c *hubClient) ping() bool {
	c.pingOutstanding.Store(true)
	payload := "zcc::heartbeat::" + strconv.FormatUint(c.pingSeq, 10)
	c.pingSeq++
	if err := c.ws.WriteControl(websocket.PingMessage, []byte(payload), time.Now().Add(c.controlTimeout())); err != nil {
		c.shutdown(websocket.CloseInternalServerErr, "", "ping failed: "+err.Error(), false)
		return false
	}
	c.hub.stats.pingsSent.Add(1)
	return true
}

func (c *hubClient) controlTimeout() time.Duration {
	if wt := c.hub.opts.WriteTimeout; wt > 0 && wt < controlWriteTimeout {
		return wt
	}
	return controlWriteTimeout
}

// write sends one queued frame, within WriteTimeout and, if set, by
// `by`.
func (c *hubClient) write(b []byte, by time.Time) bool {
	deadline := by
	if wt := c.hub.opts.WriteTimeout; wt > 0 {
		if d := time.Now().Add(wt); deadline.IsZero() || d.Before(deadline) {
			deadline = d
		}
	}
	_ = c.ws.SetWriteDeadline(deadline)
	err := c.ws.WriteMessage(websocket.TextMessage, b)
	if err == nil {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		if !by.IsZero() && !time.Now().Before(by) {
			return false // the flush deadline, not WriteTimeout: flush reports it
		}
		c.hub.stats.writeTimeouts.Add(1)
		c.log.Warn("write timed out; closing", "timeout", c.hub.opts.WriteTimeout)
		c.shutdown(websocket.CloseInternalServerErr, "write timeout", "write timeout", false)
		return false
	}
	c.shutdown(websocket.CloseInternalServerErr, "", "write failed: "+err.Error(), false)
	return false
}

// finish writes the queued frames if asked to, sends the close frame,
// gives the client closeGrace to answer it, and drops the TCP connection.
func (c *hubClient) finish() {
	<-c.stop // every path out of writeLoop has called shutdown
	req := c.req
	if req.abort {
		c.force.Stop()
		_ = c.ws.NetConn().Close()
		return
	}
	if !req.flushBy.IsZero() && !c.flush(req.flushBy) {
		// A client that could not take its frames will not read the
		// close frame either.
		req.awaitEcho = false
	}
	msg := websocket.FormatCloseMessage(req.code, req.text)
	_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.controlTimeout()))
	if req.awaitEcho {
		timer := time.NewTimer(closeGrace)
		select {
		case <-c.readerDone:
		case <-timer.C:
		}
		timer.Stop()
	}
	c.force.Stop()
	_ = c.ws.NetConn().Close()
}

// flush writes the queued frames before the close frame, until the queue
// is empty (true) or `by` has passed (false).
func (c *hubClient) flush(by time.Time) bool {
	if !c.registered.Load() {
		// Nothing is ever queued for a client outside the routing table.
		return true
	}
	// Queued frames follow the ack, which the reader is about to write.
	timer := time.NewTimer(time.Until(by))
	defer timer.Stop()
	select {
	case <-c.acked:
	case <-c.readerDone:
		return true // the client left before its ack: nothing can reach it
	case <-timer.C:
		return c.flushTimedOut()
	}
	for {
		f, ok, _ := c.out.pop()
		if !ok {
			return true
		}
		written := c.write(f.b, by)
		f.release()
		if !written {
			if !time.Now().Before(by) {
				return c.flushTimedOut()
			}
			return false
		}
	}
}

func (c *hubClient) flushTimedOut() bool {
	c.hub.stats.flushTimeouts.Add(1)
	c.log.Warn("queued frames not written before the close deadline; dropping them",
		"queued", c.out.queued(), "close", c.req.code)
	return false
}
