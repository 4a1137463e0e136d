package controller

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strings"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// The Management profile (Zeek 5.2+, spec management-websocket.md §2.4–
// §2.10, checked against a real Zeek 8.1.2 in real-zeek-8.1-observations.md)
// follows controller/main.zeek of Zeek 8.1 handler by handler. It shares
// with cc42 the request table and its expiry, the hello → welcome → ready
// → notify_agents_ready handshake, instance reconciliation, defects and
// modes; what is its own are the request handlers below and the hello's
// fields.

// AgentIdentity decides which Management hellos make their instance
// "known" (Zeek's g_instances_known: listed by get_instances, asked by
// get_nodes, required by restart).
type AgentIdentity uint8

const (
	// IdentityPeer (the default) counts a hello that arrives on a live
	// connection as known: zcc's agents are WebSocket peers, and in zcc's
	// world that connection is the Broker peering. The instance's host is
	// the connection's remote address. This deviates from Zeek 8.1, where
	// a WebSocket client is never a Broker peer and so never known.
	IdentityPeer AgentIdentity = iota
	// IdentityBrokerID is Zeek 8.1 exactly: a hello is known only when its
	// id names a Broker peer. zcc has none, so MgmtConfig.BrokerPeerIDs
	// lists the ids that stand for one; any other hello is still welcomed
	// when its instance is configured, but never known (spec §3).
	IdentityBrokerID
)

var identityNames = [...]string{IdentityPeer: "peer", IdentityBrokerID: "broker-id"}

func (i AgentIdentity) String() string {
	if int(i) < len(identityNames) {
		return identityNames[i]
	}
	return fmt.Sprintf("AgentIdentity(%d)", i)
}

// ParseAgentIdentity accepts "peer" or "broker-id".
func ParseAgentIdentity(s string) (AgentIdentity, error) {
	for i, n := range identityNames {
		if n == s {
			return AgentIdentity(i), nil
		}
	}
	return 0, fmt.Errorf("unknown agent identity %q (want peer or broker-id)", s)
}

// Defaults of Zeek's Management controller (controller/config.zeek).
const (
	DefaultBrokerPort       = 2150
	DefaultBrokerStartPort  = 2200
	DefaultMetricsStartPort = 9000
)

// MgmtConfig holds the Core settings only the Management profile uses.
// The zero value is Zeek's default.
type MgmtConfig struct {
	// BrokerPort is the controller's own Broker port (Zeek's
	// ZEEK_CONTROLLER_PORT, default 2150/tcp). zcc listens on WebSocket
	// only, but stage_configuration still rejects nodes using this port
	// ("conflicts with controller port").
	BrokerPort broker.Port
	// NoBrokerPortAutoAssign is auto_assign_broker_ports=F: nodes that
	// need a Broker port and lack one are an error instead of getting one.
	NoBrokerPortAutoAssign bool
	// BrokerStartPort is auto_assign_broker_start_port; default 2200.
	BrokerStartPort uint16
	// NoMetricsPortAutoAssign is auto_assign_metrics_ports=F.
	NoMetricsPortAutoAssign bool
	// MetricsStartPort is auto_assign_metrics_start_port; default 9000.
	MetricsStartPort uint16
	// Identity decides which hellos make an instance known.
	Identity AgentIdentity
	// BrokerPeerIDs are the hello ids that count as Broker peers under
	// IdentityBrokerID.
	BrokerPeerIDs []string
	// Restore is the persisted state to start from (see StoredConfigs);
	// a Startup input redeploys its Deployed configuration.
	Restore *StoredConfigs
}

// StoredConfigs are the Management profile's configurations by state,
// Zeek's g_configs: STAGED as the client sent it, READY with hosts and
// ports filled in, DEPLOYED once every agent answered. Nil means absent.
type StoredConfigs struct {
	Staged   *api.Configuration
	Ready    *api.Configuration
	Deployed *api.Configuration
}

func (s StoredConfigs) clone() StoredConfigs {
	c := func(p *api.Configuration) *api.Configuration {
		if p == nil {
			return nil
		}
		v := cloneConfig(*p)
		return &v
	}
	return StoredConfigs{Staged: c(s.Staged), Ready: c(s.Ready), Deployed: c(s.Deployed)}
}

