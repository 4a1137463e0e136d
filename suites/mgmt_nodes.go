package suites

import (
	"encoding/json"
	"net/netip"
	"sort"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive
	. "github.com/onsi/gomega"    //nolint:revive

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
	"github.com/zcc-harness/zcc/fakeagent"
)

// clusterNodeID is a script identifier whose value differs per node (its
// own name, as JSON text), so a value shows which node it came from.
const clusterNodeID = "Cluster::node"

// jsonText is a value as Zeek's to_json renders it.
func jsonText(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// valueResult is one node's get_id_value answer under the agent's reqid.
func valueResult(areqid, instance, node, value string) api.Result {
	return api.Result{Reqid: areqid, Instance: instance, Success: true, Data: broker.String(value), Node: api.Some(node)}
}

// lastDispatch is the last node_dispatch_request an agent received.
func lastDispatch(a *fakeagent.Agent) api.AgentNodeDispatchRequest {
	GinkgoHelper()
	return lastReceived[api.AgentNodeDispatchRequest](a, api.KindAgentNodeDispatchRequest)
}

func lastRestart(a *fakeagent.Agent) api.AgentRestartRequest {
	GinkgoHelper()
	return lastReceived[api.AgentRestartRequest](a, api.KindAgentRestartRequest)
}

// agentAnswer is the Result an agent sent in its get_nodes_response to
// the request with areqid. An agent records what it sent after sending
// it, so the controller may have answered the client first: wait.
func (m *mgmtEnv) agentAnswer(a *fakeagent.Agent, areqid string) api.Result {
	GinkgoHelper()
	ctx, cancel := m.responseCtx()
	defer cancel()
	en, err := a.WaitFor(ctx, func(en fakeagent.Entry) bool {
		r, ok := en.Msg.(api.AgentGetNodesResponse)
		return ok && en.Dir == fakeagent.Out && en.Err == "" && r.Reqid == areqid
	})
	if err != nil {
		Fail("agent " + a.Name() + " never answered get_nodes_request " + areqid)
	}
	return en.Msg.(api.AgentGetNodesResponse).Result
}

// twoAgentCluster deploys agent a with nodes <a>-w1 and <a>-w2 and agent b
// with <b>-w, and returns the node names.
func (m *mgmtEnv) twoAgentCluster(a, b *fakeagent.Agent) (aw1, aw2, bw string) {
	GinkgoHelper()
	aw1, aw2, bw = a.Name()+"-w1", a.Name()+"-w2", b.Name()+"-w"
	cfg := api.Configuration{ID: m.Reqid("cfg"), Instances: Instances(a, b), Nodes: []api.Node{
		mgmtNode(aw1, a.Name(), api.ClusterRoleWorker),
		mgmtNode(aw2, a.Name(), api.ClusterRoleWorker),
		mgmtNode(bw, b.Name(), api.ClusterRoleWorker),
	}}
	m.deployed(cfg, a, b)
	return aw1, aw2, bw
}

func init() {
	// --- get_instances (M §2.4) ---

	spec(profileMgmt, pairGetInstances, []string{"get-instances.none"}, "answers get_instances with no agent with an empty vector", func(e *Env) {
		m := mgmtOf(e)
		reqid := m.Reqid("gi")
		ExpectResult(m.getInstances(reqid), api.Result{Reqid: reqid, Success: true, Data: broker.Vector()})
	}, fresh())

	spec(profileMgmt, pairGetInstances, []string{"get-instances.known"}, "lists agents that said hello, before any configuration, sorted by name, with the address the controller saw", func(e *Env) {
		m := mgmtOf(e)
		b, a := m.agent("b"), m.agent("a")
		m.waitKnown(a, b)
		reqid := m.Reqid("gi")
		res := m.getInstances(reqid)
		insts, err := m.Profile.DecodeInstances(res.Data)
		Expect(err).NotTo(HaveOccurred())
		var mine []api.Instance
		for _, in := range insts {
			if in.Name == a.Name() || in.Name == b.Name() {
				mine = append(mine, in)
			}
		}
		Expect(sort.SliceIsSorted(insts, func(i, j int) bool { return insts[i].Name < insts[j].Name })).To(BeTrue(), "instances must be sorted by name: %v", insts)
		loop := netip.MustParseAddr("127.0.0.1")
		want := []api.Instance{{Name: a.Name(), Host: loop}, {Name: b.Name(), Host: loop}}
		Expect(mine).To(HaveLen(2))
		for i := range want {
			Expect(mine[i].Equal(want[i])).To(BeTrue(), "listed %v, want %v (agents that dial have no listen port)", mine[i], want[i])
		}
	})

	// --- get_nodes (M §2.4, §2.5) ---

	spec(profileMgmt, pairGetNodes, []string{"get-nodes.no-instances"}, "answers get_nodes with no agent with no instances connected", func(e *Env) {
		m := mgmtOf(e)
		reqid := m.Reqid("gn")
		ExpectResultsInOrder(m.getNodes(reqid), ctrlFailure(reqid, errNoInstances))
	}, fresh())

	spec(profileMgmt, pairGetNodes, []string{"get-nodes.per-agent"}, "asks every connected agent, configured or not, and passes each one's NodeStatus Result through", func(e *Env) {
		m := mgmtOf(e)
		a, b := m.agent("a"), m.agent("b")
		m.waitKnown(a, b)
		m.deployed(m.mgmtConfig(a), a) // b stays unconfigured but connected
		reqid := m.Reqid("gn")
		res := m.getNodes(reqid)
		var want []api.Result
		for _, ag := range []*fakeagent.Agent{a, b} {
			areqid := lastReceived[api.AgentGetNodesRequest](ag, api.KindAgentGetNodesRequest).Reqid
			Expect(areqid).NotTo(Equal(reqid), "agents get their own request ids")
			want = append(want, m.agentAnswer(ag, areqid))
		}
		ExpectResults(res, want...)
		for _, r := range res {
			sts, err := m.Profile.DecodeNodeStatuses(r.Data)
			Expect(err).NotTo(HaveOccurred())
			Expect(sts).NotTo(BeEmpty())
		}
	})

	spec(profileMgmt, pairGetNodes, []string{"get-nodes.timeout"}, "appends a timeout to the answering agents' Results when one agent never answers get_nodes", func(e *Env) {
		m := mgmtOf(e)
		a, b := m.agent("a"), m.agent("b", on(evAgentGetNodes, silent))
		m.waitKnown(a, b)
		reqid := m.Reqid("gn")
		start := time.Now()
		res := m.getNodes(reqid)
		m.expectTimedOutWithin(time.Since(start))
		Expect(b.Count(api.KindAgentGetNodesRequest)).To(BeNumerically(">=", 1), "the silent agent was never asked")
		areqid := lastReceived[api.AgentGetNodesRequest](a, api.KindAgentGetNodesRequest).Reqid
		ExpectResultsInOrder(res, m.agentAnswer(a, areqid), ctrlFailure(reqid, errTimedOut))
	}, labels("timeout", "fault:agent-silent"))

	// --- get_id_value (M §2.4) ---

	spec(profileMgmt, pairGetIDValue, []string{"get-id-value.no-cluster"}, "answers get_id_value before any deployment with no cluster deployed, also after a stage", func(e *Env) {
		m := mgmtOf(e)
		r1 := m.Reqid("gv")
		ExpectResultsInOrder(m.getIDValue(r1, "bits_per_uid"), ctrlFailure(r1, errNoCluster))
		i1 := m.Name("i1")
		m.staged(m.plainConfig([]string{i1}, mgmtNode(m.Name("worker"), i1, api.ClusterRoleWorker)))
		r2 := m.Reqid("gv")
		ExpectResultsInOrder(m.getIDValue(r2, "bits_per_uid"), ctrlFailure(r2, errNoCluster))
	}, fresh())

	spec(profileMgmt, pairGetIDValue, []string{"get-id-value.dispatch", "get-id-value.values"}, "dispatches get_id_value to the agents and answers one value per node", func(e *Env) {
		m := mgmtOf(e)
		a, b := m.agent("a"), m.agent("b")
		m.settle(a, b)
		aw1, aw2, bw := m.twoAgentCluster(a, b)
		reqid := m.Reqid("gv")
		res := m.getIDValue(reqid, clusterNodeID)
		da, db := lastDispatch(a), lastDispatch(b)
		for _, d := range []api.AgentNodeDispatchRequest{da, db} {
			Expect(d.Action).To(Equal([]string{"get_id_value", clusterNodeID}))
			Expect(d.Reqid).NotTo(Equal(reqid), "agents get their own request ids")
			Expect(d.Nodes).To(BeEmpty(), "a request for all nodes dispatches the empty set")
		}
		ExpectResults(res,
			valueResult(da.Reqid, a.Name(), aw1, jsonText(aw1)),
			valueResult(da.Reqid, a.Name(), aw2, jsonText(aw2)),
			valueResult(db.Reqid, b.Name(), bw, jsonText(bw)))
	})

	spec(profileMgmt, pairGetIDValue, []string{"get-id-value.subset"}, "asks and answers only the named nodes", func(e *Env) {
		m := mgmtOf(e)
		a, b := m.agent("a"), m.agent("b")
		m.settle(a, b)
		aw1, _, bw := m.twoAgentCluster(a, b)
		reqid := m.Reqid("gv")
		res := m.getIDValue(reqid, clusterNodeID, aw1, bw)
		da, db := lastDispatch(a), lastDispatch(b)
		for _, d := range []api.AgentNodeDispatchRequest{da, db} {
			Expect(d.Nodes).NotTo(BeEmpty(), "named nodes must not be sent as the empty set (all nodes)")
			Expect([]string{aw1, bw}).To(ContainElements(d.Nodes), "dispatched nodes beyond the named ones")
		}
		ExpectResults(res,
			valueResult(da.Reqid, a.Name(), aw1, jsonText(aw1)),
			valueResult(db.Reqid, b.Name(), bw, jsonText(bw)))
	})

	spec(profileMgmt, pairGetIDValue, []string{"get-id-value.unknown-node", "get-id-value.mixed"}, "answers unknown nodes with unknown cluster node, next to the values of known ones", func(e *Env) {
		m := mgmtOf(e)
		a, b := m.agent("a"), m.agent("b")
		m.settle(a, b)
		aw1, _, _ := m.twoAgentCluster(a, b)
		x, y := m.Name("nosuch"), m.Name("gone")
		r1 := m.Reqid("gv")
		ExpectResults(m.getIDValue(r1, clusterNodeID, x, y), ctrlNodeFailure(r1, x, errUnknownNode), ctrlNodeFailure(r1, y, errUnknownNode))
		r2 := m.Reqid("gv")
		res := m.getIDValue(r2, clusterNodeID, aw1, x)
		ExpectResults(res, ctrlNodeFailure(r2, x, errUnknownNode), valueResult(lastDispatch(a).Reqid, a.Name(), aw1, jsonText(aw1)))
	})

	spec(profileMgmt, pairGetIDValue, []string{"get-id-value.node-error"}, "passes a node's unknown id failure through", func(e *Env) {
		m := mgmtOf(e)
		a := m.agent("a")
		m.settle(a)
		cfg := m.mgmtConfig(a)
		m.deployed(cfg, a)
		reqid := m.Reqid("gv")
		res := m.getIDValue(reqid, "No::such_identifier")
		ExpectResults(res, api.Result{Reqid: lastDispatch(a).Reqid, Instance: a.Name(), Success: false, Error: errUnknownID, Node: api.Some(a.Name() + "-w")})
	})

	spec(profileMgmt, pairGetIDValue, []string{"get-id-value.timeout"}, "appends a timeout to the values when one agent never answers", func(e *Env) {
		m := mgmtOf(e)
		a, b := m.agent("a"), m.agent("b", on(evAgentDispatch, silent))
		m.settle(a, b)
		aw1, aw2, _ := m.twoAgentCluster(a, b)
		reqid := m.Reqid("gv")
		start := time.Now()
		res := m.getIDValue(reqid, clusterNodeID)
		m.expectTimedOutWithin(time.Since(start))
		Expect(res).NotTo(BeEmpty())
		ExpectResultsInOrder(res[len(res)-1:], ctrlFailure(reqid, errTimedOut))
		da := lastDispatch(a)
		ExpectResults(res[:len(res)-1], valueResult(da.Reqid, a.Name(), aw1, jsonText(aw1)), valueResult(da.Reqid, a.Name(), aw2, jsonText(aw2)))
	}, labels("timeout", "fault:agent-silent"))

	// --- restart (M §2.4) ---

	spec(profileMgmt, pairRestart, []string{"restart.no-instances"}, "answers restart with no agent with no instances connected", func(e *Env) {
		m := mgmtOf(e)
		reqid := m.Reqid("rs")
		ExpectResultsInOrder(m.restart(reqid), ctrlFailure(reqid, errNoInstances))
	}, fresh())

	spec(profileMgmt, pairRestart, []string{"restart.no-deployment"}, "answers restart with agents but no deployment with no active cluster deployment", func(e *Env) {
		m := mgmtOf(e)
		a := m.agent("a")
		m.waitKnown(a)
		reqid := m.Reqid("rs")
		ExpectResultsInOrder(m.restart(reqid), ctrlFailure(reqid, errNoActiveDeployment))
	}, fresh())

	spec(profileMgmt, pairRestart, []string{"restart.unknown-node"}, "answers restart of an unknown node with unknown cluster node", func(e *Env) {
		m := mgmtOf(e)
		a, b := m.agent("a"), m.agent("b")
		m.waitKnown(a, b)
		m.twoAgentCluster(a, b)
		x := m.Name("nosuch")
		reqid := m.Reqid("rs")
		ExpectResults(m.restart(reqid, x), ctrlNodeFailure(reqid, x, errUnknownNode))
	})

	spec(profileMgmt, pairRestart, []string{"restart.nodes"}, "restarts all nodes for the empty set and only the named ones otherwise, one Result per node", func(e *Env) {
		m := mgmtOf(e)
		a, b := m.agent("a"), m.agent("b")
		m.waitKnown(a, b)
		aw1, aw2, bw := m.twoAgentCluster(a, b)
		r1 := m.Reqid("rs")
		res := m.restart(r1)
		ra, rb := lastRestart(a), lastRestart(b)
		Expect(ra.Nodes).To(BeEmpty(), "a restart of all nodes sends the empty set")
		ExpectResults(res, nodeSuccess(ra.Reqid, a.Name(), aw1), nodeSuccess(ra.Reqid, a.Name(), aw2), nodeSuccess(rb.Reqid, b.Name(), bw))
		r2 := m.Reqid("rs")
		res = m.restart(r2, aw2)
		ra = lastRestart(a)
		Expect(ra.Nodes).To(ContainElement(aw2))
		ExpectResults(res, nodeSuccess(ra.Reqid, a.Name(), aw2))
	})

	spec(profileMgmt, pairRestart, []string{"restart.node-failure"}, "reports a node the agent could not restart", func(e *Env) {
		m := mgmtOf(e)
		a := m.agent("a")
		b := m.agent("b")
		m.waitKnown(a, b)
		aw1, aw2, _ := m.twoAgentCluster(a, b)
		Expect(a.SetBehaviour(fakeagent.Behaviour{}.With(evAgentRestart, fakeagent.Fail(aw1, "")))).To(Succeed())
		reqid := m.Reqid("rs")
		res := m.restart(reqid, aw1, aw2)
		ra := lastRestart(a)
		ExpectResults(res,
			api.Result{Reqid: ra.Reqid, Instance: a.Name(), Success: false, Error: "could not restart node " + aw1, Node: api.Some(aw1)},
			nodeSuccess(ra.Reqid, a.Name(), aw2))
	}, labels("fault:agent-fails"))

	spec(profileMgmt, pairRestart, []string{"restart.timeout"}, "appends a timeout when one agent never answers restart", func(e *Env) {
		m := mgmtOf(e)
		a, b := m.agent("a"), m.agent("b", on(evAgentRestart, silent))
		m.waitKnown(a, b)
		aw1, aw2, _ := m.twoAgentCluster(a, b)
		reqid := m.Reqid("rs")
		start := time.Now()
		res := m.restart(reqid)
		m.expectTimedOutWithin(time.Since(start))
		Expect(res).NotTo(BeEmpty())
		ExpectResultsInOrder(res[len(res)-1:], ctrlFailure(reqid, errTimedOut))
		ra := lastRestart(a)
		ExpectResults(res[:len(res)-1], nodeSuccess(ra.Reqid, a.Name(), aw1), nodeSuccess(ra.Reqid, a.Name(), aw2))
	}, labels("timeout", "fault:agent-silent"))

	// --- test_timeout (M §2.4, O §3) ---

	spec(profileMgmt, pairTestTimeout, []string{"test-timeout.stateless"}, "never answers test_timeout without state", func(e *Env) {
		m := mgmtOf(e)
		_, latest := m.mgmtTimeoutWindow()
		ctx, cancel := m.within(latest + m.Cfg.Timeouts.Consistency)
		defer cancel()
		_, err := m.Client().TestTimeout(ctx, false, withReqid(m.Reqid("tt")))
		ExpectNoReply(err, "test_timeout_request(R, F)")
	}, labels("timeout"))

	spec(profileMgmt, pairTestTimeout, []string{"test-timeout.stateful", "test-timeout.window"}, "answers a stateful test_timeout with the timeout Result within the expiry window", func(e *Env) {
		m := mgmtOf(e)
		reqid := m.Reqid("tt")
		start := time.Now()
		res := m.testTimeout(reqid)
		m.expectTimedOutWithin(time.Since(start))
		ExpectResult(res, ctrlFailure(reqid, errTimedOut))
	}, labels("timeout"))
}
