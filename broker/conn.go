package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// ErrClosed is wrapped by every error that reports a connection that has
// ended, whichever side ended it.
var ErrClosed = errors.New("broker: connection closed")

// Client defaults.
const (
	DefaultClientMaxFrameSize = 16 << 20
	DefaultClientQueueSize    = 1024
	// clientErrorQueue bounds the unsolicited error frames kept for
	// Errors(). They are side information: when nobody reads them the
	// oldest are dropped rather than stalling the data stream.
	clientErrorQueue = 256
	// errorChanSize is the buffer of the Errors() channel itself. Frames
	// beyond it wait in a backlog that exists only while it holds
	// something, because nearly every connection sees no error frame at
	// all and 256 frames up front would be most of an idle Conn's heap.
	errorChanSize = 8
	// closeGrace is how long a clean close waits for the peer's close
	// frame before the TCP connection is dropped anyway.
	closeGrace = time.Second
	// controlWriteTimeout bounds writes of close frames.
	controlWriteTimeout = time.Second
)

// DialOptions tunes Dial. The zero value (or nil) gives the defaults.
type DialOptions struct {
	Header       http.Header       // extra upgrade headers, e.g. X-Application-Name
	MaxFrameSize int64             // largest frame the client reads; default 16 MiB
	QueueSize    int               // buffered inbound data messages; default 1024
	Dialer       *websocket.Dialer // optional; default: no handshake timeout of its own (ctx bounds it), proxy from the environment
}

// HandshakeError is returned by Dial when the server answers the
// subscription list with an error frame instead of an ack.
type HandshakeError struct {
	Code    string
	Context string
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("handshake rejected: %s: %s", e.Code, e.Context)
}

// Message is one data message received by a Conn.
type Message struct {
	Topic string
	Data  Value
	Raw   []byte    // exact frame text
	At    time.Time // receive time
	// Err is non-nil when the frame could not be decoded (or was not a
	// data message where one was expected). Data is then none and Raw
	// holds the text; consumers must check it.
	Err error
}

// Event interprets the message's payload as a Zeek event.
func (m Message) Event() (Event, error) {
	if m.Err != nil {
		return Event{}, m.Err
	}
	return EventFromValue(m.Data)
}

// Conn is a client of Broker's WebSocket JSON API: it subscribes to topic
// prefixes once (in Dial), then publishes and receives data messages.
//
// A reader goroutine runs for the whole life of the connection, because
// gorilla/websocket answers pings only while something reads and a Zeek
// 8.1 server drops peers that miss a ping. When the inbound queue is full
// the reader waits for the consumer (backpressure instead of loss), and
// while it waits it does not answer pings either: consumers must keep up
// or size QueueSize for their bursts.
//
// Publish, PublishValue and WriteRaw may be called from several
// goroutines; writes are serialised.
type Conn struct {
	ws  *websocket.Conn
	ack Frame

	msgs chan Message
	errs chan Frame
	// errQ holds the error frames that did not fit in errs.
	errQ errorBacklog

	// wlock serialises writers; a channel rather than a mutex so that
	// waiting for it honours the caller's context.
	wlock chan struct{}

	closing    chan struct{} // closed when Close or Kill starts
	done       chan struct{} // closed when the reader has ended
	closeOnce  sync.Once
	errMu      sync.Mutex
	err        error
	errDropped atomic.Uint64
}