// mgmtRequiredKinds are the events a profile needs for the Management
// semantics.
var mgmtRequiredKinds = []api.EventKind{
	api.KindStageConfigurationRequest, api.KindGetConfigurationRequest, api.KindDeployRequest,
	api.KindGetNodesRequest, api.KindGetIDValueRequest, api.KindRestartRequest,
	api.KindAgentDeployRequest, api.KindAgentGetNodesRequest, api.KindAgentNodeDispatchRequest,
	api.KindAgentRestartRequest, api.KindAgentWelcomeRequest,
}

type mgmtState struct {
	cfg         *MgmtConfig
	configs     StoredConfigs
	brokerPeers map[string]bool
}

func newMgmtState(cfg *MgmtConfig) (*mgmtState, error) {
	if cfg.BrokerPort == (broker.Port{}) {
		cfg.BrokerPort = broker.TCPPort(DefaultBrokerPort)
	}
	if cfg.BrokerStartPort == 0 {
		cfg.BrokerStartPort = DefaultBrokerStartPort
	}
	if cfg.MetricsStartPort == 0 {
		cfg.MetricsStartPort = DefaultMetricsStartPort
	}
	if cfg.Identity > IdentityBrokerID {
		return nil, fmt.Errorf("controller: unknown agent identity %d", cfg.Identity)
	}
	if cfg.Identity != IdentityBrokerID && len(cfg.BrokerPeerIDs) > 0 {
		return nil, errors.New("controller: BrokerPeerIDs needs Identity IdentityBrokerID")
	}
	m := &mgmtState{cfg: cfg, brokerPeers: map[string]bool{}}
	for _, id := range cfg.BrokerPeerIDs {
		m.brokerPeers[id] = true
	}
	if cfg.Restore != nil {
		m.configs = cfg.Restore.clone()
	}
	return m, nil
}

// deployState is Zeek's DeployState: the configuration being deployed,
// whether the controller started the deployment itself (no client
// response), and the requests to agents in send order.
type deployState struct {
	config   api.Configuration
	internal bool
	children []*request
}

// fanoutState is the state of get_nodes, get_id_value (node_dispatch) and
// restart: the client request's kind, the dispatched action and the
// requests to agents.
type fanoutState struct {
	kind     reqKind
	action   []string
	children []*request
}

func (c *Core) receiveMgmt(in Receive) {
	switch m := in.Msg.(type) {
	case api.GetInstancesRequest:
		c.onGetInstancesMgmt(m.Reqid)
	case api.StageConfigurationRequest:
		c.onStageConfiguration(m.Reqid, m.Config)
	case api.GetConfigurationRequest:
		c.onGetConfiguration(m.Reqid, m.Deployed)
	case api.DeployRequest:
		c.onDeploy(m.Reqid)
	case api.GetNodesRequest:
		c.onGetNodes(m.Reqid)
	case api.GetIDValueRequest:
		c.onGetIDValue(m.Reqid, m.ID, m.Nodes)
	case api.RestartRequest:
		c.onRestart(m.Reqid, m.Nodes)
	case api.TestTimeoutRequest:
		c.onTestTimeout(m.Reqid, m.WithState)
	case api.NotifyAgentHello:
		c.onHelloMgmt(m, in.From)
	case api.AgentWelcomeResponse:
		c.onWelcomeResponse(m.Reqid, m.Result)
	case api.AgentDeployResponse:
		c.onAgentDeployResponse(m.Reqid, m.Results)
	case api.AgentGetNodesResponse:
		c.onAgentGetNodesResponse(m.Reqid, m.Result)
	case api.AgentNodeDispatchResponse:
		c.onAgentFanoutResponse(kindAgentDispatch, kindGetIDValue, m.Reqid, m.Results)
	case api.AgentRestartResponse:
		c.onAgentFanoutResponse(kindAgentRestart, kindRestart, m.Reqid, m.Results)
	case api.NotifyAgentsReady:
		// Published to the controller's topic it reaches the local
		// handler, as in Zeek.
		c.onNotifyAgentsReady(m.Instances)
	case api.NotifyError:
		c.debugf("notify_error from %s: %s (node %q) — ignored, as in Zeek", m.Instance, m.Msg, m.Node)
	case api.NotifyLog:
		c.debugf("notify_log from %s: %s (node %q) — ignored, as in Zeek", m.Instance, m.Msg, m.Node)
	case api.NotifyChange:
		c.debugf("notify_change from %s: node %s %v -> %v — ignored, as in Zeek", m.Instance, m.Node.Name, m.Old, m.New)
	default:
		// Responses, the controller's own requests to agents and
		// agent_standby_response have no controller handler.
	}
}

