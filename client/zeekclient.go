package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// ZeekClient is one connection to a Management controller that behaves as
// zeek-client 1.5 does on the wire and reports problems in its words, so
// that `zcc client --profile mgmt` can stand in for it (scripts compare
// exit codes and error text). Differences from Client:
//
//   - it reads exactly one frame as the ack and checks only that it is an
//     object with the keys type, endpoint and version;
//   - after publishing a request it reads frames in order until the
//     response of the right event with its reqid arrives, and gives up at
//     the first frame that is not JSON, a data message that is not a Zeek
//     event, or a known Management event with wrongly typed arguments;
//     error frames, unknown events (reported to Warn) and other requests
//     and responses are skipped;
//   - it keeps no reader running between requests, and closes by dropping
//     the TCP connection without a close frame.
//
// Deliberately unlike zeek-client, Broker's invalid escapes and raw control
// bytes in strings are accepted (zeek-client cannot read NodeOutputs that
// contain them), and the request timeout is a wall-clock deadline
// (zeek-client's socket timeout restarts with every ping, so against a
// Zeek 8.1 controller it may never expire).
type ZeekClient struct {
	ws       *websocket.Conn
	remote   string
	opts     ZeekClientOptions
	endpoint string
}

// ZeekClientOptions tunes DialZeekClient; zero values are zeek-client
// 1.5's defaults.
type ZeekClientOptions struct {
	// PeeringAttempts is client.peering_attempts: connection attempts and
	// ack waits share this many tries (default 10).
	PeeringAttempts int
	// RetryDelay is client.peering_retry_delay_secs (default 1 s).
	RetryDelay time.Duration
	// RequestTimeout is client.request_timeout_secs (default 20 s).
	RequestTimeout time.Duration
	// Warn receives zeek-client's warnings (events it does not know).
	Warn func(msg string)
	// Header is added to the WebSocket upgrade request.
	Header http.Header
}

// ZeekClientError is a failure in zeek-client's words: Msg is what
// zeek-client logs after "error: ". Err, when set, is the underlying
// error.
type ZeekClientError struct {
	Msg string
	Err error
}

func (e *ZeekClientError) Error() string { return e.Msg }

func (e *ZeekClientError) Unwrap() error { return e.Err }

