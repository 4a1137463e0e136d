// Package api holds zcc's typed view of the Zeek cluster-controller APIs:
// the records (Configuration, Instance, Node, Result, …), one Go type per
// event, and a Profile per dialect that converts them exactly to and from
// broker.Event values.
//
// The types are profile-neutral: a field that exists in only one dialect
// (Node.MetricsPort, NotifyAgentHello.ID, …) is simply ignored by the other.
// What differs on the wire — event names, topics, record field order, enum
// spellings — lives in the Profile, so callers never branch on the dialect.
//
// Profile.Encode and Profile.Decode convert messages to and from
// broker.Event. Decode is as strict as Zeek's receiver (exact argument
// count, declared types, record rules, enum spellings of the profile) and
// returns messages as values, e.g. m.(api.SetConfigurationRequest); sets
// come out in Broker's sorted order and empty collections as nil. Its
// errors (*UnknownEventError, *ArgCountError, *ArgError wrapping a
// *ValueError) name the event, argument and field path. The record helpers
// (ConfigurationValue, DecodeInstances, ResultValue, …) build and read
// Result.Data and single records, and Configuration.Equal and
// MessagesEqual compare with the wire's meaning.
package api

import (
	"fmt"
	"net/netip"

	"github.com/zcc-harness/zcc/broker"
)

// Opt is an optional record field (Zeek's &optional): unset fields travel
// as Broker none.
type Opt[T any] struct {
	V   T
	Set bool
}

// Some returns a set optional.
func Some[T any](v T) Opt[T] { return Opt[T]{V: v, Set: true} }

// Get returns the value and whether it is set.
func (o Opt[T]) Get() (T, bool) { return o.V, o.Set }

// String renders the value, or "nil" when unset.
func (o Opt[T]) String() string {
	if !o.Set {
		return "nil"
	}
	return fmt.Sprint(o.V)
}

// ClusterRole is Supervisor::ClusterRole, the role of a Zeek cluster node.
type ClusterRole uint8

// Cluster roles; on the wire "Supervisor::NONE", "Supervisor::MANAGER", ….
const (
	ClusterRoleNone ClusterRole = iota
	ClusterRoleLogger
	ClusterRoleManager
	ClusterRoleProxy
	ClusterRoleWorker
)

var clusterRoleNames = [...]string{"NONE", "LOGGER", "MANAGER", "PROXY", "WORKER"}

func (r ClusterRole) String() string {
	if int(r) < len(clusterRoleNames) {
		return clusterRoleNames[r]
	}
	return fmt.Sprintf("ClusterRole(%d)", r)
}

// ParseClusterRole accepts a role name in any case: "worker", "WORKER".
func ParseClusterRole(s string) (ClusterRole, error) {
	for i, n := range clusterRoleNames {
		if equalFold(n, s) {
			return ClusterRole(i), nil
		}
	}
	return 0, fmt.Errorf("unknown cluster role %q (want manager, logger, proxy, worker or none)", s)
}

// Role is the management role of a process (ClusterController::Types::Role
// or Management::Role).
type Role uint8

// Management roles. RoleNode exists only in the mgmt profile.
const (
	RoleNone Role = iota
	RoleAgent
	RoleController
	RoleNode
)

var roleNames = [...]string{"NONE", "AGENT", "CONTROLLER", "NODE"}

func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return fmt.Sprintf("Role(%d)", r)
}

// State is the run state of a cluster node. cc42 spells the names in title
// case ("ClusterController::Types::Running") and has no Pending; mgmt uses
// capitals ("Management::RUNNING").
type State uint8

// Node states. StateRunning is zcc's default for configured nodes, as in
// zeek-client.
const (
	StateRunning State = iota
	StateStopped
	StateFailed
	StateCrashed
	StateUnknown
	StatePending
)

var stateNames = [...]string{"RUNNING", "STOPPED", "FAILED", "CRASHED", "UNKNOWN", "PENDING"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", s)
}

// ParseState accepts a state name in any case: "running", "Running".
func ParseState(s string) (State, error) {
	for i, n := range stateNames {
		if equalFold(n, s) {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("unknown node state %q", s)
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'a' <= x && x <= 'z' {
			x -= 'a' - 'A'
		}
		if 'a' <= y && y <= 'z' {
			y -= 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Option is a name/value script option of a node.
type Option struct {
	Name  string
	Value string
}

// Instance is one host of the cluster, i.e. one agent. Host 0.0.0.0 and an
// unset ListenPort mean the agent connects to the controller; a set
// ListenPort means the controller connects to the agent.
type Instance struct {
	Name       string
	Host       netip.Addr
	ListenPort Opt[broker.Port]
}

// Node is one Zeek cluster node. Port is mandatory in cc42 and optional in
// mgmt; MetricsPort exists only in mgmt (Zeek ≥ 7).
type Node struct {
	Name        string
	Instance    string
	Port        Opt[broker.Port]
	Role        ClusterRole
	State       State
	Scripts     Opt[[]string]
	Options     Opt[[]Option]
	Interface   Opt[string]
	CPUAffinity Opt[int64]
	Env         map[string]string
	MetricsPort Opt[broker.Port]
}

// Configuration is a whole cluster configuration: instances and nodes.
// Both travel as Zeek sets, so their order carries no meaning; decoding
// yields them in Broker's sorted order.
type Configuration struct {
	ID        string
	Instances []Instance
	Nodes     []Node
}

// Result is the outcome of a request, or of one part of it.
//
// In cc42, Instance and Error are &default="" and always travel as strings.
// In mgmt they are &optional: an empty string travels as none, and none
// decodes to "". Node is optional in both, and the difference between unset
// and "" matters (a cc42 controller mishandles failures without a node).
// Data is Zeek's `any`: its shape depends on the response (see the
// profile's Data helpers).
type Result struct {
	Reqid    string
	Instance string
	Success  bool
	Data     broker.Value
	Error    string
	Node     Opt[string]
}

// String renders the result as Zeek's result_to_string does:
// "success (reqid R, instance I)" or "error (<error>) (…)".
func (r Result) String() string {
	s := "error"
	switch {
	case r.Success:
		s = "success"
	case r.Error != "":
		s = "error (" + r.Error + ")"
	}
	var details []string
	if r.Reqid != "" {
		details = append(details, "reqid "+r.Reqid)
	}
	if r.Instance != "" {
		details = append(details, "instance "+r.Instance)
	}
	if n, ok := r.Node.Get(); ok && n != "" {
		details = append(details, "node "+n)
	}
	if len(details) > 0 {
		s += " ("
		for i, d := range details {
			if i > 0 {
				s += ", "
			}
			s += d
		}
		s += ")"
	}
	return s
}

// NodeStatus reports one node's state (mgmt get_nodes; cc42 never sends it).
type NodeStatus struct {
	Node        string
	State       State
	MgmtRole    Role
	ClusterRole ClusterRole
	PID         Opt[int64]
	Port        Opt[broker.Port]
	MetricsPort Opt[broker.Port]
}

// NodeOutputs carries a failed node's stdout and stderr (mgmt deploy).
type NodeOutputs struct {
	Stdout string
	Stderr string
}