// Dial connects to a Broker WebSocket endpoint (ws://host:port/v1/messages/json),
// subscribes to topics and waits for the ack. ctx bounds the whole dial and
// handshake. An error frame instead of the ack gives a *HandshakeError.
func Dial(ctx context.Context, url string, topics []string, opts *DialOptions) (*Conn, error) {
	var o DialOptions
	if opts != nil {
		o = *opts
	}
	if o.MaxFrameSize <= 0 {
		o.MaxFrameSize = DefaultClientMaxFrameSize
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultClientQueueSize
	}
	dialer := o.Dialer
	if dialer == nil {
		dialer = &websocket.Dialer{Proxy: http.ProxyFromEnvironment}
	}
	ws, resp, err := dialer.DialContext(ctx, url, o.Header)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %w (HTTP %s)", url, err, resp.Status)
		}
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	ws.SetReadLimit(o.MaxFrameSize)
	c := &Conn{
		ws:      ws,
		msgs:    make(chan Message, o.QueueSize),
		errs:    make(chan Frame, errorChanSize),
		wlock:   make(chan struct{}, 1),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	acks := make(chan handshakeResult, 1)
	go c.readLoop(acks)

	if err := c.write(ctx, EncodeHandshake(topics)); err != nil {
		// A server may reject the connection before reading anything (Zeek
		// 8.1 does so for a wrong path or a bad X-Application-Name): its
		// error frame explains the failed write better than the write error.
		// The failed write has dropped the connection, so the reader ends
		// soon, after passing on anything it read first.
		var r handshakeResult
		select {
		case r = <-acks:
		case <-c.done:
		case <-ctx.Done():
		}
		c.Kill()
		if r.err == nil {
			// The reader hands over its result before it ends.
			select {
			case r = <-acks:
			default:
			}
		}
		if r.err != nil {
			return nil, fmt.Errorf("dial %s: %w", url, r.err)
		}
		return nil, fmt.Errorf("dial %s: send subscriptions: %w", url, err)
	}
	select {
	case r := <-acks:
		if r.err != nil {
			c.Close()
			return nil, fmt.Errorf("dial %s: %w", url, r.err)
		}
		c.ack = r.ack
		return c, nil
	case <-c.done:
		// The reader hands over its result before it ends.
		if r := <-acks; r.err != nil {
			return nil, fmt.Errorf("dial %s: %w", url, r.err)
		}
		return nil, fmt.Errorf("dial %s: waiting for the ack: %w", url, c.Err())
	case <-ctx.Done():
		c.Kill()
		return nil, fmt.Errorf("dial %s: waiting for the ack: %w", url, ctx.Err())
	}
}

type handshakeResult struct {
	ack Frame
	err error
}

// Ack returns the server's ack (endpoint and version).
func (c *Conn) Ack() Frame { return c.ack }

// LocalAddr returns the client's side of the TCP connection.
func (c *Conn) LocalAddr() net.Addr { return c.ws.LocalAddr() }

// Publish sends ev on topic.
func (c *Conn) Publish(ctx context.Context, topic string, ev Event) error {
	return c.PublishValue(ctx, topic, ev.Value())
}

// PublishValue sends any Broker value on topic. (Zeek ≥ 8.1 accepts only
// events from WebSocket clients; other servers and zcc's Hub take any value.)
func (c *Conn) PublishValue(ctx context.Context, topic string, v Value) error {
	b, err := DataFrame(topic, v).AppendJSON(make([]byte, 0, 256))
	if err != nil {
		return fmt.Errorf("publish to %q: %w", topic, err)
	}
	if err := c.write(ctx, b); err != nil {
		return fmt.Errorf("publish to %q: %w", topic, err)
	}
	return nil
}

// WriteRaw sends text as one text frame, unchecked (for tests that need
// malformed frames).
func (c *Conn) WriteRaw(ctx context.Context, text []byte) error {
	if err := c.write(ctx, text); err != nil {
		return fmt.Errorf("write raw frame: %w", err)
	}
	return nil
}

// write sends one text frame. If ctx ends while the frame is half written
// the connection cannot be used any more (the peer would see a torn frame),
// so it is dropped.
func (c *Conn) write(ctx context.Context, b []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case c.wlock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.closing:
		return c.closedErr()
	}
	defer func() { <-c.wlock }()
	select {
	case <-c.closing:
		return c.closedErr()
	default:
	}
	deadline, _ := ctx.Deadline()
	_ = c.ws.SetWriteDeadline(deadline)

	// Cancellation without a deadline: interrupt the blocked write through
	// the net.Conn, which is safe to call concurrently. finished stops a
	// late callback from touching a write that has already completed.
	var mu sync.Mutex
	finished := false
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !finished {
			_ = c.ws.NetConn().SetWriteDeadline(time.Unix(1, 0))
		}
	})
	err := c.ws.WriteMessage(websocket.TextMessage, b)
	mu.Lock()
	finished = true
	mu.Unlock()
	stop()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%w)", ctxErr, err)
		}
		c.setErr(fmt.Errorf("write failed: %w", err))
		_ = c.ws.NetConn().Close()
		return err
	}
	return nil
}

