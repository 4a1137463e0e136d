// Package client is a typed client for a cluster controller: it dials the
// controller's Broker WebSocket endpoint, publishes requests on the
// profile's controller topic and waits for the matching response, told
// apart from everything else on that topic by event kind and reqid.
//
// Every zcc part that plays the client — the conformance suites, the
// scenarios and `zcc client` — uses it, so correlation, timeouts and error
// reporting behave the same everywhere.
//
// For the Management API (profile api.Mgmt) there are typed requests
// (StageConfiguration, Deploy, GetNodes, …) and, for `zcc client --profile
// mgmt`, a stand-in for zeek-client 1.5: ZeekClient talks to the
// controller the way zeek-client does, and the Zeek* renderers print what
// zeek-client prints (its JSON byte for byte, its INI, its messages and
// exit codes).
package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
	"github.com/zcc-harness/zcc/client/uuid1"
)

// DefaultRequestTimeout is zeek-client's request_timeout_secs: deliberately
// longer than a controller's own 10 s request timeout, so that the
// controller's "request timed out" response arrives before the client
// gives up.
const DefaultRequestTimeout = 20 * time.Second

// monitorBuffer is how many received messages a Monitor may lag behind
// before it slows down the connection's dispatcher.
const monitorBuffer = 256

// Options configures Dial.
type Options struct {
	// Profile is the API dialect; default api.CC42.
	Profile *api.Profile
	// Dial tunes the transport. An X-Application-Name header of
	// "zcc-client" is added unless Dial.Header sets one.
	Dial *broker.DialOptions
	// RequestTimeout bounds a request whose context has no deadline;
	// default DefaultRequestTimeout, negative for none.
	RequestTimeout time.Duration
	// Observe, when set, is called for every data message from the very
	// first one on (Monitor only sees messages from its call on), before
	// the message is routed to a request. It runs on the connection's
	// reader goroutine and must return quickly.
	Observe func(Received)
}

// Client is one connection to a controller. Its methods are safe for
// concurrent use: responses are routed to the request that waits for them.
type Client struct {
	conn    *broker.Conn
	profile *api.Profile
	timeout time.Duration
	observe func(Received)

	mu       sync.Mutex
	waiters  map[waitKey][]chan outcome
	monitors map[*monitor]struct{}
	ended    bool  // the dispatcher has stopped
	endErr   error // why, wrapping ErrDisconnected

	done chan struct{} // closed when the dispatcher has stopped
}

type waitKey struct {
	kind  api.EventKind
	reqid string
}

type outcome struct {
	msg api.Message
	err error
}

type monitor struct {
	ch   chan Received
	stop chan struct{}
}

// Dial connects to the controller at url (ws://host:port/v1/messages/json),
// subscribed to the profile's controller topic, and waits for the ack.
func Dial(ctx context.Context, url string, opts Options) (*Client, error) {
	p := opts.Profile
	if p == nil {
		p = api.CC42
	}
	var dopts broker.DialOptions
	if opts.Dial != nil {
		dopts = *opts.Dial
	}
	if dopts.Header.Get("X-Application-Name") == "" {
		h := dopts.Header.Clone()
		if h == nil {
			h = http.Header{}
		}
		h.Set("X-Application-Name", "zcc-client")
		dopts.Header = h
	}
	timeout := opts.RequestTimeout
	if timeout == 0 {
		timeout = DefaultRequestTimeout
	}
	conn, err := broker.Dial(ctx, url, []string{p.ControllerTopic}, &dopts)
	if err != nil {
		return nil, fmt.Errorf("connect to controller: %w", err)
	}
	c := &Client{
		conn:     conn,
		profile:  p,
		timeout:  timeout,
		observe:  opts.Observe,
		waiters:  map[waitKey][]chan outcome{},
		monitors: map[*monitor]struct{}{},
		done:     make(chan struct{}),
	}
	go c.dispatch()
	return c, nil
}

// NewReqid returns a fresh request id in zeek-client's form, a uuid1 string.
func NewReqid() string { return uuid1.New() }