// DialZeekClient connects to the controller at url
// (ws://host:port/v1/messages/json) and subscribes to the Management
// controller topic, retrying refused and timed-out connections as
// zeek-client does. Its errors are *ZeekClientError.
func DialZeekClient(ctx context.Context, url string, opts ZeekClientOptions) (*ZeekClient, error) {
	if opts.PeeringAttempts <= 0 {
		opts.PeeringAttempts = 10
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = time.Second
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.Warn == nil {
		opts.Warn = func(string) {}
	}
	remote, err := remoteOf(url)
	if err != nil {
		return nil, &ZeekClientError{Msg: err.Error(), Err: err}
	}
	z := &ZeekClient{remote: remote, opts: opts}
	attempts := opts.PeeringAttempts
	dialer := websocket.Dialer{Proxy: http.ProxyFromEnvironment}
	for {
		if attempts == 0 {
			return nil, &ZeekClientError{Msg: fmt.Sprintf("websocket connection to %s timed out in connect()", remote)}
		}
		attempts--
		actx, cancel := context.WithTimeout(ctx, opts.RetryDelay)
		ws, _, err := dialer.DialContext(actx, url, opts.Header)
		cancel()
		if err == nil {
			ws.SetReadLimit(broker.DefaultClientMaxFrameSize)
			z.ws = ws
			break
		}
		if ctx.Err() != nil {
			return nil, &ZeekClientError{Msg: fmt.Sprintf("websocket connection to %s interrupted in connect(): %v", remote, ctx.Err()), Err: ctx.Err()}
		}
		var ne net.Error
		switch {
		case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
			if !sleepCtx(ctx, opts.RetryDelay) {
				return nil, &ZeekClientError{Msg: fmt.Sprintf("websocket connection to %s interrupted in connect(): %v", remote, ctx.Err()), Err: ctx.Err()}
			}
		case errors.Is(err, websocket.ErrBadHandshake):
			return nil, &ZeekClientError{Msg: fmt.Sprintf("websocket error in connect() with controller %s: %v", remote, err), Err: err}
		default:
			return nil, &ZeekClientError{Msg: fmt.Sprintf("socket error in connect() with controller %s: %v", remote, err), Err: err}
		}
	}
	if err := z.ws.WriteMessage(websocket.TextMessage, broker.EncodeHandshake([]string{api.Mgmt.ControllerTopic})); err != nil {
		z.Close()
		return nil, &ZeekClientError{Msg: fmt.Sprintf("websocket error in connect() with controller %s: %v", remote, err), Err: err}
	}
	// zeek-client waits up to one retry delay per remaining attempt and
	// sleeps as long again before the next; a gorilla connection cannot
	// read again after a timeout, so this is one read with that budget.
	raw, err := z.read(ctx, time.Now().Add(2*time.Duration(attempts)*opts.RetryDelay))
	switch {
	case errors.Is(err, errReadTimeout):
		z.Close()
		return nil, &ZeekClientError{Msg: fmt.Sprintf("websocket connection to %s timed out in handshake", remote), Err: err}
	case err != nil && !errors.Is(err, errClosedByPeer):
		z.Close()
		return nil, &ZeekClientError{Msg: fmt.Sprintf("websocket error in handshake with controller %s: %v", remote, err), Err: err}
	}
	if msg := checkAck(raw); msg != "" {
		z.Close()
		return nil, &ZeekClientError{Msg: fmt.Sprintf("protocol data error with controller %s: %s, raw data: %s", remote, msg, raw)}
	}
	if f, err := broker.DecodeFrame(raw); err == nil {
		z.endpoint = f.Endpoint
	}
	return z, nil
}

// remoteOf renders a URL's host and port as zeek-client names the
// controller in its messages ("127.0.0.1:2149", "[::1]:2149").
func remoteOf(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("controller URL %q: %v", raw, err)
	}
	if u.Port() != "" {
		return u.Host, nil
	}
	return net.JoinHostPort(u.Hostname(), "80"), nil
}

// checkAck applies zeek-client's HandshakeAckMessage checks to the first
// frame; it returns the problem in zeek-client's words, or "".
func checkAck(raw []byte) string {
	v, err := pyLoads(string(raw))
	if err != nil {
		return fmt.Sprintf("cannot parse JSON data for HandshakeAckMessage: %s -- %s", err.(*pyJSONError).Msg, raw)
	}
	obj, ok := v.(pyObject)
	if !ok {
		return "invalid data layout for Broker HandshakeAckMessage: not an object"
	}
	if _, ok := obj["type"]; !ok {
		return "invalid data layout for Broker HandshakeAckMessage: required keys missing"
	}
	for _, k := range []string{"type", "endpoint", "version"} {
		if _, ok := obj[k]; !ok {
			return fmt.Sprintf(`invalid data layout for HandshakeAckMessage: required key "%s" missing`, k)
		}
	}
	return ""
}

// Endpoint returns the endpoint id from the controller's ack.
func (z *ZeekClient) Endpoint() string { return z.endpoint }

// Remote returns the controller's address as messages name it.
func (z *ZeekClient) Remote() string { return z.remote }

// Close drops the connection as zeek-client does: TCP closed, no close
// frame.
func (z *ZeekClient) Close() error { return z.ws.NetConn().Close() }

var (
	errReadTimeout  = errors.New("read timed out")
	errClosedByPeer = errors.New("closed by the controller")
)

