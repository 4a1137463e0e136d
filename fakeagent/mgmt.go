package fakeagent

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// What a fake agent of the mgmt profile answers (spec
// management-websocket.md §2.5, §3; checked against the WebSocket fake
// agent that a real Zeek 8.1.2 controller accepted, vectors
// mgmt/zeek-8.1/fake-agent--*). The agent runs no Zeek processes: its
// nodes are the configuration's nodes on its instance, reported RUNNING,
// with made-up process ids that change when a node is (re)started.

// DefaultIDValues are the script identifiers every fake node knows, as
// the JSON text Zeek's to_json() gives for their default values. Options
// IDValues adds to and overrides them; "Cluster::node" is answered with
// the node's own name.
var DefaultIDValues = map[string]string{
	"bits_per_uid":                   "96",
	"Log::default_rotation_interval": `"0 secs"`,
}

// clusterNodeID is answered per node with the node's name.
const clusterNodeID = "Cluster::node"

// dispatchGetIDValue is the only node_dispatch action Zeek implements.
const dispatchGetIDValue = "get_id_value"

// ownNodes returns the configuration's nodes on this agent's instance,
// sorted by name.
func (a *Agent) ownNodes(cfg *api.Configuration) []api.Node {
	if cfg == nil {
		return nil
	}
	var out []api.Node
	for _, n := range cfg.Nodes {
		if n.Instance == a.name {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (a *Agent) nodeResult(reqid, node string) api.Result {
	return api.Result{Reqid: reqid, Instance: a.name, Success: true, Node: api.Some(node)}
}

// deployReply is a Zeek agent's deploy_response: one Result per node it
// runs, or a single Result naming only itself when it has no node or
// already runs this configuration (same id, no force).
func (a *Agent) deployReply(m api.AgentDeployRequest) api.Message {
	a.mu.Lock()
	running := a.config
	a.mu.Unlock()
	nodes := a.ownNodes(&m.Config)
	if len(nodes) == 0 || (running != nil && running.ID == m.Config.ID && !m.Force) {
		return api.AgentDeployResponse{Reqid: m.Reqid, Results: []api.Result{a.okResult(m.Reqid)}}
	}
	rs := make([]api.Result, len(nodes))
	for i, n := range nodes {
		rs[i] = a.nodeResult(m.Reqid, n.Name)
	}
	return api.AgentDeployResponse{Reqid: m.Reqid, Results: rs}
}

// getNodesReply reports the agent itself and its nodes.
func (a *Agent) getNodesReply(m api.AgentGetNodesRequest) (api.Message, string) {
	a.mu.Lock()
	cfg := a.config
	pids := a.pidsLocked()
	a.mu.Unlock()
	self := api.NodeStatus{Node: a.name, State: api.StateRunning, MgmtRole: api.RoleAgent, PID: api.Some(pids[a.name])}
	if a.opts.Connect == ConnectListen {
		self.Port = a.Instance().ListenPort
	}
	statuses := []api.NodeStatus{self}
	for _, n := range a.ownNodes(cfg) {
		statuses = append(statuses, api.NodeStatus{
			Node: n.Name, State: api.StateRunning, ClusterRole: n.Role,
			PID: api.Some(pids[n.Name]), Port: n.Port, MetricsPort: n.MetricsPort,
		})
	}
	data, err := a.profile.NodeStatusesValue(statuses)
	if err != nil {
		return nil, fmt.Sprintf("cannot express the node statuses: %v", err)
	}
	r := a.okResult(m.Reqid)
	r.Data = data
	return api.AgentGetNodesResponse{Reqid: m.Reqid, Result: r}, ""
}

// targetNodes returns the agent's nodes among requested (all of them when
// requested is empty), sorted.
func (a *Agent) targetNodes(requested []string) []string {
	a.mu.Lock()
	cfg := a.config
	a.mu.Unlock()
	var out []string
	for _, n := range a.ownNodes(cfg) {
		if len(requested) == 0 || slices.Contains(requested, n.Name) {
			out = append(out, n.Name)
		}
	}
	return out
}

// dispatchReply answers node_dispatch: for get_id_value one Result per
// targeted node, its data the identifier's value as JSON text; an unknown
// identifier fails with Zeek's "unknown id".
func (a *Agent) dispatchReply(m api.AgentNodeDispatchRequest) api.Message {
	resp := api.AgentNodeDispatchResponse{Reqid: m.Reqid, Results: []api.Result{}}
	if len(m.Action) != 2 || m.Action[0] != dispatchGetIDValue {
		r := a.okResult(m.Reqid)
		r.Success = false
		r.Error = fmt.Sprintf("unsupported node dispatch action %q", m.Action)
		resp.Results = append(resp.Results, r)
		return resp
	}
	id := m.Action[1]
	for _, node := range a.targetNodes(m.Nodes) {
		r := a.nodeResult(m.Reqid, node)
		if v, ok := a.idValue(id, node); ok {
			r.Data = broker.String(v)
		} else {
			r.Success = false
			r.Error = "unknown id"
		}
		resp.Results = append(resp.Results, r)
	}
	return resp
}

func (a *Agent) idValue(id, node string) (string, bool) {
	if v, ok := a.opts.IDValues[id]; ok {
		return v, true
	}
	if id == clusterNodeID {
		b, _ := json.Marshal(node)
		return string(b), true
	}
	v, ok := DefaultIDValues[id]
	return v, ok
}

// restartReply reports every targeted node restarted (an empty vector when
// the agent runs none of them).
func (a *Agent) restartReply(m api.AgentRestartRequest) api.Message {
	resp := api.AgentRestartResponse{Reqid: m.Reqid, Results: []api.Result{}}
	for _, node := range a.targetNodes(m.Nodes) {
		resp.Results = append(resp.Results, a.nodeResult(m.Reqid, node))
	}
	return resp
}

// perNode reports whether a reply carries one Result per node, so that a
// failure names one of them rather than all.
func perNode(m api.Message) bool {
	switch m.(type) {
	case api.AgentDeployResponse, api.AgentRestartResponse, api.AgentNodeDispatchResponse:
		return true
	}
	return false
}

// failNode fails one node's Result of a per-node reply (adding a Result
// for it if the reply has none): success=F, the rule's error text (none
// by default for a deploy, as Zeek sends it), and for a deploy the node's
// NodeOutputs as data, which Zeek attaches to failed nodes.
func (a *Agent) failNode(reply api.Message, node string, d decision) api.Message {
	fail := func(rs []api.Result, reqid string, errDefault string, outputs bool) []api.Result {
		rs = slices.Clone(rs)
		i := slices.IndexFunc(rs, func(r api.Result) bool { return r.Node.Set && r.Node.V == node })
		if i < 0 {
			rs = append(rs, a.nodeResult(reqid, node))
			i = len(rs) - 1
		}
		rs[i].Success = false
		rs[i].Error = d.errText
		if rs[i].Error == "" {
			rs[i].Error = errDefault
		}
		rs[i].Data = broker.None()
		if outputs {
			if v, err := a.profile.NodeOutputsValue(api.NodeOutputs{Stdout: d.stdout, Stderr: d.stderr}); err == nil {
				rs[i].Data = v
			}
		}
		return rs
	}
	switch r := reply.(type) {
	case api.AgentDeployResponse:
		// A deploy that had nothing to do for this agent still fails the
		// node: drop the agent-only Result.
		rs := slices.DeleteFunc(slices.Clone(r.Results), func(res api.Result) bool { return !res.Node.Set && res.Success })
		r.Results = fail(rs, r.Reqid, "", true)
		return r
	case api.AgentRestartResponse:
		r.Results = fail(r.Results, r.Reqid, "could not restart node "+node, false)
		return r
	case api.AgentNodeDispatchResponse:
		r.Results = fail(r.Results, r.Reqid, errTextOr(""), false)
		return r
	}
	return reply
}

// failAgent replaces a per-node reply's Results with the single failure
// Result an agent sends for its own problems (e.g. its request timing
// out): instance set, no node.
func (a *Agent) failAgent(reply api.Message, errText string) api.Message {
	one := func(reqid string) []api.Result {
		return []api.Result{{Reqid: reqid, Instance: a.name, Success: false, Error: errText}}
	}
	switch r := reply.(type) {
	case api.AgentDeployResponse:
		r.Results = one(r.Reqid)
		return r
	case api.AgentRestartResponse:
		r.Results = one(r.Reqid)
		return r
	case api.AgentNodeDispatchResponse:
		r.Results = one(r.Reqid)
		return r
	}
	return reply
}

// pidsLocked returns the made-up process ids of the agent and its nodes;
// a.mu must be held.
func (a *Agent) pidsLocked() map[string]int64 {
	if a.pids == nil {
		a.pids = map[string]int64{}
		h := fnv.New32a()
		_, _ = h.Write([]byte(a.name))
		// Agents of a fleet draw from separate ranges.
		a.nextPID = 1000 + int64(h.Sum32()%1000)*100
	}
	if _, ok := a.pids[a.name]; !ok {
		a.pids[a.name] = a.newPIDLocked()
	}
	return a.pids
}

func (a *Agent) newPIDLocked() int64 {
	a.nextPID++
	return a.nextPID
}

// startNodesLocked gives the named nodes new process ids, as starting them
// would; a.mu must be held.
func (a *Agent) startNodesLocked(nodes []string) {
	pids := a.pidsLocked()
	for _, n := range nodes {
		pids[n] = a.newPIDLocked()
	}
}

// adoptMgmtLocked applies what a Management request does to a real
// agent; a.mu must be held.
func (a *Agent) adoptMgmtLocked(msg api.Message) {
	switch m := msg.(type) {
	case api.AgentDeployRequest:
		if a.config != nil && a.config.ID == m.Config.ID && !m.Force {
			return // a real agent leaves a running configuration alone
		}
		c := m.Config
		a.config = &c
		var names []string
		for _, n := range a.ownNodes(&c) {
			names = append(names, n.Name)
		}
		a.startNodesLocked(names)
	case api.AgentRestartRequest:
		var names []string
		for _, n := range a.ownNodes(a.config) {
			if len(m.Nodes) == 0 || slices.Contains(m.Nodes, n.Name) {
				names = append(names, n.Name)
			}
		}
		a.startNodesLocked(names)
	}
}