// Next returns the next data message. Once the connection has ended and
// the queue is drained it returns an error wrapping ErrClosed (and the
// reason, see Err).
func (c *Conn) Next(ctx context.Context) (Message, error) {
	select {
	case m, ok := <-c.msgs:
		if !ok {
			return Message{}, c.closedErr()
		}
		return m, nil
	case <-ctx.Done():
		return Message{}, fmt.Errorf("waiting for a message: %w", ctx.Err())
	}
}

// Messages returns the stream that Next reads from; use one or the other.
// The channel is closed when the connection has ended.
func (c *Conn) Messages() <-chan Message { return c.msgs }

// Errors returns the unsolicited error frames from the server (Zeek 8.1
// sends them for frames it rejects and for backend failures). They never
// appear in Messages. If nobody reads them, the oldest beyond 256 are
// dropped (see ErrorsDropped). The channel is closed when the connection
// has ended; unread frames stay readable then, the newest 8 of them.
func (c *Conn) Errors() <-chan Frame { return c.errs }

// ErrorsDropped counts error frames dropped because Errors was not read.
func (c *Conn) ErrorsDropped() uint64 { return c.errDropped.Load() }

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err says why the connection ended; nil while it is up. It wraps
// ErrClosed, and a *websocket.CloseError when the server sent a close frame.
func (c *Conn) Err() error {
	select {
	case <-c.done:
	default:
		return nil
	}
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

func (c *Conn) closedErr() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if c.err != nil {
		return c.err
	}
	return ErrClosed
}

// setErr records the first reason the connection ended.
func (c *Conn) setErr(err error) {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if c.err == nil {
		if !errors.Is(err, ErrClosed) {
			err = fmt.Errorf("%w: %w", ErrClosed, err)
		}
		c.err = err
	}
}

// Close ends the connection cleanly: a close frame with 1000, then it
// waits for the server's close frame (at most a second) and for the reader
// goroutine. Messages already queued stay readable.
func (c *Conn) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		c.setErr(errors.New("closed by this client"))
		close(c.closing)
	})
	if !first {
		<-c.done
		return nil
	}
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	werr := c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(controlWriteTimeout))
	timer := time.NewTimer(closeGrace)
	defer timer.Stop()
	select {
	case <-c.done:
	case <-timer.C:
		_ = c.ws.NetConn().Close()
		<-c.done
	}
	if werr != nil && !errors.Is(werr, websocket.ErrCloseSent) && !errors.Is(werr, net.ErrClosed) {
		return fmt.Errorf("close: send close frame: %w", werr)
	}
	return nil
}

// Kill drops the TCP connection without a close frame, as a crashed peer
// (or zeek-client 1.5.0) would, and waits for the reader goroutine.
func (c *Conn) Kill() {
	c.closeOnce.Do(func() {
		c.setErr(errors.New("killed by this client"))
		close(c.closing)
	})
	_ = c.ws.NetConn().Close()
	<-c.done
}

func (c *Conn) readLoop(acks chan<- handshakeResult) {
	defer func() {
		_ = c.ws.NetConn().Close()
		close(c.msgs)
		c.endErrors()
		close(c.done)
	}()
	acked := false
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			c.setErr(err)
			if !acked {
				acks <- handshakeResult{err: fmt.Errorf("connection ended before the ack: %w", err)}
			}
			return
		}
		at := time.Now()
		if mt != websocket.TextMessage {
			c.deliver(Message{Raw: data, At: at, Err: fmt.Errorf("server sent a binary frame of %d bytes; the JSON API uses text frames", len(data))})
			continue
		}
		f, err := DecodeFrame(data)
		if err != nil {
			if !acked {
				acked = true
				acks <- handshakeResult{err: fmt.Errorf("server sent an undecodable frame instead of the ack: %w", err)}
				continue
			}
			c.deliver(Message{Raw: data, At: at, Err: fmt.Errorf("decode frame: %w", err)})
			continue
		}
		switch f.Type {
		case FrameAck:
			if !acked {
				acked = true
				acks <- handshakeResult{ack: f}
				continue
			}
			c.deliver(Message{Raw: data, At: at, Err: fmt.Errorf("unexpected second ack (endpoint %q)", f.Endpoint)})
		case FrameError:
			if !acked {
				acked = true
				acks <- handshakeResult{err: &HandshakeError{Code: f.Code, Context: f.Context}}
				continue
			}
			c.pushError(f)
		default:
			c.deliver(Message{Topic: f.Topic, Data: f.Data, Raw: data, At: at})
		}
	}
}

