package suites

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive
	. "github.com/onsi/gomega"    //nolint:revive

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
	"github.com/zcc-harness/zcc/client"
	"github.com/zcc-harness/zcc/fakeagent"
)

// Shared vocabulary of the Management-profile specs (profile mgmt). The
// wire values are stated here from management-websocket.md (M) and
// real-zeek-8.1-observations.md (O), never imported from the reference
// controller.

const profileMgmt = "mgmt"

// Request/response pairs, as the report groups them.
const (
	pairGetInstances = "get_instances"
	pairStage        = "stage_configuration"
	pairGetConfig    = "get_configuration"
	pairDeploy       = "deploy"
	pairGetNodes     = "get_nodes"
	pairGetIDValue   = "get_id_value"
	pairRestart      = "restart"
	pairTestTimeout  = "test_timeout"
	pairTransport    = "transport"
)

// Agent-side requests, as fake-agent behaviours name them (M §2.5).
const (
	evAgentDeploy   = "deploy_request"
	evAgentGetNodes = "get_nodes_request"
	evAgentDispatch = "node_dispatch_request"
	evAgentRestart  = "restart_request"
	evAgentWelcome  = "agent_welcome_request"
)

// Topics and fixed values (M §2.2).
const (
	mgmtControllerTopic  = "zeek/management/controller"
	mgmtAgentTopicPrefix = "zeek/management/agent"
	mgmtControllerPort   = 2150 // the controller's Broker port, which nodes must not use
	mgmtAutoAssignStart  = 2200 // auto_assign_broker_start_port
)

// Error texts of the controller (M §2.4, O §1).
const (
	errTimedOut           = "request timed out"
	errNoStaged           = "no staged configuration available"
	errNoDeployed         = "no deployed configuration available"
	errNothingToDeploy    = "no configuration available to deploy"
	errNoInstances        = "no instances connected"
	errNoCluster          = "no cluster deployed"
	errNoActiveDeployment = "no active cluster deployment"
	errUnknownNode        = "unknown cluster node"
	errUnknownID          = "unknown id"
)

func errStillPending(r1 string) string { return "earlier deployment " + r1 + " still pending" }

// ctrlFailure is a failure of the controller's own: (R, F, none, none, e, none).
func ctrlFailure(reqid, errText string) api.Result {
	return api.Result{Reqid: reqid, Success: false, Error: errText}
}

// ctrlNodeFailure is a controller-made failure about one node.
func ctrlNodeFailure(reqid, node, errText string) api.Result {
	return api.Result{Reqid: reqid, Success: false, Error: errText, Node: api.Some(node)}
}

// configIDResult is the controller's success Result carrying a config id:
// (R, T, none, id, none, none).
func configIDResult(reqid, id string) api.Result {
	return api.Result{Reqid: reqid, Success: true, Data: broker.String(id)}
}

// nodeSuccess is an agent's per-node success, under the agent-side reqid.
func nodeSuccess(areqid, instance, node string) api.Result {
	return api.Result{Reqid: areqid, Instance: instance, Success: true, Node: api.Some(node)}
}

// mgmtEnv is one mgmt spec's world: the Env plus a watcher through which
// every response the spec receives is also checked for the shape
// zeek-client reads (mgmt_shape.go).
type mgmtEnv struct {
	*Env
	w *Watcher
}

func mgmtOf(e *Env) *mgmtEnv {
	GinkgoHelper()
	return &mgmtEnv{Env: e, w: e.Watch()}
}

// helloInterval is how often an unwelcomed mgmt fake agent repeats its
// hello. A real Zeek welcomes a WebSocket agent only on a hello that comes
// after the deploy request (M §3.6), so the interval must be short next
// to the controller's request timeout; but a hello that crosses the
// welcome on the wire earns a second welcome, whose answer makes the
// controller redeploy internally (M §2.9) and hold the next client deploy
// as "still pending", so it must not be much shorter than a welcome's
// round trip on a loaded machine either.
func (m *mgmtEnv) helloInterval() time.Duration {
	return min(max(m.Cfg.Timeouts.ControllerRequest/3, 5*time.Millisecond), time.Second)
}

// agent starts a mgmt fake agent named Name(short).
func (m *mgmtEnv) agent(short string, mods ...func(*fakeagent.Options)) *fakeagent.Agent {
	GinkgoHelper()
	every := m.helloInterval()
	all := append([]func(*fakeagent.Options){func(o *fakeagent.Options) {
		o.Hello = fakeagent.HelloRepeat
		o.HelloInterval = fakeagent.Duration(every)
	}}, mods...)
	return m.Agent(short, all...)
}

