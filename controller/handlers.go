package controller

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// The handlers follow controller/main.zeek of Zeek 4.2 (spec §5) step by
// step. Log texts are Zeek's, typos included.

// timeoutResult is the Result of an expired request (spec §5.10).
func timeoutResult(reqid string) api.Result {
	return api.Result{Reqid: reqid, Success: false, Error: "request timed out"}
}

// onGetInstances is §5.9.
func (c *Core) onGetInstances(reqid string) {
	c.info("rx ClusterController::API::set_instances_request " + reqid)
	names := sortedKeys(c.instances)
	insts := make([]api.Instance, len(names))
	for i, n := range names {
		insts[i] = c.instances[n]
	}
	res := api.Result{Reqid: reqid, Success: true}
	data, err := c.p.InstancesValue(insts)
	if c.defects.has(DefectGetInstancesNoneData) {
		data = broker.None()
	}
	if err != nil {
		// Only reachable with an in-process caller that passed an
		// instance the wire could never carry.
		c.logf(slog.LevelError, "cannot encode the instances for get_instances_response %s: %v", reqid, err)
		res.Success = false
		res.Error = "cannot encode instances: " + err.Error()
	} else {
		res.Data = data
	}
	c.info("tx ClusterController::API::get_instances_response " + reqid)
	c.respond(c.p.ControllerTopic, api.GetInstancesResponse{Reqid: reqid, Result: res})
}

// onSetConfiguration is §5.6.
func (c *Core) onSetConfiguration(reqid string, config api.Configuration) {
	c.info("rx ClusterController::API::set_configuration_request " + reqid)

	var req *request
	gate := c.pending != "" && !c.defects.has(DefectNoPendingGate)
	if c.cfg.Mode.Has(QuirkDuplicateReqid) || !gate {
		req = c.create(kindSetConfiguration, reqid)
	} else {
		// A rejected request never enters the table, so it cannot
		// displace the pending one.
		req = &request{id: reqid, kind: kindSetConfiguration, created: c.now}
	}
	req.setConfig = &setConfigState{config: config}

	if gate {
		text := "request %s still pending"
		if c.defects.has(DefectWrongPendingText) {
			text = "request %s is still busy"
		}
		req.results = append(req.results, api.Result{
			Reqid:   reqid,
			Success: false,
			Error:   fmt.Sprintf(text, c.pending),
		})
		c.info("tx ClusterController::API::set_configuration_response " + req.String())
		c.respond(c.p.ControllerTopic, api.SetConfigurationResponse{Reqid: reqid, Results: cloneResults(req.results)})
		if req.elem != nil {
			c.finish(req.key)
		}
		return
	}

	// No validation: Zeek 4.2 only has a TODO here.
	c.pending = reqid
	c.reconcile(config.Instances)
	c.checkInstancesReady()
}

// reconcile is the instance delta of set_configuration (Zeek 4.2) and of
// deploy (Zeek 5.0+): instances no longer configured are dropped (with a
// standby), new ones added (welcomed if known, dialled if listening), and
// kept ones whose connectivity changed are dropped and, unless
// QuirkConnectivityChange, added again.
func (c *Core) reconcile(insts []api.Instance) {
	current := c.instances
	newNames := map[string]bool{}
	for _, inst := range insts {
		newNames[inst.Name] = true
	}
	drop := map[string]bool{}
	for name := range current {
		if !newNames[name] {
			drop[name] = true
		}
	}
	toPeer := map[string]api.Instance{}
	for _, inst := range insts {
		if _, kept := current[inst.Name]; !kept {
			toPeer[inst.Name] = inst
			continue
		}
		if c.isConnectivityChange(inst) {
			drop[inst.Name] = true
			if !c.cfg.Mode.Has(QuirkConnectivityChange) {
				toPeer[inst.Name] = inst
			}
		}
	}
	for _, name := range sortedKeys(drop) {
		c.dropInstance(name)
	}
	for _, name := range sortedKeys(toPeer) {
		c.addInstance(toPeer[name])
	}
}

// isConnectivityChange is is_instance_connectivity_change.
func (c *Core) isConnectivityChange(inst api.Instance) bool {
	old, ok := c.instances[inst.Name]
	if !ok {
		return false
	}
	// 0.0.0.0 stands for "whatever address the agent connects from".
	if host := inst.Host.Unmap(); host != unspecifiedV4 && host != old.Host.Unmap() {
		return true
	}
	if inst.ListenPort.Set != old.ListenPort.Set {
		return true
	}
	return inst.ListenPort.Set && old.ListenPort.Set && inst.ListenPort.V != old.ListenPort.V
}

