package api

import (
	"net/netip"
	"reflect"
)

// EventKind identifies an event independently of the profile that names
// it. The profile maps each kind it supports to a fully qualified name
// (e.g. KindGetInstancesRequest ↔ "ClusterController::API::get_instances_request").
type EventKind uint8

// Event kinds. Controller-API events travel between client and controller,
// Agent-API events (prefix Agent) between controller and agent.
const (
	KindInvalid EventKind = iota

	// Controller API, both profiles.
	KindGetInstancesRequest
	KindGetInstancesResponse
	KindTestTimeoutRequest
	KindTestTimeoutResponse
	KindNotifyAgentsReady

	// Controller API, cc42 only.
	KindSetConfigurationRequest
	KindSetConfigurationResponse

	// Controller API, mgmt only.
	KindStageConfigurationRequest
	KindStageConfigurationResponse
	KindGetConfigurationRequest
	KindGetConfigurationResponse
	KindDeployRequest
	KindDeployResponse
	KindGetNodesRequest
	KindGetNodesResponse
	KindGetIDValueRequest
	KindGetIDValueResponse
	KindRestartRequest
	KindRestartResponse

	// Agent API, both profiles.
	KindAgentWelcomeRequest
	KindAgentWelcomeResponse
	KindAgentStandbyRequest
	KindAgentStandbyResponse
	KindNotifyAgentHello
	KindNotifyChange
	KindNotifyError
	KindNotifyLog

	// Agent API, cc42 only.
	KindAgentSetConfigurationRequest
	KindAgentSetConfigurationResponse

	// Agent API, mgmt only.
	KindAgentDeployRequest
	KindAgentDeployResponse
	KindAgentGetNodesRequest
	KindAgentGetNodesResponse
	KindAgentNodeDispatchRequest
	KindAgentNodeDispatchResponse
	KindAgentRestartRequest
	KindAgentRestartResponse

	numEventKinds
)

// Message is a typed event of either API.
type Message interface {
	Kind() EventKind
}

// ReqidOf returns the reqid a message carries as its first argument, and
// false for events without one (hello, notify_*, notify_agents_ready).
func ReqidOf(m Message) (string, bool) {
	if r, ok := m.(interface{ reqid() string }); ok {
		return r.reqid(), true
	}
	return "", false
}

// WithReqid returns a copy of m carrying reqid as its first argument, and
// false (with m unchanged) for events without a reqid.
func WithReqid(m Message, reqid string) (Message, bool) {
	if _, ok := ReqidOf(m); !ok {
		return m, false
	}
	v := reflect.ValueOf(m)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	c := reflect.New(v.Type()).Elem()
	c.Set(v)
	c.FieldByName("Reqid").SetString(reqid)
	return c.Interface().(Message), true
}

// --- Controller API -------------------------------------------------------

// GetInstancesRequest asks for the instances (agents) of the cluster.
type GetInstancesRequest struct{ Reqid string }

// GetInstancesResponse: Result.Data is a vector of Instance records.
type GetInstancesResponse struct {
	Reqid  string
	Result Result
}

// SetConfigurationRequest (cc42) deploys a configuration.
type SetConfigurationRequest struct {
	Reqid  string
	Config Configuration
}

// SetConfigurationResponse (cc42) carries one Result per agent, or a
// single failure Result (pending gate, timeout).
type SetConfigurationResponse struct {
	Reqid   string
	Results []Result
}

// TestTimeoutRequest asks the controller to create a request that times
// out (WithState) or to do nothing at all.
type TestTimeoutRequest struct {
	Reqid     string
	WithState bool
}

// TestTimeoutResponse carries the "request timed out" Result.
type TestTimeoutResponse struct {
	Reqid  string
	Result Result
}

// NotifyAgentsReady is raised inside the controller when every configured
// instance is ready. It is never published.
type NotifyAgentsReady struct{ Instances []string }

// StageConfigurationRequest (mgmt) validates and stages a configuration.
type StageConfigurationRequest struct {
	Reqid  string
	Config Configuration
}

// StageConfigurationResponse (mgmt).
type StageConfigurationResponse struct {
	Reqid   string
	Results []Result
}

// GetConfigurationRequest (mgmt) asks for the staged or deployed config.
type GetConfigurationRequest struct {
	Reqid    string
	Deployed bool
}

// GetConfigurationResponse (mgmt): Result.Data is a Configuration.
type GetConfigurationResponse struct {
	Reqid  string
	Result Result
}

// DeployRequest (mgmt) deploys the staged configuration.
type DeployRequest struct{ Reqid string }

// DeployResponse (mgmt).
type DeployResponse struct {
	Reqid   string
	Results []Result
}

// GetNodesRequest (mgmt).
type GetNodesRequest struct{ Reqid string }