// read returns the next message's payload before deadline. A close frame
// reads as an empty message, as websocket-client's recv() returns one.
func (z *ZeekClient) read(ctx context.Context, deadline time.Time) ([]byte, error) {
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = z.ws.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = z.ws.SetReadDeadline(time.Now()) })
	defer stop()
	_, raw, err := z.ws.ReadMessage()
	if err == nil {
		return raw, nil
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%w: %w", errReadTimeout, ctx.Err())
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil, errReadTimeout
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return nil, fmt.Errorf("%w: %w", errClosedByPeer, err)
	}
	return nil, err
}

// zeekClientEvents are the events zeek-client 1.5 knows (zeekclient
// events.py), with their parameters and the Broker type it requires of
// each. test_noop_request is declared by no Zeek, but zeek-client knows it.
var zeekClientEvents = map[string][]zcParam{
	"Management::Controller::API::deploy_request":               {reqidParam},
	"Management::Controller::API::deploy_response":              {reqidParam, {"results", broker.KindVector}},
	"Management::Controller::API::get_configuration_request":    {reqidParam, {"deployed", broker.KindBoolean}},
	"Management::Controller::API::get_configuration_response":   {reqidParam, {"result", broker.KindVector}},
	"Management::Controller::API::get_id_value_request":         {reqidParam, {"id", broker.KindString}, {"nodes", broker.KindSet}},
	"Management::Controller::API::get_id_value_response":        {reqidParam, {"results", broker.KindVector}},
	"Management::Controller::API::get_instances_request":        {reqidParam},
	"Management::Controller::API::get_instances_response":       {reqidParam, {"result", broker.KindVector}},
	"Management::Controller::API::get_nodes_request":            {reqidParam},
	"Management::Controller::API::get_nodes_response":           {reqidParam, {"results", broker.KindVector}},
	"Management::Controller::API::restart_request":              {reqidParam, {"nodes", broker.KindSet}},
	"Management::Controller::API::restart_response":             {reqidParam, {"results", broker.KindVector}},
	"Management::Controller::API::stage_configuration_request":  {reqidParam, {"config", broker.KindVector}},
	"Management::Controller::API::stage_configuration_response": {reqidParam, {"results", broker.KindVector}},
	"Management::Controller::API::test_noop_request":            {reqidParam},
	"Management::Controller::API::test_timeout_request":         {reqidParam, {"with_state", broker.KindBoolean}},
	"Management::Controller::API::test_timeout_response":        {reqidParam, {"result", broker.KindVector}},
}

type zcParam struct {
	name string
	kind broker.Kind
}

var reqidParam = zcParam{"reqid", broker.KindString}

// ZeekEventString renders a received event as zeek-client's str(event):
// "Name(arg: <class 'zeekclient.brokertypes.T'>, …)".
func ZeekEventString(ev broker.Event) string {
	params := zeekClientEvents[ev.Name]
	s := ev.Name + "("
	for i, a := range ev.Args {
		if i > 0 {
			s += ", "
		}
		name := fmt.Sprintf("arg%d", i)
		if i < len(params) {
			name = params[i].name
		}
		s += name + ": " + pyClass(a)
	}
	return s + ")"
}

// ZeekResponse is what Transact returns: the typed response and the event
// it came in (zeek-client quotes the event in some messages).
type ZeekResponse struct {
	Msg   api.Message
	Event broker.Event
}

