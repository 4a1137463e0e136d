package fakeagent

import (
	"net/netip"
	"slices"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// agentRequestKinds are the events a controller sends to an agent, in
// every dialect; a profile supports a subset of them.
var agentRequestKinds = []api.EventKind{
	api.KindAgentWelcomeRequest,
	api.KindAgentStandbyRequest,
	api.KindAgentSetConfigurationRequest,
	api.KindAgentDeployRequest,
	api.KindAgentGetNodesRequest,
	api.KindAgentNodeDispatchRequest,
	api.KindAgentRestartRequest,
}

// isConfigKind reports whether k pushes a configuration to the agent (what
// Status.ConfigsReceived counts).
func isConfigKind(k api.EventKind) bool {
	return k == api.KindAgentSetConfigurationRequest || k == api.KindAgentDeployRequest
}

// RequestNames lists the short names of the requests an agent of profile p
// receives: the keys a Behaviour may use.
func RequestNames(p *api.Profile) []string {
	var out []string
	for _, k := range agentRequestKinds {
		if p.Supports(k) {
			out = append(out, p.ShortName(k))
		}
	}
	slices.Sort(out)
	return out
}

func requestKindByName(p *api.Profile, short string) (api.EventKind, bool) {
	for _, k := range agentRequestKinds {
		if p.Supports(k) && p.ShortName(k) == short {
			return k, true
		}
	}
	return api.KindInvalid, false
}

func isAgentRequest(k api.EventKind) bool { return slices.Contains(agentRequestKinds, k) }

// hello builds the agent's check-in. The message carries every field any
// dialect needs; the profile's codec writes the ones its dialect has.
func (a *Agent) hello(apiVersion uint64) api.NotifyAgentHello {
	return api.NotifyAgentHello{
		Instance:   a.name,
		Host:       a.host,
		ID:         a.endpointID(),
		Connecting: a.opts.Connect != ConnectListen,
		APIVersion: apiVersion,
	}
}

// okResult is the Result a real agent puts in its answers.
func (a *Agent) okResult(reqid string) api.Result {
	return api.Result{Reqid: reqid, Instance: a.name, Success: true}
}

// normalReply returns what a real agent answers to m, or nil when it
// answers nothing (with the reason).
func (a *Agent) normalReply(m api.Message) (api.Message, string) {
	switch m := m.(type) {
	case api.AgentWelcomeRequest:
		return api.AgentWelcomeResponse{Reqid: m.Reqid, Result: a.okResult(m.Reqid)}, ""
	case api.AgentStandbyRequest:
		return api.AgentStandbyResponse{Reqid: m.Reqid, Result: a.okResult(m.Reqid)}, ""
	case api.AgentSetConfigurationRequest:
		if m.Reqid == "" {
			// ddbd83fee4: the controller's "drop" configuration carries no
			// reqid, and the agent does not answer it (spec §7.3 step 6).
			return nil, "a real agent does not answer a configuration with an empty reqid"
		}
		return api.AgentSetConfigurationResponse{Reqid: m.Reqid, Result: a.okResult(m.Reqid)}, ""
	case api.AgentDeployRequest:
		return a.deployReply(m), ""
	case api.AgentGetNodesRequest:
		return a.getNodesReply(m)
	case api.AgentNodeDispatchRequest:
		return a.dispatchReply(m), ""
	case api.AgentRestartRequest:
		return a.restartReply(m), ""
	}
	return nil, "no answer defined for this request"
}

// defaultFailNode picks the node a failure names when the rule gives none:
// the first of this agent's nodes in the configuration (for restart and
// node_dispatch: the first it was asked about), else its name.
func (a *Agent) defaultFailNode(m api.Message) string {
	var nodes []api.Node
	switch m := m.(type) {
	case api.AgentSetConfigurationRequest:
		nodes = m.Config.Nodes
	case api.AgentDeployRequest:
		nodes = m.Config.Nodes
	case api.AgentRestartRequest:
		if t := a.targetNodes(m.Nodes); len(t) > 0 {
			return t[0]
		}
	case api.AgentNodeDispatchRequest:
		if t := a.targetNodes(m.Nodes); len(t) > 0 {
			return t[0]
		}
	}
	if nodes == nil {
		a.mu.Lock()
		if a.config != nil {
			nodes = a.config.Nodes
		}
		a.mu.Unlock()
	}
	best := ""
	for _, n := range nodes {
		if n.Instance == a.name && (best == "" || n.Name < best) {
			best = n.Name
		}
	}
	if best == "" {
		return a.name
	}
	return best
}

// mapResults applies f to every Result a reply carries and returns the
// changed reply. Replies without Results come back unchanged.
func mapResults(m api.Message, f func(*api.Result)) api.Message {
	each := func(rs []api.Result) []api.Result {
		rs = slices.Clone(rs)
		for i := range rs {
			f(&rs[i])
		}
		return rs
	}
	switch r := m.(type) {
	case api.AgentWelcomeResponse:
		f(&r.Result)
		return r
	case api.AgentStandbyResponse:
		f(&r.Result)
		return r
	case api.AgentSetConfigurationResponse:
		f(&r.Result)
		return r
	case api.AgentGetNodesResponse:
		f(&r.Result)
		return r
	case api.AgentDeployResponse:
		r.Results = each(r.Results)
		return r
	case api.AgentNodeDispatchResponse:
		r.Results = each(r.Results)
		return r
	case api.AgentRestartResponse:
		r.Results = each(r.Results)
		return r
	}
	return m
}

// withReqid returns the reply with reqid as its first argument and in its
// Results.
func withReqid(m api.Message, reqid string) api.Message {
	switch r := m.(type) {
	case api.AgentWelcomeResponse:
		r.Reqid = reqid
		m = r
	case api.AgentStandbyResponse:
		r.Reqid = reqid
		m = r
	case api.AgentSetConfigurationResponse:
		r.Reqid = reqid
		m = r
	case api.AgentGetNodesResponse:
		r.Reqid = reqid
		m = r
	case api.AgentDeployResponse:
		r.Reqid = reqid
		m = r
	case api.AgentNodeDispatchResponse:
		r.Reqid = reqid
		m = r
	case api.AgentRestartResponse:
		r.Reqid = reqid
		m = r
	}
	return mapResults(m, func(res *api.Result) { res.Reqid = reqid })
}

// withFailure marks the reply failed (a failure carries no data). With
// withNode, node is named in every Result; otherwise the Results carry no
// node.
func withFailure(m api.Message, node, errText string, withNode bool) api.Message {
	return mapResults(m, func(res *api.Result) {
		res.Success = false
		res.Error = errText
		res.Data = broker.None()
		if withNode {
			res.Node = api.Some(node)
		} else {
			res.Node = api.Opt[string]{}
		}
	})
}

// withInstance returns the reply claiming to come from instance.
func withInstance(m api.Message, instance string) api.Message {
	return mapResults(m, func(res *api.Result) { res.Instance = instance })
}

var defaultHost = netip.AddrFrom4([4]byte{127, 0, 0, 1})
