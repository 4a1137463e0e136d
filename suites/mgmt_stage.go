package suites

import (
	"fmt"
	"net/netip"

	. "github.com/onsi/ginkgo/v2" //nolint:revive
	. "github.com/onsi/gomega"    //nolint:revive

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// Validation errors of stage_configuration_request, verbatim (M §2.4,
// O §1 "stage-config errors").
func errDupInstance(i string) string { return fmt.Sprintf("multiple instances named '%s'", i) }
func errDupNode(n string) string     { return fmt.Sprintf("multiple nodes named '%s'", n) }
func errCollide(names string) string { return "node and instance names collide: " + names }
func errUndeclared(n, i string) string {
	return fmt.Sprintf("node '%s' has undeclared instance name '%s'", n, i)
}
func errAgentPort(n string, p uint16, i string) string {
	return fmt.Sprintf("node '%s' port %d/tcp conflicts with agent port on instance '%s'", n, p, i)
}
func errControllerPort(n string, p uint16) string {
	return fmt.Sprintf("node '%s' port %d/tcp conflicts with controller port", n, p)
}
func errSamePort(i string, p uint16) string {
	return fmt.Sprintf("multiple nodes on instance '%s' using port %d/tcp", i, p)
}
func errAutoAssignOff(nodes string) string {
	return "Broker port auto-assignment disabled but nodes " + nodes + " lack ports"
}

// expectRejected stages cfg and expects exactly the errors, in this
// (sorted) order, each as (R, F, none, none, error, none).
func (m *mgmtEnv) expectRejected(cfg api.Configuration, errs ...string) {
	GinkgoHelper()
	reqid := m.Reqid("bad")
	want := make([]api.Result, len(errs))
	for i, e := range errs {
		want[i] = ctrlFailure(reqid, e)
	}
	ExpectResultsInOrder(m.stage(reqid, cfg), want...)
}

// plainConfig is a configuration without agents behind it: instances that
// connect (0.0.0.0) and the given nodes.
func (m *mgmtEnv) plainConfig(instances []string, nodes ...api.Node) api.Configuration {
	cfg := api.Configuration{ID: m.Reqid("cfg")}
	for _, in := range instances {
		cfg.Instances = append(cfg.Instances, connecting(in))
	}
	cfg.Nodes = nodes
	return cfg
}

func init() {
	// --- stage_configuration (M §2.4) ---

	spec(profileMgmt, pairStage, []string{"stage.valid", "get-config.staged"}, "accepts a valid configuration with its config id and returns it as staged, exactly as sent", func(e *Env) {
		m := mgmtOf(e)
		i1 := m.Name("i1")
		cfg := m.plainConfig([]string{i1},
			mgmtNode(m.Name("manager"), i1, api.ClusterRoleManager),
			mgmtNode(m.Name("logger"), i1, api.ClusterRoleLogger),
			withPort(mgmtNode(m.Name("proxy"), i1, api.ClusterRoleProxy), 47301),
			mgmtNode(m.Name("worker"), i1, api.ClusterRoleWorker))
		w := cfg.Nodes[3]
		w.Interface = api.Some("eth0")
		w.CPUAffinity = api.Some(int64(3))
		w.Scripts = api.Some([]string{"local.zeek", "site/extra.zeek"})
		w.Env = map[string]string{"GREETING": "hello world"}
		cfg.Nodes[3] = w
		reqid := m.Reqid("stage")
		ExpectResultsInOrder(m.stage(reqid, cfg), configIDResult(reqid, cfg.ID))
		gc := m.Reqid("gc")
		res := m.getConfig(gc, false)
		data := res.Data
		res.Data = broker.None()
		ExpectResult(res, api.Result{Reqid: gc, Success: true})
		res.Data = data
		got := m.configIn(res)
		Expect(got.Equal(cfg)).To(BeTrue(), "the staged configuration must come back exactly as sent\ngot  %+v\nwant %+v", got, cfg)
	})

	spec(profileMgmt, pairStage, []string{"stage.empty"}, "accepts a configuration without instances and nodes", func(e *Env) {
		m := mgmtOf(e)
		cfg := api.Configuration{ID: m.Reqid("empty")}
		reqid := m.Reqid("stage")
		ExpectResultsInOrder(m.stage(reqid, cfg), configIDResult(reqid, cfg.ID))
		got := m.configIn(m.getConfig(m.Reqid("gc"), false))
		Expect(got.ID).To(Equal(cfg.ID))
		Expect(got.Instances).To(BeEmpty())
		Expect(got.Nodes).To(BeEmpty())
	})

	spec(profileMgmt, pairStage, []string{"stage.duplicate-instance"}, "rejects two instances of one name with multiple instances named", func(e *Env) {
		m := mgmtOf(e)
		i1 := m.Name("i1")
		cfg := m.plainConfig([]string{i1})
		// Different hosts, so the set holds both records (O: only raw
		// frames can send this; an INI cannot).
		cfg.Instances = append(cfg.Instances, api.Instance{Name: i1, Host: netip.MustParseAddr("127.0.0.1")})
		m.expectRejected(cfg, errDupInstance(i1))
	})

	spec(profileMgmt, pairStage, []string{"stage.duplicate-node"}, "rejects two nodes of one name with multiple nodes named", func(e *Env) {
		m := mgmtOf(e)
		i1, n := m.Name("i1"), m.Name("manager")
		m.expectRejected(m.plainConfig([]string{i1},
			mgmtNode(n, i1, api.ClusterRoleManager),
			mgmtNode(n, i1, api.ClusterRoleLogger)), errDupNode(n))
	})

	spec(profileMgmt, pairStage, []string{"stage.name-collision"}, "rejects a node named like an instance with node and instance names collide", func(e *Env) {
		m := mgmtOf(e)
		i1 := m.Name("i1")
		m.expectRejected(m.plainConfig([]string{i1}, mgmtNode(i1, i1, api.ClusterRoleManager)), errCollide(i1))
	})

	spec(profileMgmt, pairStage, []string{"stage.undeclared-instance"}, "rejects each node on an undeclared instance, one error per node", func(e *Env) {
		m := mgmtOf(e)
		i1, i7, i8 := m.Name("i1"), m.Name("i7"), m.Name("i8")
		a, b := m.Name("alpha"), m.Name("beta")
		m.expectRejected(m.plainConfig([]string{i1},
			mgmtNode(m.Name("manager"), i1, api.ClusterRoleManager),
			mgmtNode(a, i7, api.ClusterRoleLogger),
			mgmtNode(b, i8, api.ClusterRoleProxy)),
			errUndeclared(a, i7), errUndeclared(b, i8))
	})

	spec(profileMgmt, pairStage, []string{"stage.agent-port"}, "rejects a node on its instance's listen port, and accepts that port on an instance that connects", func(e *Env) {
		m := mgmtOf(e)
		i1, i2, n := m.Name("i1"), m.Name("i2"), m.Name("manager")
		cfg := api.Configuration{
			ID:        m.Reqid("cfg"),
			Instances: []api.Instance{{Name: i1, Host: netip.MustParseAddr("127.0.0.1"), ListenPort: api.Some(broker.TCPPort(47151))}},
			Nodes:     []api.Node{withPort(mgmtNode(n, i1, api.ClusterRoleManager), 47151)},
		}
		m.expectRejected(cfg, errAgentPort(n, 47151, i1))
		// The check only applies when the instance declares a listen port.
		ok := m.plainConfig([]string{i2}, withPort(mgmtNode(n, i2, api.ClusterRoleManager), 2151))
		m.staged(ok)
	})

	spec(profileMgmt, pairStage, []string{"stage.controller-port"}, "rejects a node on the controller's Broker port 2150", func(e *Env) {
		m := mgmtOf(e)
		i1, n := m.Name("i1"), m.Name("manager")
		m.expectRejected(m.plainConfig([]string{i1}, withPort(mgmtNode(n, i1, api.ClusterRoleManager), mgmtControllerPort)),
			errControllerPort(n, mgmtControllerPort))
	})

	spec(profileMgmt, pairStage, []string{"stage.same-port"}, "rejects two nodes of one instance on one port, and accepts the port on different instances", func(e *Env) {
		m := mgmtOf(e)
		i1, i2 := m.Name("i1"), m.Name("i2")
		m.expectRejected(m.plainConfig([]string{i1},
			withPort(mgmtNode(m.Name("manager"), i1, api.ClusterRoleManager), 47000),
			withPort(mgmtNode(m.Name("logger"), i1, api.ClusterRoleLogger), 47000)),
			errSamePort(i1, 47000))
		m.staged(m.plainConfig([]string{i1, i2},
			withPort(mgmtNode(m.Name("manager"), i1, api.ClusterRoleManager), 47000),
			withPort(mgmtNode(m.Name("logger"), i2, api.ClusterRoleLogger), 47000)))
	})

	spec(profileMgmt, pairStage, []string{"stage.errors-sorted"}, "answers several problems with one Result each, sorted by error string", func(e *Env) {
		m := mgmtOf(e)
		// The names make the sorted order differ from the order of the
		// checks and of the nodes in the set.
		i1, i7 := m.Name("i1"), m.Name("i7")
		zulu, alpha, mike := m.Name("zulu"), m.Name("alpha"), m.Name("mike")
		m.expectRejected(m.plainConfig([]string{i1},
			withPort(mgmtNode(zulu, i1, api.ClusterRoleManager), mgmtControllerPort),
			withPort(mgmtNode(alpha, i7, api.ClusterRoleLogger), mgmtControllerPort),
			mgmtNode(mike, i7, api.ClusterRoleProxy)),
			errUndeclared(alpha, i7),
			errControllerPort(alpha, mgmtControllerPort),
			errUndeclared(mike, i7),
			errControllerPort(zulu, mgmtControllerPort))
	})

	spec(profileMgmt, pairStage, []string{"stage.failure-keeps-staged", "stage.replaces-staged"}, "keeps the staged configuration when one is rejected and replaces it with the next valid one", func(e *Env) {
		m := mgmtOf(e)
		i1 := m.Name("i1")
		first := m.plainConfig([]string{i1}, mgmtNode(m.Name("manager"), i1, api.ClusterRoleManager))
		m.staged(first)
		bad := m.plainConfig([]string{i1}, mgmtNode(i1, i1, api.ClusterRoleManager))
		m.expectRejected(bad, errCollide(i1))
		got := m.configIn(m.getConfig(m.Reqid("gc"), false))
		Expect(got.Equal(first)).To(BeTrue(), "a rejected configuration replaced the staged one: got %s, want %s", got.ID, first.ID)
		second := m.plainConfig([]string{i1}, mgmtNode(m.Name("logger"), i1, api.ClusterRoleLogger))
		m.staged(second)
		got = m.configIn(m.getConfig(m.Reqid("gc"), false))
		Expect(got.Equal(second)).To(BeTrue(), "the newer configuration must be staged: got %s, want %s", got.ID, second.ID)
	})

	spec(profileMgmt, pairStage, []string{"stage.autoassign-disabled"}, "rejects port-less nodes when Broker port auto-assignment is off, naming them sorted", func(e *Env) {
		e.ensureNoAutoAssign()
		m := mgmtOf(e)
		i1 := m.Name("i1")
		mgr, lgr := m.Name("manager"), m.Name("logger")
		m.expectRejected(m.plainConfig([]string{i1},
			mgmtNode(mgr, i1, api.ClusterRoleManager),
			mgmtNode(lgr, i1, api.ClusterRoleLogger),
			withPort(mgmtNode(m.Name("proxy"), i1, api.ClusterRoleProxy), 47002),
			mgmtNode(m.Name("worker"), i1, api.ClusterRoleWorker)),
			errAutoAssignOff(lgr+", "+mgr))
		// Zeek 8.1 checks it with the other problems and sorts them all
		// (O: stage-config--invalid-autoassign-disabled-multi).
		i7, alpha := m.Name("i7"), m.Name("alpha")
		m.expectRejected(m.plainConfig([]string{i1},
			withPort(mgmtNode(mgr, i1, api.ClusterRoleManager), mgmtControllerPort),
			mgmtNode(alpha, i7, api.ClusterRoleProxy)),
			errAutoAssignOff(alpha),
			errUndeclared(alpha, i7),
			errControllerPort(mgr, mgmtControllerPort))
	}, fresh())

	// --- get_configuration (M §2.4) ---

	spec(profileMgmt, pairGetConfig, []string{"get-config.staged-none", "get-config.deployed-none"}, "answers get_configuration before any upload with the two no-configuration errors, and deployed still fails after a stage", func(e *Env) {
		m := mgmtOf(e)
		r1, r2 := m.Reqid("gc"), m.Reqid("gc")
		ExpectResult(m.getConfig(r1, false), ctrlFailure(r1, errNoStaged))
		ExpectResult(m.getConfig(r2, true), ctrlFailure(r2, errNoDeployed))
		i1 := m.Name("i1")
		m.staged(m.plainConfig([]string{i1}, mgmtNode(m.Name("manager"), i1, api.ClusterRoleManager)))
		r3 := m.Reqid("gc")
		ExpectResult(m.getConfig(r3, true), ctrlFailure(r3, errNoDeployed))
	}, fresh())
}

// ensureNoAutoAssign gives the spec a controller with Broker port
// auto-assignment off (Zeek's auto_assign_broker_ports=F): an in-process
// controller is replaced before the spec dials it; other targets' setup
// is fixed by whoever runs them, so the spec is Skipped there.
func (e *Env) ensureNoAutoAssign() {
	GinkgoHelper()
	in, ok := e.target.(*inprocTarget)
	if !ok {
		Skip("needs a controller with Broker port auto-assignment off (auto_assign_broker_ports=F); the " + e.target.Name() + " target's setup is fixed by whoever runs it")
	}
	e.mu.Lock()
	used := e.client != nil || len(e.agents) > 0 || len(e.watches) > 0
	e.mu.Unlock()
	if used {
		infraError("restart the controller without port auto-assignment", fmt.Errorf("the spec already talks to it"))
	}
	off := *in
	off.mgmt.NoBrokerPortAutoAssign = true
	ctrl, err := off.Start(e.Ctx, SpecInfo{Text: CurrentSpecReport().LeafNodeText, Prefix: e.prefix})
	if err != nil {
		infraError("start a controller without port auto-assignment", err)
	}
	if err := e.Ctrl.Release(); err != nil {
		fmt.Fprintf(GinkgoWriter, "release controller: %v\n", err)
	}
	e.Ctrl = ctrl
	DeferCleanup(func() {
		if err := ctrl.Release(); err != nil {
			fmt.Fprintf(GinkgoWriter, "release controller: %v\n", err)
		}
	})
}
