package api

import (
	"fmt"

	"github.com/zcc-harness/zcc/broker"
)

// Mgmt is the Management API of Zeek 5.2 and later (spec
// management-websocket.md §2), as real Zeek controllers and zeek-client 1.2+
// speak it over Broker's WebSocket JSON transport, with the record layouts
// of Zeek ≥ 7 (Node and NodeStatus end in metrics_port; the shorter Zeek 5/6
// layouts are accepted on input).
var Mgmt = register(&Profile{
	Name:             "mgmt",
	ControllerTopic:  "zeek/management/controller",
	AgentTopicPrefix: "zeek/management/agent",
	DefaultPort:      2149,
	APIVersion:       1,
	Description:      "Management::Controller::API / Management::Agent::API (Zeek 5.2+)",
	names: map[EventKind]string{
		KindGetInstancesRequest:        "Management::Controller::API::get_instances_request",
		KindGetInstancesResponse:       "Management::Controller::API::get_instances_response",
		KindStageConfigurationRequest:  "Management::Controller::API::stage_configuration_request",
		KindStageConfigurationResponse: "Management::Controller::API::stage_configuration_response",
		KindGetConfigurationRequest:    "Management::Controller::API::get_configuration_request",
		KindGetConfigurationResponse:   "Management::Controller::API::get_configuration_response",
		KindDeployRequest:              "Management::Controller::API::deploy_request",
		KindDeployResponse:             "Management::Controller::API::deploy_response",
		KindGetNodesRequest:            "Management::Controller::API::get_nodes_request",
		KindGetNodesResponse:           "Management::Controller::API::get_nodes_response",
		KindGetIDValueRequest:          "Management::Controller::API::get_id_value_request",
		KindGetIDValueResponse:         "Management::Controller::API::get_id_value_response",
		KindRestartRequest:             "Management::Controller::API::restart_request",
		KindRestartResponse:            "Management::Controller::API::restart_response",
		KindTestTimeoutRequest:         "Management::Controller::API::test_timeout_request",
		KindTestTimeoutResponse:        "Management::Controller::API::test_timeout_response",
		KindNotifyAgentsReady:          "Management::Controller::API::notify_agents_ready",

		KindAgentDeployRequest:        "Management::Agent::API::deploy_request",
		KindAgentDeployResponse:       "Management::Agent::API::deploy_response",
		KindAgentGetNodesRequest:      "Management::Agent::API::get_nodes_request",
		KindAgentGetNodesResponse:     "Management::Agent::API::get_nodes_response",
		KindAgentNodeDispatchRequest:  "Management::Agent::API::node_dispatch_request",
		KindAgentNodeDispatchResponse: "Management::Agent::API::node_dispatch_response",
		KindAgentWelcomeRequest:       "Management::Agent::API::agent_welcome_request",
		KindAgentWelcomeResponse:      "Management::Agent::API::agent_welcome_response",
		KindAgentStandbyRequest:       "Management::Agent::API::agent_standby_request",
		KindAgentStandbyResponse:      "Management::Agent::API::agent_standby_response",
		KindAgentRestartRequest:       "Management::Agent::API::restart_request",
		KindAgentRestartResponse:      "Management::Agent::API::restart_response",
		KindNotifyAgentHello:          "Management::Agent::API::notify_agent_hello",
		KindNotifyChange:              "Management::Agent::API::notify_change",
		KindNotifyError:               "Management::Agent::API::notify_error",
		KindNotifyLog:                 "Management::Agent::API::notify_log",
	},
	codec: mgmtCodec{},
})

// mgmtCodec is the wire layout of the Management API (spec §2.3–§2.5).
type mgmtCodec struct{}

var (
	params2ReqidResults = []string{"reqid", "results"}
	params2ReqidNodes   = []string{"reqid", "nodes"}
)

// sigResults is the common shape of every "(reqid, results: ResultVec)"
// response.
func sigResults[M Message](mk func(reqid string, rs []Result) M, get func(M) (string, []Result)) *signature {
	return newSignature(params2ReqidResults,
		func(e *encoder, m M) { reqid, rs := get(m); e.str(reqid); e.results(rs) },
		func(a *argReader) M { return mk(a.str(0), a.results(1)) })
}

// sigResult is the common shape of every "(reqid, result: Result)" response.
func sigResult[M Message](mk func(reqid string, r Result) M, get func(M) (string, Result)) *signature {
	return newSignature(params2ReqidResult,
		func(e *encoder, m M) { reqid, r := get(m); e.str(reqid); e.result(r) },
		func(a *argReader) M { return mk(a.str(0), a.result(1)) })
}