// Profile returns the client's API dialect.
func (c *Client) Profile() *api.Profile { return c.profile }

// Conn returns the underlying connection, for sending raw or malformed
// frames. Reading from it directly would steal responses from the client.
func (c *Client) Conn() *broker.Conn { return c.conn }

// Ack returns the controller's ack (its endpoint id and version).
func (c *Client) Ack() broker.Frame { return c.conn.Ack() }

// Errors delivers the error frames the controller sends on this
// connection (e.g. deserialization_failed for a malformed request). When
// nobody reads them the oldest are dropped; they never block responses.
func (c *Client) Errors() <-chan broker.Frame { return c.conn.Errors() }

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Close closes the connection cleanly and waits until every goroutine of
// the client has stopped. Pending requests and monitors end with an error
// wrapping ErrDisconnected.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}

// Publish sends m on the controller topic without waiting for anything.
func (c *Client) Publish(ctx context.Context, m api.Message) error {
	ev, err := c.profile.Encode(m)
	if err != nil {
		return fmt.Errorf("encode %T: %w", m, err)
	}
	if err := c.conn.Publish(ctx, c.profile.ControllerTopic, ev); err != nil {
		return fmt.Errorf("publish %s: %w", c.profile.ShortName(m.Kind()), err)
	}
	return nil
}

// Request publishes req on the controller topic and returns the response
// event of the matching kind that carries the same reqid. Other clients'
// requests and responses, other kinds with the same reqid, unknown events
// and non-event data on the topic are skipped (Monitor sees them all).
//
// ctx bounds the whole wait as a wall-clock deadline; without a deadline
// the client's RequestTimeout applies. When it passes the error is a
// *NoResponseError (errors.Is ErrNoResponse, and the context's error). A
// lost connection gives an error wrapping ErrDisconnected, a response that
// matches but does not decode a *BadResponseError.
func (c *Client) Request(ctx context.Context, req api.Message) (api.Message, error) {
	if req == nil {
		return nil, errors.New("request: nil message")
	}
	respKind, ok := responseKinds[req.Kind()]
	if !ok {
		return nil, fmt.Errorf("request: %T is not a controller request; use Publish", req)
	}
	if !c.profile.Supports(req.Kind()) || !c.profile.Supports(respKind) {
		return nil, fmt.Errorf("request: profile %s has no %T", c.profile.Name, req)
	}
	reqid, _ := api.ReqidOf(req)
	ev, err := c.profile.Encode(req)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", c.profile.ShortName(req.Kind()), err)
	}
	if _, has := ctx.Deadline(); !has && c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	start := time.Now()

	// Register before publishing: the response may arrive before Publish
	// returns.
	key := waitKey{respKind, reqid}
	ch, err := c.register(key)
	if err != nil {
		return nil, err
	}
	if err := c.conn.Publish(ctx, c.profile.ControllerTopic, ev); err != nil {
		c.unregister(key, ch)
		if ctx.Err() != nil {
			return nil, c.noResponse(respKind, reqid, start, ctx.Err())
		}
		return nil, fmt.Errorf("publish %s: %w: %w", c.profile.ShortName(req.Kind()), ErrDisconnected, err)
	}
	select {
	case o := <-ch:
		return o.msg, o.err
	case <-ctx.Done():
		c.unregister(key, ch)
		// A response that raced with the deadline still counts.
		select {
		case o := <-ch:
			return o.msg, o.err
		default:
		}
		return nil, c.noResponse(respKind, reqid, start, ctx.Err())
	}
}

func (c *Client) noResponse(kind api.EventKind, reqid string, start time.Time, cause error) error {
	return &NoResponseError{Event: c.profile.ShortName(kind), Reqid: reqid, Waited: time.Since(start), Err: cause}
}

func (c *Client) register(key waitKey) (chan outcome, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return nil, c.endErr
	}
	ch := make(chan outcome, 1)
	c.waiters[key] = append(c.waiters[key], ch)
	return ch, nil
}

