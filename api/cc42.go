package api

import (
	"fmt"

	"github.com/zcc-harness/zcc/broker"
)

// cc42Codec is the wire layout of the ClusterController API v1 as Zeek 4.2
// ships it (spec clustercontroller-v1.md, profile P1, §3 and §4).
type cc42Codec struct{}

var cc42Signatures = [numEventKinds]*signature{
	KindGetInstancesRequest:  sigGetInstancesRequest,
	KindGetInstancesResponse: sigGetInstancesResponse,
	KindSetConfigurationRequest: newSignature(params2ReqidConfig,
		func(e *encoder, m SetConfigurationRequest) { e.str(m.Reqid); e.config(m.Config) },
		func(a *argReader) SetConfigurationRequest {
			return SetConfigurationRequest{Reqid: a.str(0), Config: a.config(1)}
		}),
	KindSetConfigurationResponse: newSignature(params2ReqidResult,
		func(e *encoder, m SetConfigurationResponse) { e.str(m.Reqid); e.results(m.Results) },
		func(a *argReader) SetConfigurationResponse {
			return SetConfigurationResponse{Reqid: a.str(0), Results: a.results(1)}
		}),
	KindTestTimeoutRequest:  sigTestTimeoutRequest,
	KindTestTimeoutResponse: sigTestTimeoutResponse,
	KindNotifyAgentsReady:   sigNotifyAgentsReady,

	KindAgentSetConfigurationRequest: newSignature(params2ReqidConfig,
		func(e *encoder, m AgentSetConfigurationRequest) { e.str(m.Reqid); e.config(m.Config) },
		func(a *argReader) AgentSetConfigurationRequest {
			return AgentSetConfigurationRequest{Reqid: a.str(0), Config: a.config(1)}
		}),
	KindAgentSetConfigurationResponse: newSignature(params2ReqidResult,
		func(e *encoder, m AgentSetConfigurationResponse) { e.str(m.Reqid); e.result(m.Result) },
		func(a *argReader) AgentSetConfigurationResponse {
			return AgentSetConfigurationResponse{Reqid: a.str(0), Result: a.result(1)}
		}),
	KindAgentWelcomeRequest:  sigAgentWelcomeRequest,
	KindAgentWelcomeResponse: sigAgentWelcomeResponse,
	KindAgentStandbyRequest:  sigAgentStandbyRequest,
	KindAgentStandbyResponse: sigAgentStandbyResponse,
	// cc42's hello carries the agent's address; mgmt's carries its
	// endpoint id and whether it connected.
	KindNotifyAgentHello: newSignature([]string{"instance", "host", "api_version"},
		func(e *encoder, m NotifyAgentHello) { e.str(m.Instance); e.addr(m.Host); e.count(m.APIVersion) },
		func(a *argReader) NotifyAgentHello {
			return NotifyAgentHello{Instance: a.str(0), Host: a.addr(1), APIVersion: a.count(2)}
		}),
	KindNotifyChange: sigNotifyChange,
	KindNotifyError:  sigNotifyError,
	KindNotifyLog:    sigNotifyLog,
}

func (cc42Codec) signature(k EventKind) *signature {
	if k >= numEventKinds {
		return nil
	}
	return cc42Signatures[k]
}

// cc42 Node (§4.4, P0/P1 order): the port is mandatory and comes third.
var cc42NodeFields = []string{"name", "instance", "p", "role", "state",
	"scripts", "options", "interface", "cpu_affinity", "env"}

func (c cc42Codec) nodeValue(n Node) (broker.Value, error) {
	if !n.Port.Set {
		return broker.Value{}, fmt.Errorf("Node %q: port is unset, but mandatory in cc42", n.Name)
	}
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
		broker.FromPort(n.Port.V),
		role,
		state,
		optValue(n.Scripts, func(ss []string) broker.Value { return broker.Strings(ss...) }),
		optValue(n.Options, optionsValue),
		optValue(n.Interface, broker.String),
		optValue(n.CPUAffinity, broker.Integer),
		broker.StringTable(n.Env),
	), nil
}

func (c cc42Codec) decodeNode(v broker.Value) (Node, error) {
	r, err := openRecord(v, "Node", cc42NodeFields)
	if err != nil {
		return Node{}, err
	}
	n := Node{
		Name:        r.str(0),
		Instance:    r.str(1),
		Port:        Some(r.port(2)),
		Role:        r.clusterRole(3),
		State:       r.state(4, c),
		Scripts:     r.optStrings(5),
		Options:     r.optOptions(6),
		Interface:   r.optStr(7),
		CPUAffinity: r.optInt(8),
		Env:         r.stringTable(9),
	}
	if r.err != nil {
		return Node{}, r.err
	}
	return n, nil
}

// cc42 Result (§4.6, P1): instance and error are &default="" and success
// &default=T, so they always travel with a value.
var cc42ResultFields = []string{"reqid", "instance", "success", "data", "error", "node"}

func (cc42Codec) resultValue(r Result) broker.Value {
	return broker.Vector(
		broker.String(r.Reqid),
		broker.String(r.Instance),
		broker.Bool(r.Success),
		r.Data,
		broker.String(r.Error),
		optValue(r.Node, broker.String),
	)
}

func (cc42Codec) decodeResult(v broker.Value) (Result, error) {
	r, err := openRecord(v, "Result", cc42ResultFields)
	if err != nil {
		return Result{}, err
	}
	res := Result{
		Reqid:    r.str(0),
		Instance: r.defStr(1, ""),
		Success:  r.defBool(2, true),
		Data:     r.any(3),
		Error:    r.defStr(4, ""),
		Node:     r.optStr(5),
	}
	if r.err != nil {
		return Result{}, r.err
	}
	return res, nil
}

// cc42 spells State in title case and has no Pending (§4.1).
const cc42StatePrefix = "ClusterController::Types::"

var cc42StateNames = [...]string{
	StateRunning: cc42StatePrefix + "Running",
	StateStopped: cc42StatePrefix + "Stopped",
	StateFailed:  cc42StatePrefix + "Failed",
	StateCrashed: cc42StatePrefix + "Crashed",
	StateUnknown: cc42StatePrefix + "Unknown",
}

func (cc42Codec) stateValue(s State) (broker.Value, error) {
	if int(s) >= len(cc42StateNames) {
		return broker.Value{}, fmt.Errorf("state %s does not exist in profile cc42", s)
	}
	return broker.Enum(cc42StateNames[s]), nil
}

func (cc42Codec) decodeState(v broker.Value) (State, error) {
	name, ok := v.AsEnum()
	if !ok {
		return 0, wantKind(broker.KindEnum, v)
	}
	for s, n := range cc42StateNames {
		if n == name {
			return State(s), nil
		}
	}
	return 0, valueErrorf("unknown ClusterController::Types::State %q (cc42 wants ClusterController::Types::Running, Stopped, Failed, Crashed or Unknown)", name)
}