// sigReqid is the common shape of every "(reqid)" request.
func sigReqid[M Message](mk func(reqid string) M, get func(M) string) *signature {
	return newSignature(params1Reqid,
		func(e *encoder, m M) { e.str(get(m)) },
		func(a *argReader) M { return mk(a.str(0)) })
}

var mgmtSignatures = [numEventKinds]*signature{
	KindGetInstancesRequest:  sigGetInstancesRequest,
	KindGetInstancesResponse: sigGetInstancesResponse,
	KindStageConfigurationRequest: newSignature(params2ReqidConfig,
		func(e *encoder, m StageConfigurationRequest) { e.str(m.Reqid); e.config(m.Config) },
		func(a *argReader) StageConfigurationRequest {
			return StageConfigurationRequest{Reqid: a.str(0), Config: a.config(1)}
		}),
	KindStageConfigurationResponse: sigResults(
		func(r string, rs []Result) StageConfigurationResponse {
			return StageConfigurationResponse{Reqid: r, Results: rs}
		},
		func(m StageConfigurationResponse) (string, []Result) { return m.Reqid, m.Results }),
	KindGetConfigurationRequest: newSignature([]string{"reqid", "deployed"},
		func(e *encoder, m GetConfigurationRequest) { e.str(m.Reqid); e.boolean(m.Deployed) },
		func(a *argReader) GetConfigurationRequest {
			return GetConfigurationRequest{Reqid: a.str(0), Deployed: a.boolean(1)}
		}),
	KindGetConfigurationResponse: sigResult(
		func(r string, res Result) GetConfigurationResponse {
			return GetConfigurationResponse{Reqid: r, Result: res}
		},
		func(m GetConfigurationResponse) (string, Result) { return m.Reqid, m.Result }),
	KindDeployRequest: sigReqid(
		func(r string) DeployRequest { return DeployRequest{Reqid: r} },
		func(m DeployRequest) string { return m.Reqid }),
	KindDeployResponse: sigResults(
		func(r string, rs []Result) DeployResponse { return DeployResponse{Reqid: r, Results: rs} },
		func(m DeployResponse) (string, []Result) { return m.Reqid, m.Results }),
	KindGetNodesRequest: sigReqid(
		func(r string) GetNodesRequest { return GetNodesRequest{Reqid: r} },
		func(m GetNodesRequest) string { return m.Reqid }),
	KindGetNodesResponse: sigResults(
		func(r string, rs []Result) GetNodesResponse { return GetNodesResponse{Reqid: r, Results: rs} },
		func(m GetNodesResponse) (string, []Result) { return m.Reqid, m.Results }),
	KindGetIDValueRequest: newSignature([]string{"reqid", "id", "nodes"},
		func(e *encoder, m GetIDValueRequest) { e.str(m.Reqid); e.str(m.ID); e.stringSet(m.Nodes) },
		func(a *argReader) GetIDValueRequest {
			return GetIDValueRequest{Reqid: a.str(0), ID: a.str(1), Nodes: a.stringSet(2)}
		}),
	KindGetIDValueResponse: sigResults(
		func(r string, rs []Result) GetIDValueResponse { return GetIDValueResponse{Reqid: r, Results: rs} },
		func(m GetIDValueResponse) (string, []Result) { return m.Reqid, m.Results }),
	KindRestartRequest: newSignature(params2ReqidNodes,
		func(e *encoder, m RestartRequest) { e.str(m.Reqid); e.stringSet(m.Nodes) },
		func(a *argReader) RestartRequest { return RestartRequest{Reqid: a.str(0), Nodes: a.stringSet(1)} }),
	KindRestartResponse: sigResults(
		func(r string, rs []Result) RestartResponse { return RestartResponse{Reqid: r, Results: rs} },
		func(m RestartResponse) (string, []Result) { return m.Reqid, m.Results }),
	KindTestTimeoutRequest:  sigTestTimeoutRequest,
	KindTestTimeoutResponse: sigTestTimeoutResponse,
	KindNotifyAgentsReady:   sigNotifyAgentsReady,

	KindAgentDeployRequest: newSignature([]string{"reqid", "config", "force"},
		func(e *encoder, m AgentDeployRequest) { e.str(m.Reqid); e.config(m.Config); e.boolean(m.Force) },
		func(a *argReader) AgentDeployRequest {
			return AgentDeployRequest{Reqid: a.str(0), Config: a.config(1), Force: a.boolean(2)}
		}),
	KindAgentDeployResponse: sigResults(
		func(r string, rs []Result) AgentDeployResponse { return AgentDeployResponse{Reqid: r, Results: rs} },
		func(m AgentDeployResponse) (string, []Result) { return m.Reqid, m.Results }),
	KindAgentGetNodesRequest: sigReqid(
		func(r string) AgentGetNodesRequest { return AgentGetNodesRequest{Reqid: r} },
		func(m AgentGetNodesRequest) string { return m.Reqid }),
	KindAgentGetNodesResponse: sigResult(
		func(r string, res Result) AgentGetNodesResponse { return AgentGetNodesResponse{Reqid: r, Result: res} },
		func(m AgentGetNodesResponse) (string, Result) { return m.Reqid, m.Result }),
	KindAgentNodeDispatchRequest: newSignature([]string{"reqid", "action", "nodes"},
		func(e *encoder, m AgentNodeDispatchRequest) {
			e.str(m.Reqid)
			e.add(broker.Strings(m.Action...))
			e.stringSet(m.Nodes)
		},
		func(a *argReader) AgentNodeDispatchRequest {
			return AgentNodeDispatchRequest{Reqid: a.str(0), Action: a.strings(1), Nodes: a.stringSet(2)}
		}),
	KindAgentNodeDispatchResponse: sigResults(
		func(r string, rs []Result) AgentNodeDispatchResponse {
			return AgentNodeDispatchResponse{Reqid: r, Results: rs}
		},
		func(m AgentNodeDispatchResponse) (string, []Result) { return m.Reqid, m.Results }),
	KindAgentWelcomeRequest:  sigAgentWelcomeRequest,
	KindAgentWelcomeResponse: sigAgentWelcomeResponse,
	KindAgentStandbyRequest:  sigAgentStandbyRequest,
	KindAgentStandbyResponse: sigAgentStandbyResponse,
	KindAgentRestartRequest: newSignature(params2ReqidNodes,
		func(e *encoder, m AgentRestartRequest) { e.str(m.Reqid); e.stringSet(m.Nodes) },
		func(a *argReader) AgentRestartRequest {
			return AgentRestartRequest{Reqid: a.str(0), Nodes: a.stringSet(1)}
		}),
	KindAgentRestartResponse: sigResults(
		func(r string, rs []Result) AgentRestartResponse { return AgentRestartResponse{Reqid: r, Results: rs} },
		func(m AgentRestartResponse) (string, []Result) { return m.Reqid, m.Results }),
	// The Management hello carries the agent's Broker endpoint id and
	// whether it connected to the controller, instead of cc42's address.
	KindNotifyAgentHello: newSignature([]string{"instance", "id", "connecting", "api_version"},
		func(e *encoder, m NotifyAgentHello) {
			e.str(m.Instance)
			e.str(m.ID)
			e.boolean(m.Connecting)
			e.count(m.APIVersion)
		},
		func(a *argReader) NotifyAgentHello {
			return NotifyAgentHello{Instance: a.str(0), ID: a.str(1), Connecting: a.boolean(2), APIVersion: a.count(3)}
		}),
	KindNotifyChange: sigNotifyChange,
	KindNotifyError:  sigNotifyError,
	KindNotifyLog:    sigNotifyLog,
}