// persist hands the current configurations to the runtime.
func (c *Core) persist() {
	s := c.mgmt.configs.clone()
	c.out.Configs = &s
}

// --- agents: hello, peer loss -------------------------------------------------

// onHelloMgmt is notify_agent_hello(instance, id, connecting, api_version).
func (c *Core) onHelloMgmt(m api.NotifyAgentHello, from Peer) {
	c.info(fmt.Sprintf("rx %s %s %s %s", c.evName(api.KindNotifyAgentHello), m.Instance, m.ID, boolString(m.Connecting)))
	if m.APIVersion != c.p.APIVersion && !c.defects.has(DefectIgnoresAPIVersion) {
		c.logf(slog.LevelWarn, "instance %s/%s has checked in with incompatible API version %d", m.Instance, m.ID, m.APIVersion)
		c.dropInstance(m.Instance)
		delete(c.known, m.Instance)
		delete(c.speakers, m.Instance)
		return
	}
	if c.isPeering(m, from) {
		if _, again := c.known[m.Instance]; again {
			c.debugf("instance %s checked in again", m.Instance)
		} else {
			c.debugf("instance %s newly checked in", m.Instance)
		}
		inst := api.Instance{Name: m.Instance, Host: netip.IPv4Unspecified()}
		if conn, ok := c.peers[from]; ok && conn.Addr.IsValid() {
			inst.Host = conn.Addr.Unmap()
			if !m.Connecting {
				// The controller connected to this agent: note its port.
				inst.ListenPort = conn.Port
			}
		}
		c.known[m.Instance] = inst
		if from.Kind != PeerNone {
			c.speakers[m.Instance] = from
		}
	} else {
		c.logf(slog.LevelWarn, "notify_agent_hello from %s with unknown Broker ID %s", m.Instance, m.ID)
		c.logf(slog.LevelWarn, "notify_agent_hello from %s lacks network state, Broker ID %s", m.Instance, m.ID)
	}
	// Independently of the lookup, a configured instance that is not
	// ready gets a welcome (spec §3.4).
	if _, configured := c.instances[m.Instance]; configured && !c.ready[m.Instance] {
		c.sendWelcome(m.Instance)
		if c.defects.has(DefectConfigToUnwelcomed) {
			c.ready[m.Instance] = true
			c.checkInstancesReady()
		}
	}
}

// isPeering is Zeek's find_endpoint(id) test: does this hello come from a
// Broker peer?
func (c *Core) isPeering(m api.NotifyAgentHello, from Peer) bool {
	if c.mgmt.cfg.Identity == IdentityBrokerID {
		return c.mgmt.brokerPeers[m.ID]
	}
	return from.Kind != PeerNone
}

// peerLostMgmt is Broker::peer_lost: a known instance's peering is gone,
// so it is neither known nor ready any more. The fixed mode also fails the
// requests still waiting for that agent at once.
func (c *Core) peerLostMgmt(p Peer, names []string) {
	for _, name := range names {
		if _, ok := c.known[name]; !ok {
			continue
		}
		delete(c.known, name)
		delete(c.ready, name)
		c.info("dropped state for instance " + name)
	}
	if len(names) == 0 || c.cfg.Mode.Has(QuirkPeerLoss) {
		return
	}
	lost := map[string]bool{}
	for _, n := range names {
		lost[n] = true
	}
	var waiting []*request
	for e := c.table.order.Front(); e != nil; e = e.Next() {
		r := e.Value.(*request)
		switch r.kind {
		case kindAgentDeploy, kindAgentGetNodes, kindAgentDispatch, kindAgentRestart:
			if lost[r.target] && !r.finished {
				waiting = append(waiting, r)
			}
		}
	}
	for _, r := range waiting {
		res := api.Result{Reqid: r.id, Instance: r.target, Success: false, Error: "agent " + r.target + " disconnected"}
		c.info(fmt.Sprintf("instance %s disconnected (%s): request %s fails", r.target, p, r.id))
		switch r.kind {
		case kindAgentDeploy:
			c.onAgentDeployResponse(r.id, []api.Result{res})
		case kindAgentGetNodes:
			c.onAgentGetNodesResponse(r.id, res)
		case kindAgentDispatch:
			c.onAgentFanoutResponse(kindAgentDispatch, kindGetIDValue, r.id, []api.Result{res})
		case kindAgentRestart:
			c.onAgentFanoutResponse(kindAgentRestart, kindRestart, r.id, []api.Result{res})
		}
	}
}