// deliver hands a message to the consumer, waiting while the queue is
// full, unless the connection is being closed.
func (c *Conn) deliver(m Message) {
	select {
	case c.msgs <- m:
	case <-c.closing:
	}
}

// errorBacklog holds the error frames that did not fit in the Errors()
// channel, oldest first, while a pump goroutine moves them into it. Both
// exist only while the backlog holds frames, so a connection that never
// gets more than a few error frames at a time never pays for either.
type errorBacklog struct {
	mu      sync.Mutex
	frames  []Frame
	pumping bool // a pump goroutine is running; the reader must not bypass it
	// inFlight: the pump has taken a frame off frames and is sending it.
	// It is counted as waiting until the pump comes back for the next one,
	// so the count may be one too high for a moment, never too low.
	inFlight bool
	stop     chan struct{} // closed when the reader ends; made with the first pump
	pumps    sync.WaitGroup
}

// pushError queues an error frame, dropping the oldest when 256 are
// waiting. The reader is its only caller.
func (c *Conn) pushError(f Frame) {
	q := &c.errQ
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.pumping {
		select {
		case c.errs <- f:
			return
		default:
		}
	}
	waiting := len(c.errs) + len(q.frames)
	if q.inFlight {
		waiting++
	}
	if waiting >= clientErrorQueue {
		select {
		case <-c.errs:
		default:
			// The consumer emptied the channel meanwhile; the backlog's
			// head is the oldest left.
			q.frames[0] = Frame{}
			q.frames = q.frames[1:]
		}
		c.errDropped.Add(1)
	}
	q.frames = append(q.frames, f)
	if !q.pumping {
		q.pumping = true
		if q.stop == nil {
			q.stop = make(chan struct{})
		}
		q.pumps.Add(1)
		go c.pumpErrors(q.stop)
	}
}

// pumpErrors moves the backlog into the Errors() channel as the consumer
// makes room, and ends when the backlog is empty or the reader has ended.
func (c *Conn) pumpErrors(stop <-chan struct{}) {
	q := &c.errQ
	defer q.pumps.Done()
	for {
		q.mu.Lock()
		q.inFlight = false // the previous frame, if any, is in the channel
		if len(q.frames) == 0 {
			q.frames, q.pumping = nil, false
			q.mu.Unlock()
			return
		}
		f := q.frames[0]
		q.frames[0] = Frame{}
		q.frames = q.frames[1:]
		q.inFlight = true
		q.mu.Unlock()
		select {
		case c.errs <- f:
		case <-stop:
			q.mu.Lock()
			q.frames = append([]Frame{f}, q.frames...)
			q.pumping, q.inFlight = false, false
			q.mu.Unlock()
			return
		}
	}
}

// endErrors closes the Errors() channel once the reader has ended. A pump
// must not outlive the connection (nobody may ever read), so what is still
// in the backlog goes into the channel as far as it has room, the oldest
// giving way.
func (c *Conn) endErrors() {
	q := &c.errQ
	q.mu.Lock()
	stop := q.stop
	q.mu.Unlock()
	if stop != nil {
		close(stop)
		q.pumps.Wait()
	}
	q.mu.Lock()
	rest := q.frames
	q.frames = nil
	q.mu.Unlock()
	for _, f := range rest {
		for sent := false; !sent; {
			select {
			case c.errs <- f:
				sent = true
			default:
				select {
				case <-c.errs:
					c.errDropped.Add(1)
				default:
				}
			}
		}
	}
	close(c.errs)
}