func (mgmtCodec) signature(k EventKind) *signature {
	if k >= numEventKinds {
		return nil
	}
	return mgmtSignatures[k]
}

// mgmt Node (§2.3): the port became optional and moved behind role and
// state; metrics_port (Zeek ≥ 7) is last. Zeek 5 and 6 send 10 fields.
var mgmtNodeFields = []string{"name", "instance", "role", "state", "p",
	"scripts", "options", "interface", "cpu_affinity", "env", "metrics_port"}

const mgmtNodeFieldsBefore7 = 10

func (c mgmtCodec) nodeValue(n Node) (broker.Value, error) {
	role, err := clusterRoleValue(n.Role)
	if err != nil {
		return broker.Value{}, fmt.Errorf("Node %q: %w", n.Name, err)
	}
	state, err := c.stateValue(n.State)
	if err != nil {
		return broker.Value{}, fmt.Errorf("Node %q: %w", n.Name, err)
	}
	return broker.Vector(
		broker.String(n.Name),
		broker.String(n.Instance),
		role,
		state,
		optValue(n.Port, broker.FromPort),
		optValue(n.Scripts, func(ss []string) broker.Value { return broker.Strings(ss...) }),
		optValue(n.Options, optionsValue),
		optValue(n.Interface, broker.String),
		optValue(n.CPUAffinity, broker.Integer),
		broker.StringTable(n.Env),
		optValue(n.MetricsPort, broker.FromPort),
	), nil
}

