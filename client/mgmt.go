package client

import (
	"context"
	"fmt"

	"github.com/zcc-harness/zcc/api"
)

// Typed requests of the Management API (profile api.Mgmt). Like
// GetInstances, they return the Results as the controller sent them with a
// nil error, failed Results included: the request itself worked.

// results sends req and returns the Results of its response.
func results[R api.Message](c *Client, ctx context.Context, req api.Message, get func(R) []api.Result) ([]api.Result, error) {
	resp, err := c.Request(ctx, req)
	if err != nil {
		return nil, err
	}
	r, ok := resp.(R)
	if !ok {
		return nil, fmt.Errorf("%s: unexpected response %T", c.profile.ShortName(req.Kind()), resp)
	}
	return get(r), nil
}

func result[R api.Message](c *Client, ctx context.Context, req api.Message, get func(R) api.Result) (api.Result, error) {
	resp, err := c.Request(ctx, req)
	if err != nil {
		return api.Result{}, err
	}
	r, ok := resp.(R)
	if !ok {
		return api.Result{}, fmt.Errorf("%s: unexpected response %T", c.profile.ShortName(req.Kind()), resp)
	}
	return get(r), nil
}

// StageConfiguration sends stage_configuration_request with cfg: one
// success Result whose Data is the configuration id, or one failed Result
// per validation problem.
func (c *Client) StageConfiguration(ctx context.Context, cfg api.Configuration, opts ...RequestOption) ([]api.Result, error) {
	return results(c, ctx, api.StageConfigurationRequest{Reqid: reqidFrom(opts), Config: cfg},
		func(r api.StageConfigurationResponse) []api.Result { return r.Results })
}

// GetConfiguration sends get_configuration_request for the deployed (or
// staged) configuration; a success Result's Data is the Configuration
// (Profile().DecodeConfiguration reads it).
func (c *Client) GetConfiguration(ctx context.Context, deployed bool, opts ...RequestOption) (api.Result, error) {
	return result(c, ctx, api.GetConfigurationRequest{Reqid: reqidFrom(opts), Deployed: deployed},
		func(r api.GetConfigurationResponse) api.Result { return r.Result })
}

// Deploy sends deploy_request: the agents' per-node Results, then the
// controller's own Result with the configuration id as Data.
func (c *Client) Deploy(ctx context.Context, opts ...RequestOption) ([]api.Result, error) {
	return results(c, ctx, api.DeployRequest{Reqid: reqidFrom(opts)},
		func(r api.DeployResponse) []api.Result { return r.Results })
}

// GetNodes sends get_nodes_request: one Result per agent, Data its
// NodeStatus vector (Profile().DecodeNodeStatuses reads it).
func (c *Client) GetNodes(ctx context.Context, opts ...RequestOption) ([]api.Result, error) {
	return results(c, ctx, api.GetNodesRequest{Reqid: reqidFrom(opts)},
		func(r api.GetNodesResponse) []api.Result { return r.Results })
}

// GetIDValue sends get_id_value_request for script identifier id on nodes
// (all nodes when empty): one Result per node, Data the value as JSON text.
func (c *Client) GetIDValue(ctx context.Context, id string, nodes []string, opts ...RequestOption) ([]api.Result, error) {
	return results(c, ctx, api.GetIDValueRequest{Reqid: reqidFrom(opts), ID: id, Nodes: nodes},
		func(r api.GetIDValueResponse) []api.Result { return r.Results })
}

// Restart sends restart_request for nodes (all nodes when empty): one
// Result per node.
func (c *Client) Restart(ctx context.Context, nodes []string, opts ...RequestOption) ([]api.Result, error) {
	return results(c, ctx, api.RestartRequest{Reqid: reqidFrom(opts), Nodes: nodes},
		func(r api.RestartResponse) []api.Result { return r.Results })
}
