package client

import (
	"errors"
	"fmt"
	"time"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// Received is one data message as the client understood it.
type Received struct {
	Topic string
	At    time.Time
	Raw   []byte       // the frame's text
	Data  broker.Value // the payload (none when the frame did not decode)

	// IsEvent: Data is a Zeek event, in Event.
	IsEvent bool
	Event   broker.Event

	// Msg is the typed event when the profile knows it and its arguments
	// decode; otherwise nil and Err says why (the frame, the event
	// envelope, an unknown event name, or bad arguments).
	Msg api.Message
	Err error
}

func (c *Client) interpret(m broker.Message) Received {
	r := Received{Topic: m.Topic, At: m.At, Raw: m.Raw, Data: m.Data}
	if m.Err != nil {
		r.Err = fmt.Errorf("undecodable frame: %w", m.Err)
		return r
	}
	ev, err := m.Event()
	if err != nil {
		r.Err = fmt.Errorf("not a Zeek event: %w", err)
		return r
	}
	r.IsEvent, r.Event = true, ev
	r.Msg, r.Err = c.profile.Decode(ev)
	return r
}

// ErrNoResponse is matched (errors.Is) by every error that reports a
// request whose response did not arrive before its deadline.
var ErrNoResponse = errors.New("no response received")

// ErrDisconnected is wrapped by every error that reports the connection
// to the controller ending (refused, closed, reset) during a request.
var ErrDisconnected = errors.New("connection to the controller lost")

// ErrBadResponse is matched by a *BadResponseError.
var ErrBadResponse = errors.New("malformed response")

// NoResponseError: no response of the expected kind with the request's
// reqid arrived in time. It matches ErrNoResponse and unwraps to the
// context's error (context.DeadlineExceeded or context.Canceled).
type NoResponseError struct {
	Event  string // the response event waited for, e.g. "get_instances_response"
	Reqid  string
	Waited time.Duration
	Err    error
}

func (e *NoResponseError) Error() string {
	return fmt.Sprintf("no response received: no %s for reqid %q after %v (%v)",
		e.Event, e.Reqid, e.Waited.Round(time.Millisecond), e.Err)
}

// Is makes errors.Is(err, ErrNoResponse) true.
func (e *NoResponseError) Is(target error) bool { return target == ErrNoResponse }

func (e *NoResponseError) Unwrap() error { return e.Err }

// BadResponseError: the controller answered with the expected event and
// reqid, but the arguments do not decode in the client's profile.
type BadResponseError struct {
	Event string
	Reqid string
	Err   error // an *api.ArgCountError or *api.ArgError
}

func (e *BadResponseError) Error() string {
	return fmt.Sprintf("malformed %s for reqid %q: %v", e.Event, e.Reqid, e.Err)
}

// Is makes errors.Is(err, ErrBadResponse) true.
func (e *BadResponseError) Is(target error) bool { return target == ErrBadResponse }

func (e *BadResponseError) Unwrap() error { return e.Err }

// responseKinds pairs every controller request with its response. The
// profile decides which of them exist.
var responseKinds = map[api.EventKind]api.EventKind{
	api.KindGetInstancesRequest:       api.KindGetInstancesResponse,
	api.KindSetConfigurationRequest:   api.KindSetConfigurationResponse,
	api.KindTestTimeoutRequest:        api.KindTestTimeoutResponse,
	api.KindStageConfigurationRequest: api.KindStageConfigurationResponse,
	api.KindGetConfigurationRequest:   api.KindGetConfigurationResponse,
	api.KindDeployRequest:             api.KindDeployResponse,
	api.KindGetNodesRequest:           api.KindGetNodesResponse,
	api.KindGetIDValueRequest:         api.KindGetIDValueResponse,
	api.KindRestartRequest:            api.KindRestartResponse,
}

// ResponseKind returns the kind of the response to a request kind.
func ResponseKind(request api.EventKind) (api.EventKind, bool) {
	k, ok := responseKinds[request]
	return k, ok
}