// agents starts several and waits until the controller lists them.
func (m *mgmtEnv) agents(shorts ...string) []*fakeagent.Agent {
	GinkgoHelper()
	out := make([]*fakeagent.Agent, len(shorts))
	for i, s := range shorts {
		out[i] = m.agent(s)
	}
	m.waitKnown(out...)
	return out
}

// settle waits until the agents said hello and, on the in-process
// reference controller (which counts WebSocket agents as connected), until
// it lists them, so that a configuration staged next has their hosts
// filled in deterministically: an instance staged while unknown and
// deployed again once known looks like a connectivity change, which Zeek
// answers by dropping it (quirk.connectivity-change of cc42, kept by
// Zeek's Management controller). A real Zeek never knows WebSocket agents,
// so elsewhere the hello is enough.
func (m *mgmtEnv) settle(agents ...*fakeagent.Agent) {
	GinkgoHelper()
	if m.target.Name() == TargetInproc {
		m.waitKnown(agents...)
		return
	}
	m.WaitSaidHello(agents...)
}

// waitKnown waits until get_instances lists every agent: only then does a
// request the controller handles after it see them as connected (their
// hellos travel on other connections than the spec's requests).
func (m *mgmtEnv) waitKnown(agents ...*fakeagent.Agent) {
	GinkgoHelper()
	m.WaitSaidHello(agents...)
	want := make([]string, len(agents))
	for i, a := range agents {
		want[i] = a.Name()
	}
	Eventually(func(g Gomega) {
		ctx, cancel := m.responseCtx()
		defer cancel()
		res, err := m.Client().GetInstances(ctx, withReqid(m.Reqid("known")))
		g.Expect(err).NotTo(HaveOccurred())
		insts, err := m.Profile.DecodeInstances(res.Data)
		g.Expect(err).NotTo(HaveOccurred())
		var names []string
		for _, in := range insts {
			names = append(names, in.Name)
		}
		g.Expect(names).To(ContainElements(want))
	}).WithContext(m.Ctx).WithTimeout(m.Cfg.Timeouts.Hello).WithPolling(m.helloInterval()).Should(Succeed(),
		"the controller does not list the agents as connected (get_instances); a controller that only knows agents peered over native Broker (a real Zeek) does not claim this behaviour")
}

// expectShape checks the response of kind with reqid as seen by the
// watcher, against what zeek-client needs.
func (m *mgmtEnv) expectShape(request string, kind api.EventKind, reqid string) {
	GinkgoHelper()
	ctx, cancel := m.responseCtx()
	defer cancel()
	got, err := m.w.WaitMatching(ctx, kind, reqid, 1)
	if err != nil || len(got) == 0 {
		Fail(fmt.Sprintf("the %s to %s was not published on the controller topic for other subscribers", m.Profile.ShortName(kind), reqid))
	}
	problems := mgmtShapeProblems(request, reqid, got[0].Event)
	Expect(problems).To(BeEmpty(), "zeek-client could not read the %s:\n  %s\nframe: %s", m.Profile.ShortName(kind), strings.Join(problems, "\n  "), got[0].Raw)
}

// call sends a request through the spec's main client and checks the
// response's shape; a missing response fails the spec.
func (m *mgmtEnv) call(c *client.Client, request string, respKind api.EventKind, reqid string, send func(ctx context.Context, c *client.Client) ([]api.Result, error)) []api.Result {
	GinkgoHelper()
	if c == nil {
		c = m.Client()
	}
	ctx, cancel := m.responseCtx()
	defer cancel()
	res, err := send(ctx, c)
	Expect(err).NotTo(HaveOccurred(), "%s %s: no response within %s", request, reqid, m.Cfg.Timeouts.ResponseWait)
	m.expectShape(request, respKind, reqid)
	return res
}

func one(r api.Result, err error) ([]api.Result, error) { return []api.Result{r}, err }

func (m *mgmtEnv) stage(reqid string, cfg api.Configuration) []api.Result {
	GinkgoHelper()
	return m.call(nil, "stage_configuration_request", api.KindStageConfigurationResponse, reqid, func(ctx context.Context, c *client.Client) ([]api.Result, error) {
		return c.StageConfiguration(ctx, cfg, withReqid(reqid))
	})
}

