package suites

import (
	"net/netip"
	"sort"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive
	. "github.com/onsi/gomega"    //nolint:revive

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
	"github.com/zcc-harness/zcc/fakeagent"
)

// nodeNames lists a configuration's node names, sorted.
func nodeNames(cfg api.Configuration) []string {
	out := make([]string, len(cfg.Nodes))
	for i, n := range cfg.Nodes {
		out[i] = n.Name
	}
	sort.Strings(out)
	return out
}

// expectDeployedTo checks the configuration an agent was sent: the staged
// one's id and nodes, not forced (M §2.5).
func expectDeployedTo(a *fakeagent.Agent, cfg api.Configuration) api.AgentDeployRequest {
	GinkgoHelper()
	req := lastReceived[api.AgentDeployRequest](a, api.KindAgentDeployRequest)
	Expect(req.Config.ID).To(Equal(cfg.ID), "agent %s was sent another configuration", a.Name())
	Expect(nodeNames(req.Config)).To(Equal(nodeNames(cfg)), "agent %s gets the whole configuration's nodes", a.Name())
	Expect(req.Force).To(BeFalse(), "a client deploy is not forced")
	return req
}

// expectHostsFilled checks a deployed configuration's instances against
// the staged ones: a connecting instance (0.0.0.0) gets the address the
// controller knows the agent by, when it lists the agent in
// get_instances, and otherwise stays as staged (a real Zeek does not know
// WebSocket agents, O §2.6). The agents must have been known before the
// stage (settle).
func (m *mgmtEnv) expectHostsFilled(staged, deployed api.Configuration) {
	GinkgoHelper()
	known := map[string]api.Instance{}
	for _, in := range m.instancesIn(m.getInstances(m.Reqid("gi"))) {
		known[in.Name] = in
	}
	got := map[string]api.Instance{}
	for _, in := range deployed.Instances {
		got[in.Name] = in
	}
	Expect(got).To(HaveLen(len(staged.Instances)), "the deployed configuration has other instances than the staged one")
	for _, want := range staged.Instances {
		in, ok := got[want.Name]
		Expect(ok).To(BeTrue(), "instance %s missing from the deployed configuration", want.Name)
		if k, isKnown := known[want.Name]; isKnown && want.Host == netip.IPv4Unspecified() {
			want.Host = k.Host
		}
		Expect(in.Equal(want)).To(BeTrue(), "deployed instance %v, want %v", in, want)
	}
}