// addInstance is add_instance.
func (c *Core) addInstance(inst api.Instance) {
	known, isKnown := c.known[inst.Name]
	if c.mgmt != nil && isKnown && !inst.ListenPort.Set {
		// Zeek 5.0+ uses the address it sees the agent connect from.
		inst.Host = known.Host
	}
	c.instances[inst.Name] = inst
	if port, ok := inst.ListenPort.Get(); ok {
		c.out.Dials = append(c.out.Dials, DialRequest{Instance: inst.Name, Host: inst.Host, Port: port})
	}
	if isKnown {
		c.sendWelcome(inst.Name)
		if c.defects.has(DefectConfigToUnwelcomed) {
			c.ready[inst.Name] = true
		}
	} else if c.mgmt != nil {
		c.debugf("instance %s not known to us, skipping", inst.Name)
	}
}

// dropInstance is drop_instance (§5.8).
func (c *Core) dropInstance(name string) {
	if _, ok := c.instances[name]; !ok {
		return
	}
	if !c.defects.has(DefectNoStandbyOnDrop) {
		c.sendStandby(name)
	}
	delete(c.instances, name)
	delete(c.ready, name)
	c.info("dropped instance " + name)
}

func (c *Core) sendWelcome(name string) {
	req := c.create(kindWelcome, c.cfg.NewID())
	req.target = name
	if c.mgmt != nil {
		c.info(fmt.Sprintf("tx %s %s to %s", c.evName(api.KindAgentWelcomeRequest), req.id, name))
	} else {
		c.info("tx ClusterAgent::API::agent_welcome_request to " + name)
	}
	c.publish(c.p.AgentTopic(name), api.AgentWelcomeRequest{Reqid: req.id})
}

// sendStandby publishes agent_standby_request with reqid "" and no state.
func (c *Core) sendStandby(name string) {
	c.info("tx " + c.evName(api.KindAgentStandbyRequest) + " to " + name)
	c.publish(c.p.AgentTopic(name), api.AgentStandbyRequest{Reqid: ""})
}

// evName is the profile's full name of an event, as Zeek's logs print it.
func (c *Core) evName(k api.EventKind) string {
	n, _ := c.p.EventName(k)
	return n
}

// checkInstancesReady is check_instances_ready (§5.5): it raises
// notify_agents_ready when the configured set equals the ready set.
func (c *Core) checkInstancesReady() {
	if c.defects.has(DefectReadyTooEarly) && len(c.ready) > 0 {
		c.raise(queuedEvent{isReady: true, ready: sortedKeys(c.ready)})
		return
	}
	if len(c.instances) != len(c.ready) {
		return
	}
	for name := range c.ready {
		if _, ok := c.instances[name]; !ok {
			return
		}
	}
	c.raise(queuedEvent{isReady: true, ready: sortedKeys(c.instances)})
}

// onNotifyAgentsReady is the notify_agents_ready handler.
func (c *Core) onNotifyAgentsReady(names []string) {
	sorted := append([]string{}, names...)
	sort.Strings(sorted)
	if c.mgmt != nil {
		c.onNotifyAgentsReadyMgmt(sorted)
		return
	}
	c.info("rx ClusterController::API:notify_agents_ready " + strings.Join(sorted, ","))
	c.out.AgentsReady = append(c.out.AgentsReady, api.NotifyAgentsReady{Instances: sorted})
	req := c.lookup(kindSetConfiguration, c.pending)
	if req == nil || req.setConfig == nil {
		return
	}
	c.sendConfigToAgents(req)
}

// sendConfigToAgents is send_config_to_agents: one child request per ready
// configured instance, each carrying the whole configuration.
func (c *Core) sendConfigToAgents(req *request) {
	state := req.setConfig
	for _, name := range sortedKeys(c.instances) {
		if !c.ready[name] {
			continue
		}
		if !c.cfg.Mode.Has(QuirkDuplicateWelcome) && hasChildFor(state.children, name) {
			continue
		}
		child := c.create(kindChild, c.cfg.NewID())
		child.parent, child.hasParent = req.id, true
		child.target = name
		state.children = append(state.children, child)
		c.info(fmt.Sprintf("tx ClusterAgent::API::set_configuration_request %s to %s", child.id, name))
		c.publish(c.p.AgentTopic(name), api.AgentSetConfigurationRequest{Reqid: child.id, Config: state.config})
	}
	if len(state.children) == 0 && !c.cfg.Mode.Has(QuirkZeroInstances) {
		// Nothing to wait for: Zeek 5.0's fix, an immediate success.
		c.completeSetConfiguration(req)
	}
}