func (m *mgmtEnv) getConfig(reqid string, deployed bool) api.Result {
	GinkgoHelper()
	return m.call(nil, "get_configuration_request", api.KindGetConfigurationResponse, reqid, func(ctx context.Context, c *client.Client) ([]api.Result, error) {
		return one(c.GetConfiguration(ctx, deployed, withReqid(reqid)))
	})[0]
}

func (m *mgmtEnv) deploy(reqid string) []api.Result {
	GinkgoHelper()
	return m.deployOn(nil, reqid)
}

// deployOn sends deploy_request on client c (nil: the main client).
func (m *mgmtEnv) deployOn(c *client.Client, reqid string) []api.Result {
	GinkgoHelper()
	return m.call(c, "deploy_request", api.KindDeployResponse, reqid, func(ctx context.Context, c *client.Client) ([]api.Result, error) {
		return c.Deploy(ctx, withReqid(reqid))
	})
}

// deployAsync sends deploy_request on c and returns a channel that yields
// its outcome (await reads it).
func (m *mgmtEnv) deployAsync(c *client.Client, reqid string) <-chan configOutcome {
	ch := make(chan configOutcome, 1)
	sent := time.Now()
	go func() {
		defer GinkgoRecover()
		ctx, cancel := m.responseCtx()
		defer cancel()
		res, err := c.Deploy(ctx, withReqid(reqid))
		ch <- configOutcome{results: res, err: err, after: time.Since(sent)}
	}()
	return ch
}

func (m *mgmtEnv) getNodes(reqid string) []api.Result {
	GinkgoHelper()
	return m.call(nil, "get_nodes_request", api.KindGetNodesResponse, reqid, func(ctx context.Context, c *client.Client) ([]api.Result, error) {
		return c.GetNodes(ctx, withReqid(reqid))
	})
}

func (m *mgmtEnv) getIDValue(reqid, id string, nodes ...string) []api.Result {
	GinkgoHelper()
	return m.call(nil, "get_id_value_request", api.KindGetIDValueResponse, reqid, func(ctx context.Context, c *client.Client) ([]api.Result, error) {
		return c.GetIDValue(ctx, id, nodes, withReqid(reqid))
	})
}

func (m *mgmtEnv) restart(reqid string, nodes ...string) []api.Result {
	GinkgoHelper()
	return m.call(nil, "restart_request", api.KindRestartResponse, reqid, func(ctx context.Context, c *client.Client) ([]api.Result, error) {
		return c.Restart(ctx, nodes, withReqid(reqid))
	})
}

// testTimeout sends a stateful test_timeout_request.
func (m *mgmtEnv) testTimeout(reqid string) api.Result {
	GinkgoHelper()
	return m.call(nil, "test_timeout_request", api.KindTestTimeoutResponse, reqid, func(ctx context.Context, c *client.Client) ([]api.Result, error) {
		return one(c.TestTimeout(ctx, true, withReqid(reqid)))
	})[0]
}

func (m *mgmtEnv) getInstances(reqid string) api.Result {
	GinkgoHelper()
	return m.call(nil, "get_instances_request", api.KindGetInstancesResponse, reqid, func(ctx context.Context, c *client.Client) ([]api.Result, error) {
		return one(c.GetInstances(ctx, withReqid(reqid)))
	})[0]
}

// staged stages cfg and expects it accepted.
func (m *mgmtEnv) staged(cfg api.Configuration) {
	GinkgoHelper()
	reqid := m.Reqid("stage")
	ExpectResultsInOrder(m.stage(reqid, cfg), configIDResult(reqid, cfg.ID))
}

// deployed stages cfg, deploys it and expects every node of it to come
// up: the per-node successes, then the config id.
func (m *mgmtEnv) deployed(cfg api.Configuration, agents ...*fakeagent.Agent) []api.Result {
	GinkgoHelper()
	m.staged(cfg)
	reqid := m.Reqid("deploy")
	res := m.deploy(reqid)
	ExpectResultsInOrder(res[len(res)-1:], configIDResult(reqid, cfg.ID))
	ExpectResults(res[:len(res)-1], m.nodeSuccesses(cfg, agents...)...)
	return res
}

// nodeSuccesses are the per-node successes each agent gives for cfg,
// under the reqid of the last deploy_request it received.
func (m *mgmtEnv) nodeSuccesses(cfg api.Configuration, agents ...*fakeagent.Agent) []api.Result {
	GinkgoHelper()
	var want []api.Result
	for _, a := range agents {
		areqid := lastDeployReqid(a)
		nodes := 0
		for _, n := range cfg.Nodes {
			if n.Instance == a.Name() {
				want = append(want, nodeSuccess(areqid, a.Name(), n.Name))
				nodes++
			}
		}
		if nodes == 0 {
			want = append(want, api.Result{Reqid: areqid, Instance: a.Name(), Success: true})
		}
	}
	return want
}