func (c *Client) unregister(key waitKey, ch chan outcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	list := c.waiters[key]
	for i, w := range list {
		if w == ch {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(c.waiters, key)
	} else {
		c.waiters[key] = list
	}
}

// resolve hands o to the oldest request waiting for key, if any.
func (c *Client) resolve(key waitKey, o outcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	list := c.waiters[key]
	if len(list) == 0 {
		return
	}
	list[0] <- o
	if len(list) == 1 {
		delete(c.waiters, key)
	} else {
		c.waiters[key] = list[1:]
	}
}

// dispatch is the connection's only reader: it hands each message to the
// monitors and to the request waiting for it.
func (c *Client) dispatch() {
	defer close(c.done)
	for m := range c.conn.Messages() {
		r := c.interpret(m)
		if c.observe != nil {
			c.observe(r)
		}
		c.mu.Lock()
		mons := make([]*monitor, 0, len(c.monitors))
		for mon := range c.monitors {
			mons = append(mons, mon)
		}
		c.mu.Unlock()
		for _, mon := range mons {
			select {
			case mon.ch <- r:
			case <-mon.stop:
			}
		}
		c.route(r)
	}
	cause := c.conn.Err()
	if cause == nil {
		cause = broker.ErrClosed
	}
	c.mu.Lock()
	c.ended = true
	c.endErr = fmt.Errorf("%w: %w", ErrDisconnected, cause)
	for key, list := range c.waiters {
		for _, ch := range list {
			ch <- outcome{err: c.endErr}
		}
		delete(c.waiters, key)
	}
	// The dispatcher is the only sender, so closing here cannot race a send.
	for mon := range c.monitors {
		close(mon.ch)
		delete(c.monitors, mon)
	}
	c.mu.Unlock()
}

// route resolves the request a response belongs to. A response of the
// right kind whose arguments do not decode is still matched by its
// reqid, so that the request fails at once instead of timing out.
func (c *Client) route(r Received) {
	if r.Msg != nil {
		if reqid, ok := api.ReqidOf(r.Msg); ok {
			c.resolve(waitKey{r.Msg.Kind(), reqid}, outcome{msg: r.Msg})
		}
		return
	}
	if !r.IsEvent || r.Err == nil {
		return
	}
	kind, known := c.profile.KindOf(r.Event.Name)
	if !known || len(r.Event.Args) == 0 {
		return
	}
	reqid, isString := r.Event.Args[0].AsString()
	if !isString {
		return
	}
	c.resolve(waitKey{kind, reqid}, outcome{err: &BadResponseError{Event: c.profile.ShortName(kind), Reqid: reqid, Err: r.Err}})
}

// Watch starts delivering every data message the client receives from
// now on, in order, to the returned channel, until stop is called or the
// connection ends (then the channel is closed; after stop it simply
// receives nothing more). Registration is complete when Watch returns, so
// a caller can watch first and then trigger the traffic it expects. While
// the reader is more than a few hundred messages ahead of a watcher, it
// waits for it.
func (c *Client) Watch() (msgs <-chan Received, stop func()) {
	mon := &monitor{ch: make(chan Received, monitorBuffer), stop: make(chan struct{})}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		close(mon.ch)
		return mon.ch, func() {}
	}
	c.monitors[mon] = struct{}{}
	var once sync.Once
	return mon.ch, func() {
		once.Do(func() {
			c.mu.Lock()
			delete(c.monitors, mon)
			c.mu.Unlock()
			close(mon.stop)
		})
	}
}

// Monitor calls fn for every data message the client receives from now
// on, in order (see Watch), until ctx ends (it returns ctx's error), fn
// returns an error (returned as is) or the connection ends (an error
// wrapping ErrDisconnected). fn runs on Monitor's goroutine.
func (c *Client) Monitor(ctx context.Context, fn func(Received) error) error {
	msgs, stop := c.Watch()
	defer stop()
	for {
		select {
		case r, ok := <-msgs:
			if !ok {
				c.mu.Lock()
				err := c.endErr
				c.mu.Unlock()
				return err
			}
			if err := fn(r); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
