package client

import (
	"context"
	"fmt"

	"github.com/zcc-harness/zcc/api"
)

// RequestOption adjusts one typed request.
type RequestOption func(*requestSettings)

type requestSettings struct {
	reqid    string
	hasReqid bool
}

// WithReqid sends the request with reqid instead of a fresh one, e.g. to
// reuse the reqid of a pending request on purpose.
func WithReqid(reqid string) RequestOption {
	return func(s *requestSettings) { s.reqid, s.hasReqid = reqid, true }
}

func reqidFrom(opts []RequestOption) string {
	var s requestSettings
	for _, o := range opts {
		o(&s)
	}
	if s.hasReqid {
		return s.reqid
	}
	return NewReqid()
}

// GetInstances sends get_instances_request and returns the Result; its
// Data is the instance vector (decode it with Profile().DecodeInstances).
// A failed Result is returned with a nil error: the request itself worked.
func (c *Client) GetInstances(ctx context.Context, opts ...RequestOption) (api.Result, error) {
	resp, err := c.Request(ctx, api.GetInstancesRequest{Reqid: reqidFrom(opts)})
	if err != nil {
		return api.Result{}, err
	}
	r, ok := resp.(api.GetInstancesResponse)
	if !ok {
		return api.Result{}, fmt.Errorf("get_instances: unexpected response %T", resp)
	}
	return r.Result, nil
}

// SetConfiguration sends set_configuration_request (cc42) with cfg and
// returns the Results: one per agent, or one failure Result (pending
// request, timeout).
func (c *Client) SetConfiguration(ctx context.Context, cfg api.Configuration, opts ...RequestOption) ([]api.Result, error) {
	resp, err := c.Request(ctx, api.SetConfigurationRequest{Reqid: reqidFrom(opts), Config: cfg})
	if err != nil {
		return nil, err
	}
	r, ok := resp.(api.SetConfigurationResponse)
	if !ok {
		return nil, fmt.Errorf("set_configuration: unexpected response %T", resp)
	}
	return r.Results, nil
}

// TestTimeout sends test_timeout_request. With withState false a
// conforming controller never answers, so expect ErrNoResponse.
func (c *Client) TestTimeout(ctx context.Context, withState bool, opts ...RequestOption) (api.Result, error) {
	resp, err := c.Request(ctx, api.TestTimeoutRequest{Reqid: reqidFrom(opts), WithState: withState})
	if err != nil {
		return api.Result{}, err
	}
	r, ok := resp.(api.TestTimeoutResponse)
	if !ok {
		return api.Result{}, fmt.Errorf("test_timeout: unexpected response %T", resp)
	}
	return r.Result, nil
}