// --- client requests ------------------------------------------------------------

// onGetInstancesMgmt lists the known instances, sorted by name.
func (c *Core) onGetInstancesMgmt(reqid string) {
	c.info("rx " + c.evName(api.KindGetInstancesRequest) + " " + reqid)
	names := sortedKeys(c.known)
	insts := make([]api.Instance, len(names))
	for i, n := range names {
		insts[i] = c.known[n]
	}
	res := api.Result{Reqid: reqid, Success: true}
	data, err := c.p.InstancesValue(insts)
	switch {
	case c.defects.has(DefectGetInstancesNoneData):
	case err != nil:
		c.logf(slog.LevelError, "cannot encode the instances for get_instances_response %s: %v", reqid, err)
		res.Success, res.Error = false, "cannot encode instances: "+err.Error()
	default:
		res.Data = data
	}
	c.info("tx " + c.evName(api.KindGetInstancesResponse) + " " + reqid)
	c.respond(c.p.ControllerTopic, api.GetInstancesResponse{Reqid: reqid, Result: res})
}

// onStageConfiguration validates a configuration and stores it as STAGED,
// with a READY copy whose hosts and ports are filled in.
func (c *Core) onStageConfiguration(reqid string, config api.Configuration) {
	c.info("rx " + c.evName(api.KindStageConfigurationRequest) + " " + reqid)
	req := c.create(kindStage, reqid)
	m := c.mgmt
	if errs := validateConfig(reqid, config, m.cfg); len(errs) > 0 {
		req.results = append(req.results, errs...)
		c.finish(req.key)
		c.info("tx " + c.evName(api.KindStageConfigurationResponse) + " " + req.String())
		c.respond(c.p.ControllerTopic, api.StageConfigurationResponse{Reqid: reqid, Results: cloneResults(req.results)})
		return
	}
	staged := cloneConfig(config)
	ready := c.readyConfig(config)
	m.configs.Staged, m.configs.Ready = &staged, &ready
	res := api.Result{Reqid: reqid, Success: true, Data: broker.String(config.ID)}
	req.results = append(req.results, res)
	c.info("tx " + c.evName(api.KindStageConfigurationResponse) + " " + res.String())
	c.respond(c.p.ControllerTopic, api.StageConfigurationResponse{Reqid: reqid, Results: cloneResults(req.results)})
	c.finish(req.key)
	c.persist()
}

// onGetConfiguration answers with the STAGED or DEPLOYED configuration.
func (c *Core) onGetConfiguration(reqid string, deployed bool) {
	c.info("rx " + c.evName(api.KindGetConfigurationRequest) + " " + reqid)
	res := api.Result{Reqid: reqid, Success: true}
	cfg, state := c.mgmt.configs.Staged, "staged"
	if deployed {
		cfg, state = c.mgmt.configs.Deployed, "deployed"
	}
	if cfg == nil {
		res.Success, res.Error = false, "no "+state+" configuration available"
	} else if v, err := c.p.ConfigurationValue(*cfg); err != nil {
		c.logf(slog.LevelError, "cannot encode the %s configuration for %s: %v", state, reqid, err)
		res.Success, res.Error = false, "cannot encode configuration: "+err.Error()
	} else {
		res.Data = v
	}
	c.info("tx " + c.evName(api.KindGetConfigurationResponse) + " " + res.String())
	c.respond(c.p.ControllerTopic, api.GetConfigurationResponse{Reqid: reqid, Result: res})
}