func (c mgmtCodec) decodeNode(v broker.Value) (Node, error) {
	r, err := openRecordAtLeast(v, "Node", mgmtNodeFields, mgmtNodeFieldsBefore7)
	if err != nil {
		return Node{}, err
	}
	n := Node{
		Name:        r.str(0),
		Instance:    r.str(1),
		Role:        r.clusterRole(2),
		State:       r.state(3, c),
		Port:        r.optPort(4),
		Scripts:     r.optStrings(5),
		Options:     r.optOptions(6),
		Interface:   r.optStr(7),
		CPUAffinity: r.optInt(8),
		Env:         r.stringTable(9),
		MetricsPort: r.optPort(10),
	}
	if r.err != nil {
		return Node{}, r.err
	}
	return n, nil
}

// mgmt Result (§2.3): success moved to second place and everything after
// it is &optional, so an empty instance or error travels as none.
var mgmtResultFields = []string{"reqid", "success", "instance", "data", "error", "node"}

func optString(s string) broker.Value {
	if s == "" {
		return broker.None()
	}
	return broker.String(s)
}

func (mgmtCodec) resultValue(r Result) broker.Value {
	return broker.Vector(
		broker.String(r.Reqid),
		broker.Bool(r.Success),
		optString(r.Instance),
		r.Data,
		optString(r.Error),
		optValue(r.Node, broker.String),
	)
}

func (mgmtCodec) decodeResult(v broker.Value) (Result, error) {
	r, err := openRecord(v, "Result", mgmtResultFields)
	if err != nil {
		return Result{}, err
	}
	res := Result{
		Reqid:    r.str(0),
		Success:  r.defBool(1, true),
		Instance: r.defStr(2, ""),
		Data:     r.any(3),
		Error:    r.defStr(4, ""),
		Node:     r.optStr(5),
	}
	if r.err != nil {
		return Result{}, r.err
	}
	return res, nil
}

// mgmt spells State in capitals and has PENDING (§2.3).
const mgmtPrefix = "Management::"

var mgmtStateNames = [...]string{
	StateRunning: mgmtPrefix + "RUNNING",
	StateStopped: mgmtPrefix + "STOPPED",
	StateFailed:  mgmtPrefix + "FAILED",
	StateCrashed: mgmtPrefix + "CRASHED",
	StateUnknown: mgmtPrefix + "UNKNOWN",
	StatePending: mgmtPrefix + "PENDING",
}

func (mgmtCodec) stateValue(s State) (broker.Value, error) {
	if int(s) >= len(mgmtStateNames) {
		return broker.Value{}, fmt.Errorf("state %s does not exist in profile mgmt", s)
	}
	return broker.Enum(mgmtStateNames[s]), nil
}

func (mgmtCodec) decodeState(v broker.Value) (State, error) {
	name, ok := v.AsEnum()
	if !ok {
		return 0, wantKind(broker.KindEnum, v)
	}
	for s, n := range mgmtStateNames {
		if n == name {
			return State(s), nil
		}
	}
	return 0, valueErrorf("unknown Management::State %q (mgmt wants Management::PENDING, RUNNING, STOPPED, FAILED, CRASHED or UNKNOWN)", name)
}

// roleValue returns a Management::Role enum.
func roleValue(r Role) (broker.Value, error) {
	if int(r) >= len(roleNames) {
		return broker.Value{}, fmt.Errorf("management role %d does not exist", r)
	}
	return broker.Enum(mgmtPrefix + roleNames[r]), nil
}

func decodeRole(v broker.Value) (Role, error) {
	name, ok := v.AsEnum()
	if !ok {
		return 0, wantKind(broker.KindEnum, v)
	}
	for r, n := range roleNames {
		if mgmtPrefix+n == name {
			return Role(r), nil
		}
	}
	return 0, valueErrorf("unknown Management::Role %q (want Management::NONE, AGENT, CONTROLLER or NODE)", name)
}