// Transact publishes req (a Management controller request) and waits for
// its response as zeek-client's Controller.transact does. Its errors are
// *ZeekClientError with zeek-client's message (what follows "error: no
// response received: ") in Msg, or with zcc's own words for a response
// that zeek-client would accept but that does not decode in the mgmt
// profile.
func (z *ZeekClient) Transact(ctx context.Context, req api.Message) (ZeekResponse, error) {
	respKind, ok := responseKinds[req.Kind()]
	if !ok {
		return ZeekResponse{}, fmt.Errorf("transact: %T is not a controller request", req)
	}
	respName, _ := api.Mgmt.EventName(respKind)
	reqid, _ := api.ReqidOf(req)
	ev, err := api.Mgmt.Encode(req)
	if err != nil {
		return ZeekResponse{}, fmt.Errorf("encode %T: %w", req, err)
	}
	raw, err := broker.EventFrame(api.Mgmt.ControllerTopic, ev).Encode()
	if err != nil {
		return ZeekResponse{}, fmt.Errorf("encode %T: %w", req, err)
	}
	if err := z.ws.WriteMessage(websocket.TextMessage, raw); err != nil {
		return ZeekResponse{}, z.fail(fmt.Sprintf("unexpected error with controller %s: %v", z.remote, err), err)
	}
	deadline := time.Now().Add(z.opts.RequestTimeout)
	for {
		raw, err := z.read(ctx, deadline)
		switch {
		case errors.Is(err, errReadTimeout):
			return ZeekResponse{}, z.fail(fmt.Sprintf("websocket connection to %s timed out", z.remote), err)
		case errors.Is(err, errClosedByPeer):
			raw = nil // websocket-client hands the close over as an empty message
		case err != nil:
			return ZeekResponse{}, z.fail(fmt.Sprintf("unexpected error with controller %s: %v", z.remote, err), err)
		}
		ev, skip, msg := z.interpret(raw)
		if msg != "" {
			return ZeekResponse{}, z.fail(msg, nil)
		}
		if skip {
			continue
		}
		if ev.Name != respName {
			continue
		}
		if r, _ := ev.Args[0].AsString(); r != reqid {
			continue
		}
		m, err := api.Mgmt.Decode(ev)
		if err != nil {
			bad := &BadResponseError{Event: api.Mgmt.ShortName(respKind), Reqid: reqid, Err: err}
			return ZeekResponse{Event: ev}, &ZeekClientError{Msg: bad.Error(), Err: bad}
		}
		return ZeekResponse{Msg: m, Event: ev}, nil
	}
}

func (z *ZeekClient) fail(msg string, err error) error {
	return &ZeekClientError{Msg: "no response received: " + msg, Err: err}
}

// interpret reads one frame as zeek-client's Controller.receive does: it
// returns the event, or skip for frames zeek-client passes over, or the
// reason it gives up.
func (z *ZeekClient) interpret(raw []byte) (ev broker.Event, skip bool, problem string) {
	protocol := func(format string, args ...any) string {
		return fmt.Sprintf("protocol data error with controller %s: ", z.remote) + fmt.Sprintf(format, args...)
	}
	f, err := broker.DecodeFrame(raw)
	if err != nil {
		if _, perr := pyLoads(string(raw)); perr != nil {
			return ev, false, protocol("cannot parse JSON data: %s -- %s", perr.(*pyJSONError).Msg, raw)
		}
		return ev, false, protocol("%v", err)
	}
	switch f.Type {
	case broker.FrameError:
		return ev, true, ""
	case broker.FrameAck:
		// zeek-client knows no second ack: neither a message nor data.
		return ev, false, protocol("unrecognized Broker type: %s", raw)
	}
	invalid := func() string { return protocol("invalid event data, %s", pyRepr(f.Data)) }
	// zeek-client's ZeekEvent.from_vector: it checks only the layout of
	// the third element and ignores the first two and any metadata.
	top, ok := f.Data.AsVector()
	if !ok || len(top) < 3 {
		return ev, false, invalid()
	}
	body, ok := top[2].AsVector()
	if !ok || len(body) < 2 {
		return ev, false, invalid()
	}
	name, ok := body[0].AsString()
	args, ok2 := body[1].AsVector()
	if !ok || !ok2 {
		return ev, false, invalid()
	}
	params, known := zeekClientEvents[name]
	if !known {
		z.opts.Warn(fmt.Sprintf(`received unexpected event "%s", skipping`, name))
		return ev, true, ""
	}
	if len(args) != len(params) {
		return ev, false, invalid()
	}
	for i, p := range params {
		if args[i].Kind() != p.kind {
			return ev, false, invalid()
		}
	}
	return broker.NewEvent(name, args...), false, ""
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