// onDeploy starts deploying the READY configuration.
func (c *Core) onDeploy(reqid string) {
	c.info("rx " + c.evName(api.KindDeployRequest) + " " + reqid)
	ready := c.mgmt.configs.Ready
	gate := ready != nil && c.pending != "" && !c.defects.has(DefectNoPendingGate)
	var req *request
	if (ready == nil || gate) && !c.cfg.Mode.Has(QuirkDuplicateReqid) {
		// A rejected request never enters the table, so it cannot
		// displace the pending one.
		req = &request{id: reqid, kind: kindDeploy, created: c.now}
	} else {
		req = c.create(kindDeploy, reqid)
	}
	reject := func(text string) {
		req.results = append(req.results, api.Result{Reqid: reqid, Success: false, Error: text})
		c.info("tx " + c.evName(api.KindDeployResponse) + " " + req.String())
		c.respond(c.p.ControllerTopic, api.DeployResponse{Reqid: reqid, Results: cloneResults(req.results)})
		if req.elem != nil {
			c.finish(req.key)
		}
	}
	if ready == nil {
		reject("no configuration available to deploy")
		return
	}
	if gate {
		text := "earlier deployment %s still pending"
		if c.defects.has(DefectWrongPendingText) {
			text = "deployment %s is still busy"
		}
		reject(fmt.Sprintf(text, c.pending))
		return
	}
	req.deploy = &deployState{config: *ready}
	c.deployMgmt(req)
	// If every agent involved is ready already, this raises
	// notify_agents_ready, which sends the configuration out.
	c.checkInstancesReady()
}

// deployMgmt is Zeek's deploy(): the deployment becomes pending and the
// instance set is reconciled; a configuration without instances is
// deployed at once.
func (c *Core) deployMgmt(req *request) {
	c.pending = req.id
	insts := req.deploy.config.Instances
	if ready := c.mgmt.configs.Ready; ready != nil && c.cfg.Mode.Has(QuirkRedeployReadyInstances) {
		// Zeek reconciles against READY, also when it redeploys DEPLOYED.
		insts = ready.Instances
	}
	c.reconcile(insts)
	if len(insts) == 0 {
		c.completeDeploy(req)
	}
}

// configDeployToAgents is config_deploy_to_agents: one deploy_request per
// ready configured instance, each with the whole configuration.
func (c *Core) configDeployToAgents(req *request) {
	st := req.deploy
	for _, name := range sortedKeys(c.instances) {
		if !c.ready[name] {
			continue
		}
		if !c.cfg.Mode.Has(QuirkDuplicateWelcome) && hasChildFor(st.children, name) {
			continue
		}
		child := c.newChild(kindAgentDeploy, req, name)
		st.children = append(st.children, child)
		c.info(fmt.Sprintf("tx %s %s to %s", c.evName(api.KindAgentDeployRequest), child.id, name))
		c.publish(c.p.AgentTopic(name), api.AgentDeployRequest{Reqid: child.id, Config: st.config, Force: false})
	}
}

// completeDeploy adopts the configuration as DEPLOYED and answers with the
// controller's own Result (data: the configuration id) last.
func (c *Core) completeDeploy(req *request) {
	cfg := cloneConfig(req.deploy.config)
	c.mgmt.configs.Deployed = &cfg
	if c.cfg.Mode.Has(QuirkDuplicateReqid) || c.pending == req.id {
		c.pending = ""
	}
	req.results = append(req.results, api.Result{Reqid: req.id, Success: true, Data: broker.String(cfg.ID)})
	if !req.deploy.internal {
		c.info("tx " + c.evName(api.KindDeployResponse) + " " + req.String())
		c.respond(c.p.ControllerTopic, api.DeployResponse{Reqid: req.id, Results: cloneResults(req.results)})
	}
	c.finish(req.key)
	c.persist()
}

// onNotifyAgentsReadyMgmt redeploys DEPLOYED when no deployment is
// pending (agents that restarted get back in sync), then sends the
// pending deployment's configuration to the agents.
func (c *Core) onNotifyAgentsReadyMgmt(names []string) {
	c.info("rx Management::Controller::API:notify_agents_ready " + strings.Join(names, ", "))
	c.out.AgentsReady = append(c.out.AgentsReady, api.NotifyAgentsReady{Instances: names})
	if c.pending == "" && c.mgmt.configs.Deployed != nil {
		req := c.create(kindDeploy, c.cfg.NewID())
		req.deploy = &deployState{config: *c.mgmt.configs.Deployed, internal: true}
		c.info("no deployment in progress, triggering via " + req.id)
		c.deployMgmt(req)
	}
	req := c.lookup(kindDeploy, c.pending)
	if req == nil || req.deploy == nil {
		return
	}
	c.configDeployToAgents(req)
}