// NodeStatus (§2.3): node, state, mgmt_role &default=NONE, cluster_role
// &default=NONE, pid?, p?, metrics_port? (Zeek ≥ 7; 6 fields accepted).
var nodeStatusFields = []string{"node", "state", "mgmt_role", "cluster_role", "pid", "p", "metrics_port"}

const nodeStatusFieldsBefore7 = 6

func nodeStatusValue(ns NodeStatus) (broker.Value, error) {
	state, err := mgmtCodec{}.stateValue(ns.State)
	if err != nil {
		return broker.Value{}, fmt.Errorf("NodeStatus %q: %w", ns.Node, err)
	}
	role, err := roleValue(ns.MgmtRole)
	if err != nil {
		return broker.Value{}, fmt.Errorf("NodeStatus %q: %w", ns.Node, err)
	}
	crole, err := clusterRoleValue(ns.ClusterRole)
	if err != nil {
		return broker.Value{}, fmt.Errorf("NodeStatus %q: %w", ns.Node, err)
	}
	return broker.Vector(
		broker.String(ns.Node),
		state,
		role,
		crole,
		optValue(ns.PID, broker.Integer),
		optValue(ns.Port, broker.FromPort),
		optValue(ns.MetricsPort, broker.FromPort),
	), nil
}

func decodeNodeStatus(v broker.Value) (NodeStatus, error) {
	r, err := openRecordAtLeast(v, "NodeStatus", nodeStatusFields, nodeStatusFieldsBefore7)
	if err != nil {
		return NodeStatus{}, err
	}
	ns := NodeStatus{
		Node:        r.str(0),
		State:       r.state(1, mgmtCodec{}),
		MgmtRole:    r.role(2),
		ClusterRole: r.defClusterRole(3),
		PID:         r.optInt(4),
		Port:        r.optPort(5),
		MetricsPort: r.optPort(6),
	}
	if r.err != nil {
		return NodeStatus{}, r.err
	}
	return ns, nil
}

var nodeOutputsFields = []string{"stdout", "stderr"}

func decodeNodeOutputs(v broker.Value) (NodeOutputs, error) {
	r, err := openRecord(v, "NodeOutputs", nodeOutputsFields)
	if err != nil {
		return NodeOutputs{}, err
	}
	o := NodeOutputs{Stdout: r.str(0), Stderr: r.str(1)}
	if r.err != nil {
		return NodeOutputs{}, r.err
	}
	return o, nil
}

// --- record helpers that exist only in the Management API -------------------

func (p *Profile) needMgmt(record string) error {
	if _, ok := p.codec.(mgmtCodec); !ok {
		return fmt.Errorf("profile %s has no %s record", p.Name, record)
	}
	return nil
}

// NodeStatusesValue returns statuses as a NodeStatusVec, the Result.Data of
// an agent's get_nodes_response (mgmt only).
func (p *Profile) NodeStatusesValue(statuses []NodeStatus) (broker.Value, error) {
	if err := p.needMgmt("NodeStatus"); err != nil {
		return broker.Value{}, err
	}
	elems := make([]broker.Value, len(statuses))
	for i, ns := range statuses {
		v, err := nodeStatusValue(ns)
		if err != nil {
			return broker.Value{}, err
		}
		elems[i] = v
	}
	return broker.Vector(elems...), nil
}

// DecodeNodeStatuses reads a NodeStatusVec (mgmt only). An empty vector
// gives nil.
func (p *Profile) DecodeNodeStatuses(v broker.Value) ([]NodeStatus, error) {
	if err := p.needMgmt("NodeStatus"); err != nil {
		return nil, err
	}
	return decodeRecordVector(v, "NodeStatus", decodeNodeStatus)
}

// NodeOutputsValue returns o as a NodeOutputs record, the Result.Data of a
// failed node in a deploy_response (mgmt only).
func (p *Profile) NodeOutputsValue(o NodeOutputs) (broker.Value, error) {
	if err := p.needMgmt("NodeOutputs"); err != nil {
		return broker.Value{}, err
	}
	return broker.Vector(broker.String(o.Stdout), broker.String(o.Stderr)), nil
}

// DecodeNodeOutputs reads a NodeOutputs record (mgmt only).
func (p *Profile) DecodeNodeOutputs(v broker.Value) (NodeOutputs, error) {
	if err := p.needMgmt("NodeOutputs"); err != nil {
		return NodeOutputs{}, err
	}
	return decodeNodeOutputs(v)
}