func hasChildFor(children []*request, name string) bool {
	for _, ch := range children {
		if ch.target == name {
			return true
		}
	}
	return false
}

// onHello is §5.3.
func (c *Core) onHello(m api.NotifyAgentHello, from Peer) {
	host := addrString(m.Host)
	c.info(fmt.Sprintf("rx ClusterAgent::API::notify_agent_hello %s %s", m.Instance, host))
	if m.APIVersion != c.p.APIVersion && !c.defects.has(DefectIgnoresAPIVersion) {
		c.logf(slog.LevelWarn, "instance %s/%s has checked in with incompatible API version %d", m.Instance, host, m.APIVersion)
		c.dropInstance(m.Instance)
		delete(c.known, m.Instance)
		delete(c.speakers, m.Instance)
		return
	}
	c.known[m.Instance] = api.Instance{Name: m.Instance, Host: m.Host}
	if from.Kind != PeerNone {
		c.speakers[m.Instance] = from
	}
	if _, configured := c.instances[m.Instance]; configured && !c.ready[m.Instance] {
		c.sendWelcome(m.Instance)
		if c.defects.has(DefectConfigToUnwelcomed) {
			c.ready[m.Instance] = true
			c.checkInstancesReady()
		}
	}
}

// onWelcomeResponse is §5.4.
func (c *Core) onWelcomeResponse(reqid string, res api.Result) {
	c.info("rx " + c.evName(api.KindAgentWelcomeResponse) + " " + reqid)
	req := c.lookup(kindWelcome, reqid)
	if req == nil {
		return
	}
	c.finish(req.key)
	if _, configured := c.instances[res.Instance]; !res.Success || !configured {
		c.sendStandby(res.Instance)
		return
	}
	if c.ready[res.Instance] && !c.cfg.Mode.Has(QuirkDuplicateWelcome) {
		c.debugf("instance %s is ready already; duplicate welcome response %s changes nothing", res.Instance, reqid)
		return
	}
	c.ready[res.Instance] = true
	c.info("instance " + res.Instance + " ready")
	c.checkInstancesReady()
}

// onAgentSetConfigurationResponse is §5.7 (P1).
func (c *Core) onAgentSetConfigurationResponse(reqid string, res api.Result) {
	c.info("rx ClusterAgent::API::set_configuration_response " + reqid)
	areq := c.lookup(kindChild, reqid)
	if areq == nil {
		return
	}
	// areq$results[0] = result; areq$finished = T
	if len(areq.results) == 0 {
		areq.results = append(areq.results, res)
	} else {
		areq.results[0] = res
	}
	areq.lost = false
	areq.finished = true
	if !areq.hasParent {
		// Zeek reads the unset parent_id: a runtime error aborts the
		// handler after the two assignments above.
		c.debugf("set_configuration_response %s names a request without a parent; Zeek's handler aborts here", reqid)
		return
	}
	parent := c.lookup(kindSetConfiguration, areq.parent)
	if parent == nil {
		return
	}
	if parent.setConfig == nil {
		c.debugf("set_configuration_response %s: parent %s has no configuration state; Zeek's handler aborts here", reqid, areq.parent)
		return
	}
	for _, ch := range parent.setConfig.children {
		if !ch.finished {
			return
		}
	}
	c.completeSetConfiguration(parent)
}