// GetNodesResponse (mgmt): one Result per agent, Data a NodeStatus vector.
type GetNodesResponse struct {
	Reqid   string
	Results []Result
}

// GetIDValueRequest (mgmt) asks nodes for the value of a script identifier.
type GetIDValueRequest struct {
	Reqid string
	ID    string
	Nodes []string // a set on the wire
}

// GetIDValueResponse (mgmt): one Result per node, Data a JSON string.
type GetIDValueResponse struct {
	Reqid   string
	Results []Result
}

// RestartRequest (mgmt) restarts nodes (all when Nodes is empty).
type RestartRequest struct {
	Reqid string
	Nodes []string // a set on the wire
}

// RestartResponse (mgmt).
type RestartResponse struct {
	Reqid   string
	Results []Result
}

// --- Agent API ------------------------------------------------------------

// AgentSetConfigurationRequest (cc42) pushes a configuration to an agent.
type AgentSetConfigurationRequest struct {
	Reqid  string
	Config Configuration
}

// AgentSetConfigurationResponse (cc42) is the agent's answer.
type AgentSetConfigurationResponse struct {
	Reqid  string
	Result Result
}

// AgentWelcomeRequest tells a checked-in agent it is part of the config.
type AgentWelcomeRequest struct{ Reqid string }

// AgentWelcomeResponse: success and the agent's own instance name.
type AgentWelcomeResponse struct {
	Reqid  string
	Result Result
}

// AgentStandbyRequest tells an agent to stop its nodes (reqid usually "").
type AgentStandbyRequest struct{ Reqid string }

// AgentStandbyResponse is ignored by controllers.
type AgentStandbyResponse struct {
	Reqid  string
	Result Result
}

// NotifyAgentHello is an agent's check-in. cc42 carries Host; mgmt carries
// ID (the Broker endpoint id) and Connecting (the agent dialled the
// controller).
type NotifyAgentHello struct {
	Instance   string
	Host       netip.Addr
	ID         string
	Connecting bool
	APIVersion uint64
}

// NotifyChange reports a node state change (declared, never sent by Zeek).
type NotifyChange struct {
	Instance string
	Node     Node
	Old, New State
}

// NotifyError reports an agent-side error. Node is &default="" but must
// still be sent.
type NotifyError struct {
	Instance string
	Msg      string
	Node     string
}

// NotifyLog reports an agent-side log message.
type NotifyLog struct {
	Instance string
	Msg      string
	Node     string
}

// AgentDeployRequest (mgmt) pushes a configuration to an agent.
type AgentDeployRequest struct {
	Reqid  string
	Config Configuration
	Force  bool
}

// AgentDeployResponse (mgmt): one Result per node.
type AgentDeployResponse struct {
	Reqid   string
	Results []Result
}

// AgentGetNodesRequest (mgmt).
type AgentGetNodesRequest struct{ Reqid string }

// AgentGetNodesResponse (mgmt): Result.Data is a NodeStatus vector.
type AgentGetNodesResponse struct {
	Reqid  string
	Result Result
}

// AgentNodeDispatchRequest (mgmt), e.g. Action ["get_id_value", id].
type AgentNodeDispatchRequest struct {
	Reqid  string
	Action []string
	Nodes  []string // a set on the wire
}

// AgentNodeDispatchResponse (mgmt): one Result per node.
type AgentNodeDispatchResponse struct {
	Reqid   string
	Results []Result
}

// AgentRestartRequest (mgmt).
type AgentRestartRequest struct {
	Reqid string
	Nodes []string // a set on the wire
}

// AgentRestartResponse (mgmt).
type AgentRestartResponse struct {
	Reqid   string
	Results []Result
}