// startupMgmt is zeek_init's redeployment of a persisted configuration.
func (c *Core) startupMgmt() {
	deployed := c.mgmt.configs.Deployed
	if deployed == nil {
		return
	}
	req := c.create(kindDeploy, c.cfg.NewID())
	req.deploy = &deployState{config: *deployed, internal: true}
	c.info(fmt.Sprintf("deploying persisted configuration %s, request %s", deployed.ID, req.id))
	c.deployMgmt(req)
}

// onGetNodes asks every known agent for its nodes.
func (c *Core) onGetNodes(reqid string) {
	c.info("rx " + c.evName(api.KindGetNodesRequest) + " " + reqid)
	if len(c.known) == 0 {
		c.info("tx " + c.evName(api.KindGetNodesResponse) + " " + reqid)
		c.respond(c.p.ControllerTopic, api.GetNodesResponse{Reqid: reqid,
			Results: []api.Result{{Reqid: reqid, Success: false, Error: "no instances connected"}}})
		return
	}
	req := c.create(kindGetNodes, reqid)
	req.fanout = &fanoutState{kind: kindGetNodes}
	for _, name := range sortedKeys(c.known) {
		child := c.newChild(kindAgentGetNodes, req, name)
		req.fanout.children = append(req.fanout.children, child)
		c.info(fmt.Sprintf("tx %s %s to %s", c.evName(api.KindAgentGetNodesRequest), child.id, name))
		c.publish(c.p.AgentTopic(name), api.AgentGetNodesRequest{Reqid: child.id})
	}
}

// onGetIDValue dispatches get_id_value to the ready configured agents.
func (c *Core) onGetIDValue(reqid, id string, nodes []string) {
	c.info(fmt.Sprintf("rx %s %s %s", c.evName(api.KindGetIDValueRequest), reqid, id))
	if len(c.instances) == 0 {
		c.info("tx " + c.evName(api.KindGetIDValueResponse) + " " + reqid)
		c.respond(c.p.ControllerTopic, api.GetIDValueResponse{Reqid: reqid,
			Results: []api.Result{{Reqid: reqid, Success: false, Error: "no cluster deployed"}}})
		return
	}
	action := []string{"get_id_value", id}
	req := c.create(kindGetIDValue, reqid)
	req.fanout = &fanoutState{kind: kindGetIDValue, action: action}
	final, ok := c.filterNodes(req, nodes)
	if !ok {
		return
	}
	for _, name := range sortedKeys(c.instances) {
		if !c.ready[name] {
			continue
		}
		child := c.newChild(kindAgentDispatch, req, name)
		req.fanout.children = append(req.fanout.children, child)
		c.info(fmt.Sprintf("tx %s %s [%s] to %s", c.evName(api.KindAgentNodeDispatchRequest), child.id, strings.Join(action, ", "), name))
		c.publish(c.p.AgentTopic(name), api.AgentNodeDispatchRequest{Reqid: child.id, Action: action, Nodes: final})
	}
}

// onRestart forwards a restart to the ready configured agents.
func (c *Core) onRestart(reqid string, nodes []string) {
	c.info(fmt.Sprintf("rx %s %s [%s]", c.evName(api.KindRestartRequest), reqid, strings.Join(nodes, ", ")))
	req := c.create(kindRestart, reqid)
	req.fanout = &fanoutState{kind: kindRestart}
	reject := func(text string) {
		req.results = append(req.results, api.Result{Reqid: reqid, Success: false, Error: text})
		c.respondFanout(req)
		c.finish(req.key)
	}
	if len(c.known) == 0 {
		reject("no instances connected")
		return
	}
	if c.mgmt.configs.Deployed == nil {
		reject("no active cluster deployment")
		return
	}
	if _, ok := c.filterNodes(req, nodes); !ok {
		return
	}
	for _, name := range sortedKeys(c.instances) {
		if !c.ready[name] {
			continue
		}
		child := c.newChild(kindAgentRestart, req, name)
		req.fanout.children = append(req.fanout.children, child)
		c.info(fmt.Sprintf("tx %s %s to %s", c.evName(api.KindAgentRestartRequest), child.id, name))
		// Zeek forwards the nodes as requested, unknown ones included.
		c.publish(c.p.AgentTopic(name), api.AgentRestartRequest{Reqid: child.id, Nodes: nodes})
	}
}