// lastDeployReqid is the agent-side reqid of the last deploy_request the
// agent received.
func lastDeployReqid(a *fakeagent.Agent) string {
	GinkgoHelper()
	got := a.Received(api.KindAgentDeployRequest)
	Expect(got).NotTo(BeEmpty(), "agent %s received no deploy_request", a.Name())
	m, _ := got[len(got)-1].Msg.(api.AgentDeployRequest)
	return m.Reqid
}

// lastReceived returns the last message of kind an agent received, and
// fails the spec when there is none.
func lastReceived[T api.Message](a *fakeagent.Agent, kind api.EventKind) T {
	GinkgoHelper()
	got := a.Received(kind)
	Expect(got).NotTo(BeEmpty(), "agent %s received no %T", a.Name(), *new(T))
	m, ok := got[len(got)-1].Msg.(T)
	Expect(ok).To(BeTrue(), "agent %s: %T", a.Name(), got[len(got)-1].Msg)
	return m
}

// mgmtConfig returns a configuration with one worker per agent, named
// <agent>-w, without ports (workers listen on none).
func (m *mgmtEnv) mgmtConfig(agents ...*fakeagent.Agent) api.Configuration {
	cfg := api.Configuration{ID: m.Reqid("cfg"), Instances: Instances(agents...)}
	for _, a := range agents {
		cfg.Nodes = append(cfg.Nodes, mgmtNode(a.Name()+"-w", a.Name(), api.ClusterRoleWorker))
	}
	return cfg
}

func mgmtNode(name, instance string, role api.ClusterRole) api.Node {
	return api.Node{Name: name, Instance: instance, Role: role, State: api.StateRunning}
}

func withPort(n api.Node, port uint16) api.Node {
	n.Port = api.Some(broker.TCPPort(port))
	return n
}

// ExpectResultsInOrder checks that got holds exactly want, in this order.
func ExpectResultsInOrder(got []api.Result, want ...api.Result) {
	GinkgoHelper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].Equal(want[i])
	}
	Expect(ok).To(BeTrue(), "Results differ (order matters):\ngot  %s\nwant %s", resultsText(got), resultsText(want))
}

// mgmtTimeoutWindow is when a controller-side timeout may arrive after
// the request (Timeouts.MgmtTimeoutWindow: as wide as a real Zeek 8.1's).
func (m *mgmtEnv) mgmtTimeoutWindow() (earliest, latest time.Duration) {
	return m.Cfg.Timeouts.MgmtTimeoutWindow()
}

// expectTimedOutWithin checks when a timeout response came.
func (m *mgmtEnv) expectTimedOutWithin(after time.Duration) {
	GinkgoHelper()
	earliest, latest := m.mgmtTimeoutWindow()
	Expect(after).To(BeNumerically(">=", earliest), "the timeout came before half the request timeout")
	Expect(after).To(BeNumerically("<=", latest), "the timeout came after 1.5 × (timeout + sweep) + slack")
}

// instancesOf decodes get_instances data sorted by name.
func (m *mgmtEnv) instancesIn(res api.Result) []api.Instance {
	GinkgoHelper()
	insts, err := m.Profile.DecodeInstances(res.Data)
	Expect(err).NotTo(HaveOccurred(), "get_instances data")
	sort.Slice(insts, func(i, j int) bool { return insts[i].Name < insts[j].Name })
	return insts
}

// configIn decodes a get_configuration Result's configuration.
func (m *mgmtEnv) configIn(res api.Result) api.Configuration {
	GinkgoHelper()
	Expect(res.Success).To(BeTrue(), "get_configuration failed: %s", resultText(res))
	cfg, err := m.Profile.DecodeConfiguration(res.Data)
	Expect(err).NotTo(HaveOccurred(), "get_configuration data")
	return cfg
}

// nodeByName finds a node of a configuration.
func nodeByName(cfg api.Configuration, name string) api.Node {
	GinkgoHelper()
	for _, n := range cfg.Nodes {
		if n.Name == name {
			return n
		}
	}
	Fail(fmt.Sprintf("configuration %s has no node %q", cfg.ID, name))
	return api.Node{}
}

func portOf(n api.Node) string {
	if p, ok := n.Port.Get(); ok {
		return p.String()
	}
	return "none"
}