// completeSetConfiguration aggregates one Result per child, in send order,
// and responds (§5.7 steps 6–10).
func (c *Core) completeSetConfiguration(req *request) {
	for _, ch := range req.setConfig.children {
		success := true
		instance := ""
		var errs []string
		for _, res := range ch.results {
			instance = res.Instance
			if res.Success {
				continue
			}
			success = false
			if ch.lost {
				errs = append(errs, res.Error)
				continue
			}
			node, ok := res.Node.Get()
			if !ok {
				if c.cfg.Mode.Has(QuirkFailureWithoutNode) {
					// fmt("%s", res$node) on an unset field: a runtime
					// error aborts the handler. Results appended and
					// children finished so far stay that way.
					c.debugf("agent %s reported a failure without node for %s; Zeek's handler aborts here and the request will time out", instance, ch.id)
					return
				}
				node = "?"
			}
			if c.defects.has(DefectErrorWithoutNode) {
				errs = append(errs, res.Error)
				continue
			}
			errs = append(errs, fmt.Sprintf("node %s failed: %s", node, res.Error))
		}
		if c.defects.has(DefectSuccessNotAnded) {
			success = true
		}
		req.results = append(req.results, api.Result{
			Reqid:    req.id,
			Instance: instance,
			Success:  success,
			Error:    strings.Join(errs, ", "),
		})
		c.finish(ch.key)
	}
	c.current = req.setConfig.config
	if c.cfg.Mode.Has(QuirkDuplicateReqid) || c.pending == req.id {
		c.pending = ""
	}
	c.info("tx ClusterController::API::set_configuration_response " + req.String())
	c.respond(c.p.ControllerTopic, api.SetConfigurationResponse{Reqid: req.id, Results: cloneResults(req.results)})
	c.finish(req.key)
}

// onTestTimeout is §5.11.
func (c *Core) onTestTimeout(reqid string, withState bool) {
	c.info(fmt.Sprintf("rx %s %s %s", c.evName(api.KindTestTimeoutRequest), reqid, boolString(withState)))
	if withState || c.defects.has(DefectStatelessTimeoutAnswered) {
		c.create(kindTestTimeout, reqid).test = true
	}
}

// onRequestExpired is the request_expired handler (§5.10).
func (c *Core) onRequestExpired(req *request) {
	if c.mgmt != nil {
		c.onRequestExpiredMgmt(req)
		return
	}
	if c.defects.has(DefectNoTimeoutResponse) {
		if req.setConfig != nil && c.pending == req.id {
			c.pending = ""
		}
		return
	}
	if req.setConfig != nil {
		if c.cfg.Mode.Has(QuirkDuplicateReqid) || c.pending == req.id {
			c.pending = ""
		}
		req.results = append(req.results, timeoutResult(req.id))
		c.info("tx ClusterController::API::set_configuration_response " + req.String())
		c.respond(c.p.ControllerTopic, api.SetConfigurationResponse{Reqid: req.id, Results: cloneResults(req.results)})
	}
	if req.test {
		c.info("tx ClusterController::API::test_timeout_response " + req.id)
		c.respond(c.p.ControllerTopic, api.TestTimeoutResponse{Reqid: req.id, Result: timeoutResult(req.id)})
	}
}

// peerLost handles a vanished connection. Zeek 4.2 has no such handling;
// the fixed mode forgets the instances the peer spoke for and fails their
// outstanding children.
func (c *Core) peerLost(p Peer) {
	var names []string
	for _, name := range sortedKeys(c.speakers) {
		if c.speakers[name] == p {
			names = append(names, name)
			delete(c.speakers, name)
		}
	}
	if c.mgmt != nil {
		c.peerLostMgmt(p, names)
		return
	}
	if c.cfg.Mode.Has(QuirkPeerLoss) {
		if len(names) > 0 {
			c.debugf("%s (instances %s) disconnected; Zeek 4.2 has no peer-loss handling", p, strings.Join(names, ","))
		}
		return
	}
	if len(names) == 0 {
		return
	}
	req := c.lookup(kindSetConfiguration, c.pending)
	if req != nil && req.setConfig == nil {
		req = nil
	}
	changed := false
	for _, name := range names {
		delete(c.known, name)
		delete(c.ready, name)
		c.info(fmt.Sprintf("instance %s disconnected (%s)", name, p))
		if req == nil {
			continue
		}
		for _, ch := range req.setConfig.children {
			if ch.target != name || ch.finished {
				continue
			}
			ch.results = []api.Result{{
				Reqid:    ch.id,
				Instance: name,
				Success:  false,
				Error:    "agent " + name + " disconnected",
			}}
			ch.lost = true
			ch.finished = true
			changed = true
		}
	}
	if !changed {
		return
	}
	for _, ch := range req.setConfig.children {
		if !ch.finished {
			return
		}
	}
	c.completeSetConfiguration(req)
}

func cloneResults(rs []api.Result) []api.Result {
	out := make([]api.Result, len(rs))
	copy(out, rs)
	return out
}