// filterNodes answers the requested nodes that the deployed configuration
// lacks with "unknown cluster node" Results and returns the others. When
// none are left it responds and reports false: the request is done. An
// empty request (all nodes) passes unchanged.
func (c *Core) filterNodes(req *request, nodes []string) ([]string, bool) {
	if len(nodes) == 0 {
		return nil, true
	}
	deployed := c.mgmt.configs.Deployed
	if deployed == nil && c.cfg.Mode.Has(QuirkNoDeployedConfig) {
		// g_configs[DEPLOYED] is absent: Zeek's lookup is a runtime
		// error, the handler aborts and the request times out.
		c.debugf("%s %s names nodes before any deployment completed: Zeek's handler aborts here and the request will time out", req.kind, req.id)
		return nil, false
	}
	inConfig := map[string]bool{}
	if deployed != nil {
		for _, n := range deployed.Nodes {
			inConfig[n.Name] = true
		}
	}
	var final []string
	for _, n := range sortedNames(nodes) {
		if inConfig[n] {
			final = append(final, n)
			continue
		}
		req.results = append(req.results, api.Result{Reqid: req.id, Success: false, Error: "unknown cluster node", Node: api.Some(n)})
	}
	if len(final) == 0 {
		c.respondFanout(req)
		c.finish(req.key)
		return nil, false
	}
	return final, true
}

// newChild creates the request to one agent on behalf of req.
func (c *Core) newChild(kind reqKind, parent *request, target string) *request {
	child := c.create(kind, c.cfg.NewID())
	child.parent, child.hasParent, child.parentKey = parent.id, true, parent.key
	child.target = target
	return child
}

// respondFanout sends a get_nodes, get_id_value or restart response with
// the results collected so far.
func (c *Core) respondFanout(req *request) {
	var (
		m    api.Message
		kind api.EventKind
	)
	rs := cloneResults(req.results)
	switch req.fanout.kind {
	case kindGetNodes:
		m, kind = api.GetNodesResponse{Reqid: req.id, Results: rs}, api.KindGetNodesResponse
	case kindGetIDValue:
		m, kind = api.GetIDValueResponse{Reqid: req.id, Results: rs}, api.KindGetIDValueResponse
	case kindRestart:
		m, kind = api.RestartResponse{Reqid: req.id, Results: rs}, api.KindRestartResponse
	default:
		return
	}
	c.info("tx " + c.evName(kind) + " " + req.String())
	c.respond(c.p.ControllerTopic, m)
}

// --- agent answers ----------------------------------------------------------------

// agentRequest finds the request an agent answers and its parent, finishing
// the former. parent is nil when Zeek's handler returns.
func (c *Core) agentRequest(kind reqKind, reqid string) (areq, parent *request) {
	areq = c.lookup(kind, reqid)
	if areq == nil {
		return nil, nil
	}
	c.finish(areq.key)
	if !areq.hasParent {
		// Zeek reads the unset parent_id: a runtime error aborts the
		// handler (e.g. an answer naming a welcome request's id).
		c.debugf("answer %s names a request without a parent; Zeek's handler aborts here", reqid)
		return areq, nil
	}
	return areq, c.table.get(areq.parentKey)
}

// dataCheck applies Zeek's cast of an answer's any-typed data. A failed
// cast is a runtime error that aborts Zeek's handler; the fixed mode drops
// the data instead.
func (c *Core) dataCheck(res *api.Result, want string, check func(broker.Value) error) bool {
	if res.Data.IsNone() && want != "NodeStatusVec" {
		return true
	}
	err := errors.New("no data")
	if !res.Data.IsNone() {
		err = check(res.Data)
	}
	if err == nil {
		return true
	}
	if c.cfg.Mode.Has(QuirkAgentDataType) {
		c.debugf("agent %s answered %s with data that is not a %s (%v): Zeek's handler aborts here", res.Instance, res.Reqid, want, err)
		return false
	}
	c.logf(slog.LevelWarn, "agent %s answered %s with data that is not a %s (%v); the data is dropped", res.Instance, res.Reqid, want, err)
	res.Data = broker.None()
	return true
}

func allFinished(children []*request) bool {
	for _, ch := range children {
		if !ch.finished {
			return false
		}
	}
	return true
}