func init() {
	// --- deploy (M §2.4, §2.6, §2.8) ---

	spec(profileMgmt, pairDeploy, []string{"deploy.nothing-staged"}, "answers deploy with nothing staged with no configuration available to deploy", func(e *Env) {
		m := mgmtOf(e)
		reqid := m.Reqid("deploy")
		ExpectResultsInOrder(m.deploy(reqid), ctrlFailure(reqid, errNothingToDeploy))
	}, fresh())

	spec(profileMgmt, pairDeploy, []string{"deploy.ok", "deploy.agent-reqid", "deploy.welcome-first", "get-config.deployed"}, "deploys to every agent after welcoming it and answers per-node Results under the agents' reqids, then the config id", func(e *Env) {
		m := mgmtOf(e)
		// The agents hold their welcome answers back, so a deploy_request
		// that does not wait for them shows in the transcript times.
		hold := m.Cfg.Timeouts.ControllerRequest / 4
		a, b := m.agent("a", on(evAgentWelcome, fakeagent.Delayed(hold))), m.agent("b", on(evAgentWelcome, fakeagent.Delayed(hold)))
		m.settle(a, b)
		cfg := m.mgmtConfig(a, b)
		cfg.Nodes = append(cfg.Nodes, mgmtNode(a.Name()+"-x", a.Name(), api.ClusterRoleWorker))
		m.staged(cfg)
		reqid := m.Reqid("deploy")
		res := m.deploy(reqid)
		Expect(res).NotTo(BeEmpty())
		ExpectResultsInOrder(res[len(res)-1:], configIDResult(reqid, cfg.ID))
		for _, ag := range []*fakeagent.Agent{a, b} {
			req := expectDeployedTo(ag, cfg)
			Expect(req.Reqid).NotTo(Equal(reqid), "agents get their own request ids, not the client's")
			welcomes := ag.Received(api.KindAgentWelcomeRequest)
			Expect(welcomes).NotTo(BeEmpty(), "agent %s was deployed to without a welcome", ag.Name())
			deploys := ag.Received(api.KindAgentDeployRequest)
			Expect(deploys[0].Time.Sub(welcomes[0].Time)).To(BeNumerically(">=", hold), "agent %s got deploy_request before it answered its welcome (held back %s)", ag.Name(), hold)
		}
		Expect(lastDeployReqid(a)).NotTo(Equal(lastDeployReqid(b)), "each agent's deploy_request has its own id")
		ExpectResults(res[:len(res)-1], m.nodeSuccesses(cfg, a, b)...)

		deployed := m.configIn(m.getConfig(m.Reqid("gc"), true))
		Expect(deployed.ID).To(Equal(cfg.ID), "the deployed configuration keeps the staged one's id")
		Expect(nodeNames(deployed)).To(Equal(nodeNames(cfg)))
		m.expectHostsFilled(cfg, deployed)
		staged := m.configIn(m.getConfig(m.Reqid("gc"), false))
		Expect(staged.Equal(cfg)).To(BeTrue(), "deploying changed the staged configuration")
	})

	spec(profileMgmt, pairDeploy, []string{"get-config.ports-assigned"}, "assigns Broker ports from 2200 by instance, then role manager, logger, proxy, then name, counting across instances and skipping explicit ports", func(e *Env) {
		m := mgmtOf(e)
		a, b := m.agent("a"), m.agent("b")
		m.settle(a, b)
		cfg := api.Configuration{ID: m.Reqid("cfg"), Instances: Instances(a, b)}
		bProxy, aProxy := m.Name("bproxy"), m.Name("aproxy")
		mgr, lgr, fixed, wrk := m.Name("manager"), m.Name("logger"), m.Name("logger2"), m.Name("worker")
		cfg.Nodes = []api.Node{
			mgmtNode(wrk, a.Name(), api.ClusterRoleWorker),
			mgmtNode(bProxy, b.Name(), api.ClusterRoleProxy),
			mgmtNode(aProxy, a.Name(), api.ClusterRoleProxy),
			mgmtNode(lgr, a.Name(), api.ClusterRoleLogger),
			withPort(mgmtNode(fixed, b.Name(), api.ClusterRoleLogger), 2201), // taken: a's proxy skips it
			mgmtNode(mgr, b.Name(), api.ClusterRoleManager),
		}
		m.deployed(cfg, a, b)
		// Zeek 7+ sorts the port-less managers, loggers and proxies by
		// instance, then role, then name (config_nodes_compare), count on
		// across instances and skip ports already taken: a's logger and
		// proxy, then b's manager and proxy.
		want := map[string]string{
			lgr: "2200/tcp", aProxy: "2202/tcp", mgr: "2203/tcp", bProxy: "2204/tcp",
			fixed: "2201/tcp", wrk: "none",
		}
		deployed := m.configIn(m.getConfig(m.Reqid("gc"), true))
		for name, port := range want {
			Expect(portOf(nodeByName(deployed, name))).To(Equal(port), "deployed port of %s", name)
		}
		for _, ag := range []*fakeagent.Agent{a, b} {
			pushed := lastReceived[api.AgentDeployRequest](ag, api.KindAgentDeployRequest).Config
			for name, port := range want {
				Expect(portOf(nodeByName(pushed, name))).To(Equal(port), "port of %s in the configuration agent %s was sent", name, ag.Name())
			}
		}
		staged := m.configIn(m.getConfig(m.Reqid("gc"), false))
		Expect(portOf(nodeByName(staged, mgr))).To(Equal("none"), "the staged configuration keeps its unset ports")
	})

	spec(profileMgmt, pairDeploy, []string{"deploy.agent-only"}, "deploys instances without nodes with the agent's own Result and the config id", func(e *Env) {
		m := mgmtOf(e)
		a := m.agent("a")
		m.settle(a)
		cfg := api.Configuration{ID: m.Reqid("cfg"), Instances: Instances(a)}
		m.staged(cfg)
		reqid := m.Reqid("deploy")
		res := m.deploy(reqid)
		ExpectResultsInOrder(res, api.Result{Reqid: lastDeployReqid(a), Instance: a.Name(), Success: true}, configIDResult(reqid, cfg.ID))
	})

	spec(profileMgmt, pairDeploy, []string{"deploy.empty"}, "deploys a configuration without instances at once with only the config id", func(e *Env) {
		m := mgmtOf(e)
		cfg := api.Configuration{ID: m.Reqid("empty")}
		m.staged(cfg)
		reqid := m.Reqid("deploy")
		start := time.Now()
		ExpectResultsInOrder(m.deploy(reqid), configIDResult(reqid, cfg.ID))
		Expect(time.Since(start)).To(BeNumerically("<", m.Cfg.Timeouts.ControllerRequest), "an empty deployment waits for nobody")
		deployed := m.configIn(m.getConfig(m.Reqid("gc"), true))
		Expect(deployed.ID).To(Equal(cfg.ID))
	})

	spec(profileMgmt, pairDeploy, []string{"deploy.node-failure"}, "reports a failed node with its NodeOutputs and still ends with the config id", func(e *Env) {
		m := mgmtOf(e)
		bad := m.Name("a") + "-w"
		// Stderr with an ANSI escape: Broker would send the control byte
		// raw (M §1.5); whatever the controller sends must decode.
		stderr := "error in site/local.zeek, line 3: \x1b[31mboom\x1b[0m\n"
		a := m.agent("a", on(evAgentDeploy, fakeagent.Rule{Action: fakeagent.ActionFail, Node: bad, Stdout: "starting\n", Stderr: stderr}))
		b := m.agent("b")
		m.settle(a, b)
		cfg := m.mgmtConfig(a, b)
		cfg.Nodes = append(cfg.Nodes, mgmtNode(m.Name("a")+"-x", a.Name(), api.ClusterRoleWorker))
		m.staged(cfg)
		reqid := m.Reqid("deploy")
		res := m.deploy(reqid)
		Expect(res).NotTo(BeEmpty())
		ExpectResultsInOrder(res[len(res)-1:], configIDResult(reqid, cfg.ID))
		outputs, err := m.Profile.NodeOutputsValue(api.NodeOutputs{Stdout: "starting\n", Stderr: stderr})
		Expect(err).NotTo(HaveOccurred())
		aid := lastDeployReqid(a)
		ExpectResults(res[:len(res)-1],
			api.Result{Reqid: aid, Instance: a.Name(), Success: false, Data: outputs, Node: api.Some(bad)},
			nodeSuccess(aid, a.Name(), m.Name("a")+"-x"),
			nodeSuccess(lastDeployReqid(b), b.Name(), b.Name()+"-w"))
	}, labels("fault:agent-fails"))

	spec(profileMgmt, pairDeploy, []string{"deploy.agent-failure"}, "passes an agent's own failure Result through and ends with the config id", func(e *Env) {
		m := mgmtOf(e)
		a := m.agent("a", on(evAgentDeploy, fakeagent.Rule{Action: fakeagent.ActionFailNoNode, Error: errTimedOut}))
		m.settle(a)
		cfg := m.mgmtConfig(a)
		m.staged(cfg)
		reqid := m.Reqid("deploy")
		res := m.deploy(reqid)
		ExpectResultsInOrder(res,
			api.Result{Reqid: lastDeployReqid(a), Instance: a.Name(), Success: false, Error: errTimedOut},
			configIDResult(reqid, cfg.ID))
	}, labels("fault:agent-fails"))

	spec(profileMgmt, pairDeploy, []string{"deploy.timeout"}, "answers a deploy an agent never answers with the collected Results and a timeout, once, and no config id", func(e *Env) {
		m := mgmtOf(e)
		a := m.agent("a")
		b := m.agent("b", on(evAgentDeploy, silent))
		m.settle(a, b)
		cfg := m.mgmtConfig(a, b)
		m.staged(cfg)
		reqid := m.Reqid("deploy")
		out := m.await(m.deployAsync(m.Client(), reqid))
		m.expectShape("deploy_request", api.KindDeployResponse, reqid)
		Expect(b.Count(api.KindAgentDeployRequest)).To(BeNumerically(">=", 1), "the silent agent was never asked")
		ExpectResultsInOrder(out.results, nodeSuccess(lastDeployReqid(a), a.Name(), a.Name()+"-w"), ctrlFailure(reqid, errTimedOut))
		m.expectTimedOutWithin(out.after)
		m.expectExactlyOne(m.w, api.KindDeployResponse, reqid)
	}, labels("timeout", "fault:agent-silent"))

	spec(profileMgmt, pairDeploy, []string{"deploy.pending", "deploy.pending-clears"}, "rejects a deploy at once while one is pending, and accepts the next after the timeout", func(e *Env) {
		m := mgmtOf(e)
		a := m.agent("a", on(evAgentDeploy, fakeagent.Sequence(silent.Times(1))))
		m.settle(a)
		cfg := m.mgmtConfig(a)
		m.staged(cfg)
		r1 := m.Reqid("first")
		first := m.deployAsync(m.Client(), r1)
		ctx, cancel := m.responseCtx()
		Expect(waitReceived(ctx, a, api.KindAgentDeployRequest, 1)).To(Succeed(), "the agent never got the first deployment")
		cancel()
		r2 := m.Reqid("second")
		start := time.Now()
		ExpectResultsInOrder(m.deployOn(m.NewClient(), r2), ctrlFailure(r2, errStillPending(r1)))
		Expect(time.Since(start)).To(BeNumerically("<", m.Cfg.Timeouts.ControllerRequest), "the rejection must be immediate")
		ExpectResultsInOrder(m.await(first).results, ctrlFailure(r1, errTimedOut))

		next := m.mgmtConfig(a)
		m.staged(next)
		r3 := m.Reqid("third")
		res := m.deploy(r3)
		ExpectResultsInOrder(res, nodeSuccess(lastDeployReqid(a), a.Name(), a.Name()+"-w"), configIDResult(r3, next.ID))
	}, labels("timeout"))

	spec(profileMgmt, pairDeploy, []string{"deploy.drop-standby"}, "sends standby to an instance the next deployment drops", func(e *Env) {
		m := mgmtOf(e)
		a, b := m.agent("a"), m.agent("b")
		m.settle(a, b)
		m.deployed(m.mgmtConfig(a, b), a, b)
		Expect(b.Count(api.KindAgentStandbyRequest)).To(Equal(0), "standby before the instance was dropped")
		m.deployed(m.mgmtConfig(a), a)
		m.waitStandby(b)
		Expect(a.Count(api.KindAgentStandbyRequest)).To(Equal(0), "the instance that stays must not get standby")
	})

	spec(profileMgmt, pairDeploy, []string{"deploy.late-agent"}, "welcomes and configures an agent that connects after the deploy request", func(e *Env) {
		m := mgmtOf(e)
		a := m.agent("a")
		m.settle(a)
		late := m.Name("late")
		cfg := m.mgmtConfig(a)
		cfg.Instances = append(cfg.Instances, connecting(late))
		cfg.Nodes = append(cfg.Nodes, mgmtNode(late+"-w", late, api.ClusterRoleWorker))
		m.staged(cfg)
		reqid := m.Reqid("deploy")
		pending := m.deployAsync(m.Client(), reqid)
		m.WaitWelcomed(a)
		l := m.agent("late")
		out := m.await(pending)
		m.expectShape("deploy_request", api.KindDeployResponse, reqid)
		Expect(out.results).NotTo(BeEmpty())
		ExpectResultsInOrder(out.results[len(out.results)-1:], configIDResult(reqid, cfg.ID))
		ExpectResults(out.results[:len(out.results)-1], m.nodeSuccesses(cfg, a, l)...)
		expectDeployedTo(l, cfg)
	})

	spec(profileMgmt, pairDeploy, []string{"deploy.exactly-once"}, "answers a deploy exactly once when an agent replies twice", func(e *Env) {
		m := mgmtOf(e)
		a := m.agent("a", on(evAgentDeploy, fakeagent.Do(fakeagent.ActionTwice)))
		m.settle(a)
		cfg := m.mgmtConfig(a)
		m.staged(cfg)
		reqid := m.Reqid("deploy")
		ExpectResultsInOrder(m.deploy(reqid), nodeSuccess(lastDeployReqid(a), a.Name(), a.Name()+"-w"), configIDResult(reqid, cfg.ID))
		m.expectExactlyOne(m.w, api.KindDeployResponse, reqid)
	}, labels("fault:duplicate-reply"))

	// --- what zeek-client reads (M §4.7) ---

	spec(profileMgmt, pairDeploy, []string{"shape.response-event", "shape.results", "shape.records", "shape.deploy-config-id", "get-config.record-shape"}, "answers a whole zeek-client session in the shapes zeek-client reads", func(e *Env) {
		m := mgmtOf(e)
		a := m.agent("a")
		m.settle(a)
		in := a.Name()
		cfg := api.Configuration{ID: m.Reqid("cfg"), Instances: Instances(a), Nodes: []api.Node{
			mgmtNode(m.Name("manager"), in, api.ClusterRoleManager),
			mgmtNode(m.Name("logger"), in, api.ClusterRoleLogger),
			withPort(mgmtNode(m.Name("proxy"), in, api.ClusterRoleProxy), 47020),
			{Name: m.Name("worker"), Instance: in, Role: api.ClusterRoleWorker, State: api.StateRunning,
				Interface: api.Some("eth0"), CPUAffinity: api.Some(int64(2)), Scripts: api.Some([]string{"local.zeek"}),
				Env: map[string]string{"ZEEK_DEBUG": "1"}, MetricsPort: api.Some(broker.TCPPort(9100))},
		}}
		// Every call checks its response's shape on the raw event.
		m.getInstances(m.Reqid("gi"))
		m.getConfig(m.Reqid("gc"), false)
		m.deployed(cfg, a)
		m.getConfig(m.Reqid("gc"), false)
		m.getConfig(m.Reqid("gc"), true)
		m.getIDValue(m.Reqid("gv"), "bits_per_uid")
		m.getIDValue(m.Reqid("gv"), "Cluster::node", m.Name("worker"), m.Name("nosuch"))
		m.stage(m.Reqid("bad"), m.plainConfig([]string{in}, mgmtNode(in, in, api.ClusterRoleManager)))
		m.testTimeout(m.Reqid("tt"))
	})
}