func (GetInstancesRequest) Kind() EventKind           { return KindGetInstancesRequest }
func (GetInstancesResponse) Kind() EventKind          { return KindGetInstancesResponse }
func (SetConfigurationRequest) Kind() EventKind       { return KindSetConfigurationRequest }
func (SetConfigurationResponse) Kind() EventKind      { return KindSetConfigurationResponse }
func (TestTimeoutRequest) Kind() EventKind            { return KindTestTimeoutRequest }
func (TestTimeoutResponse) Kind() EventKind           { return KindTestTimeoutResponse }
func (NotifyAgentsReady) Kind() EventKind             { return KindNotifyAgentsReady }
func (StageConfigurationRequest) Kind() EventKind     { return KindStageConfigurationRequest }
func (StageConfigurationResponse) Kind() EventKind    { return KindStageConfigurationResponse }
func (GetConfigurationRequest) Kind() EventKind       { return KindGetConfigurationRequest }
func (GetConfigurationResponse) Kind() EventKind      { return KindGetConfigurationResponse }
func (DeployRequest) Kind() EventKind                 { return KindDeployRequest }
func (DeployResponse) Kind() EventKind                { return KindDeployResponse }
func (GetNodesRequest) Kind() EventKind               { return KindGetNodesRequest }
func (GetNodesResponse) Kind() EventKind              { return KindGetNodesResponse }
func (GetIDValueRequest) Kind() EventKind             { return KindGetIDValueRequest }
func (GetIDValueResponse) Kind() EventKind            { return KindGetIDValueResponse }
func (RestartRequest) Kind() EventKind                { return KindRestartRequest }
func (RestartResponse) Kind() EventKind               { return KindRestartResponse }
func (AgentSetConfigurationRequest) Kind() EventKind  { return KindAgentSetConfigurationRequest }
func (AgentSetConfigurationResponse) Kind() EventKind { return KindAgentSetConfigurationResponse }
func (AgentWelcomeRequest) Kind() EventKind           { return KindAgentWelcomeRequest }
func (AgentWelcomeResponse) Kind() EventKind          { return KindAgentWelcomeResponse }
func (AgentStandbyRequest) Kind() EventKind           { return KindAgentStandbyRequest }
func (AgentStandbyResponse) Kind() EventKind          { return KindAgentStandbyResponse }
func (NotifyAgentHello) Kind() EventKind              { return KindNotifyAgentHello }
func (NotifyChange) Kind() EventKind                  { return KindNotifyChange }
func (NotifyError) Kind() EventKind                   { return KindNotifyError }
func (NotifyLog) Kind() EventKind                     { return KindNotifyLog }
func (AgentDeployRequest) Kind() EventKind            { return KindAgentDeployRequest }
func (AgentDeployResponse) Kind() EventKind           { return KindAgentDeployResponse }
func (AgentGetNodesRequest) Kind() EventKind          { return KindAgentGetNodesRequest }
func (AgentGetNodesResponse) Kind() EventKind         { return KindAgentGetNodesResponse }
func (AgentNodeDispatchRequest) Kind() EventKind      { return KindAgentNodeDispatchRequest }
func (AgentNodeDispatchResponse) Kind() EventKind     { return KindAgentNodeDispatchResponse }
func (AgentRestartRequest) Kind() EventKind           { return KindAgentRestartRequest }
func (AgentRestartResponse) Kind() EventKind          { return KindAgentRestartResponse }

func (m GetInstancesRequest) reqid() string           { return m.Reqid }
func (m GetInstancesResponse) reqid() string          { return m.Reqid }
func (m SetConfigurationRequest) reqid() string       { return m.Reqid }
func (m SetConfigurationResponse) reqid() string      { return m.Reqid }
func (m TestTimeoutRequest) reqid() string            { return m.Reqid }
func (m TestTimeoutResponse) reqid() string           { return m.Reqid }
func (m StageConfigurationRequest) reqid() string     { return m.Reqid }
func (m StageConfigurationResponse) reqid() string    { return m.Reqid }
func (m GetConfigurationRequest) reqid() string       { return m.Reqid }
func (m GetConfigurationResponse) reqid() string      { return m.Reqid }
func (m DeployRequest) reqid() string                 { return m.Reqid }
func (m DeployResponse) reqid() string                { return m.Reqid }
func (m GetNodesRequest) reqid() string               { return m.Reqid }
func (m GetNodesResponse) reqid() string              { return m.Reqid }
func (m GetIDValueRequest) reqid() string             { return m.Reqid }
func (m GetIDValueResponse) reqid() string            { return m.Reqid }
func (m RestartRequest) reqid() string                { return m.Reqid }
func (m RestartResponse) reqid() string               { return m.Reqid }
func (m AgentSetConfigurationRequest) reqid() string  { return m.Reqid }
func (m AgentSetConfigurationResponse) reqid() string { return m.Reqid }
func (m AgentWelcomeRequest) reqid() string           { return m.Reqid }
func (m AgentWelcomeResponse) reqid() string          { return m.Reqid }
func (m AgentStandbyRequest) reqid() string           { return m.Reqid }
func (m AgentStandbyResponse) reqid() string          { return m.Reqid }
func (m AgentDeployRequest) reqid() string            { return m.Reqid }
func (m AgentDeployResponse) reqid() string           { return m.Reqid }
func (m AgentGetNodesRequest) reqid() string          { return m.Reqid }
func (m AgentGetNodesResponse) reqid() string         { return m.Reqid }
func (m AgentNodeDispatchRequest) reqid() string      { return m.Reqid }
func (m AgentNodeDispatchResponse) reqid() string     { return m.Reqid }
func (m AgentRestartRequest) reqid() string           { return m.Reqid }
func (m AgentRestartResponse) reqid() string          { return m.Reqid }