// onAgentDeployResponse collects an agent's per-node Results; once every
// agent answered, the deployment is complete.
func (c *Core) onAgentDeployResponse(reqid string, results []api.Result) {
	c.info(fmt.Sprintf("rx %s %s %s", c.evName(api.KindAgentDeployResponse), reqid, resultsString(results)))
	_, req := c.agentRequest(kindAgentDeploy, reqid)
	if req == nil {
		return
	}
	for _, r := range results {
		if !c.dataCheck(&r, "NodeOutputs", func(v broker.Value) error { _, err := c.p.DecodeNodeOutputs(v); return err }) {
			return
		}
		req.results = append(req.results, r)
	}
	if req.deploy == nil {
		c.debugf("deploy_response %s: request %s has no deployment state; Zeek's handler aborts here", reqid, req.id)
		return
	}
	if !allFinished(req.deploy.children) {
		return
	}
	c.completeDeploy(req)
}

// onAgentGetNodesResponse collects one agent's NodeStatus Result.
func (c *Core) onAgentGetNodesResponse(reqid string, res api.Result) {
	c.info("rx " + c.evName(api.KindAgentGetNodesResponse) + " " + reqid)
	_, req := c.agentRequest(kindAgentGetNodes, reqid)
	if req == nil {
		return
	}
	if !c.dataCheck(&res, "NodeStatusVec", func(v broker.Value) error { _, err := c.p.DecodeNodeStatuses(v); return err }) {
		return
	}
	req.results = append(req.results, res)
	c.completeFanout(req, kindGetNodes, reqid)
}

// onAgentFanoutResponse collects node_dispatch and restart answers.
func (c *Core) onAgentFanoutResponse(childKind, parentKind reqKind, reqid string, results []api.Result) {
	respKind := api.KindAgentRestartResponse
	if childKind == kindAgentDispatch {
		respKind = api.KindAgentNodeDispatchResponse
	}
	c.info("rx " + c.evName(respKind) + " " + reqid)
	_, req := c.agentRequest(childKind, reqid)
	if req == nil {
		return
	}
	if childKind == kindAgentDispatch && len(results) > 0 && (req.fanout == nil || req.fanout.kind != parentKind) {
		c.debugf("node_dispatch_response %s: request %s has no dispatch state; Zeek's handler aborts here", reqid, req.id)
		return
	}
	for _, r := range results {
		if childKind == kindAgentDispatch && !c.dataCheck(&r, "string", func(v broker.Value) error {
			if v.Kind() != broker.KindString {
				return fmt.Errorf("a %s", v.Kind())
			}
			return nil
		}) {
			return
		}
		req.results = append(req.results, r)
	}
	c.completeFanout(req, parentKind, reqid)
}

// completeFanout responds once every agent of a fan-out answered.
func (c *Core) completeFanout(req *request, kind reqKind, reqid string) {
	if req.fanout == nil || req.fanout.kind != kind {
		c.debugf("answer %s: request %s has no %s state; Zeek's handler aborts here", reqid, req.id, kind)
		return
	}
	if !allFinished(req.fanout.children) {
		return
	}
	c.respondFanout(req)
	c.finish(req.key)
}

// onRequestExpiredMgmt is the Management request_expired handler: what was
// collected so far plus Result(F, "request timed out").
func (c *Core) onRequestExpiredMgmt(req *request) {
	c.info("request " + req.id + " timed out")
	if c.defects.has(DefectNoTimeoutResponse) {
		if req.deploy != nil && c.pending == req.id {
			c.pending = ""
		}
		return
	}
	res := timeoutResult(req.id)
	if req.deploy != nil {
		if c.cfg.Mode.Has(QuirkDuplicateReqid) || c.pending == req.id {
			c.pending = ""
		}
		req.results = append(req.results, res)
		if !req.deploy.internal {
			c.info("tx " + c.evName(api.KindDeployResponse) + " " + req.String())
			c.respond(c.p.ControllerTopic, api.DeployResponse{Reqid: req.id, Results: cloneResults(req.results)})
		}
	}
	if req.fanout != nil {
		req.results = append(req.results, res)
		c.respondFanout(req)
	}
	if req.test {
		c.info("tx " + c.evName(api.KindTestTimeoutResponse) + " " + req.id)
		c.respond(c.p.ControllerTopic, api.TestTimeoutResponse{Reqid: req.id, Result: res})
	}
}

// sortedNames returns a sorted copy: a set's order as Broker sends it.
func sortedNames(ns []string) []string {
	out := append([]string(nil), ns...)
	sort.Strings(out)
	return out
}

func resultsString(rs []api.Result) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ", ")
}
