package fakeagent

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/api/mgmtvectors"
	"github.com/zcc-harness/zcc/broker"
)

// mgmtConfig has logger-f and worker-f on fake-1 (ports as a controller
// assigns them) and worker-o on another instance.
func mgmtConfig(id string) api.Configuration {
	tcp := func(n uint16) api.Opt[broker.Port] { return api.Some(broker.TCPPort(n)) }
	return api.Configuration{ID: id,
		Instances: []api.Instance{{Name: "fake-1", Host: defaultHost}, {Name: "other", Host: defaultHost}},
		Nodes: []api.Node{
			{Name: "worker-f", Instance: "fake-1", Role: api.ClusterRoleWorker, State: api.StateRunning, Interface: api.Some("eth0")},
			{Name: "logger-f", Instance: "fake-1", Role: api.ClusterRoleLogger, State: api.StateRunning, Port: tcp(2200), MetricsPort: tcp(9000)},
			{Name: "worker-o", Instance: "other", Role: api.ClusterRoleWorker, State: api.StateRunning},
		}}
}

func nodeOK(reqid, node string) api.Result {
	return api.Result{Reqid: reqid, Instance: "fake-1", Success: true, Node: api.Some(node)}
}

// startedMgmt starts a mgmt agent "fake-1" against a scripted controller,
// welcomes it (skipping its repeated hellos) and returns both sides.
func startedMgmt(t *testing.T, ctx context.Context, o Options) (*Agent, *scriptConn) {
	t.Helper()
	s := newScriptedProfile(t, api.Mgmt)
	o.Name, o.Profile = "fake-1", api.Mgmt
	if o.HelloInterval == 0 {
		o.HelloInterval = Duration(10 * time.Millisecond)
	}
	a, c := started(t, ctx, s, o)
	c.send(a.Topic(), api.AgentWelcomeRequest{Reqid: "W"})
	nextAfterHellos(t, ctx, c)
	if err := a.WaitWelcomed(ctx); err != nil {
		t.Fatal(err)
	}
	return a, c
}

// nextAfterHellos returns the next message that is not a hello (hellos
// already in flight may precede an answer).
func nextAfterHellos(t *testing.T, ctx context.Context, c *scriptConn) api.Message {
	t.Helper()
	for {
		m := c.nextMsg(ctx)
		if _, hello := m.(api.NotifyAgentHello); !hello {
			return m
		}
	}
}

// A mgmt agent says hello as a Zeek 5.2+ agent does, with its id and the
// connecting flag, and repeats it until welcomed without being told to
// (spec §3.6: a Zeek controller ignores the hellos of a WebSocket agent it
// does not yet expect).
func TestMgmtHelloRepeatsByDefault(t *testing.T) {
	ctx := testCtx(t)
	s := newScriptedProfile(t, api.Mgmt)
	a, err := New(Options{Name: "fake-1", Profile: api.Mgmt, Controller: s.url(), HelloInterval: Duration(10 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	if a.opts.Hello != HelloRepeat {
		t.Fatalf("default hello policy for mgmt = %q, want repeat", a.opts.Hello)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	c := s.accept(ctx)
	if len(c.topics) != 1 || c.topics[0] != "zeek/management/agent/fake-1" {
		t.Fatalf("subscriptions %q", c.topics)
	}
	want := api.NotifyAgentHello{Instance: "fake-1", ID: "zcc-fakeagent-fake-1", Connecting: true, APIVersion: 1}
	for i := 0; i < 3; i++ {
		f := c.next(ctx)
		if f.ev.Name != "Management::Agent::API::notify_agent_hello" || f.f.Topic != a.Topic() {
			t.Fatalf("frame %d: %s on %s", i, f.ev.Name, f.f.Topic)
		}
		equalMsg(t, f.msg, want)
	}
	c.send(a.Topic(), api.AgentWelcomeRequest{Reqid: "W"})
	equalMsg(t, nextAfterHellos(t, ctx, c), api.AgentWelcomeResponse{Reqid: "W", Result: okResult("W", "fake-1")})
	if err := a.WaitWelcomed(ctx); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	sub := a.helloSub
	a.mu.Unlock()
	if sub {
		t.Fatal("welcomed agent still repeats its hello")
	}
	// cc42 keeps one hello per connection.
	b, err := New(Options{Name: "x", Controller: s.url()})
	if err != nil || b.opts.Hello != HelloOnce {
		t.Fatalf("cc42 default hello = %q (%v)", b.opts.Hello, err)
	}
}

func TestMgmtNormalAnswers(t *testing.T) {
	ctx := testCtx(t)
	a, c := startedMgmt(t, ctx, Options{IDValues: map[string]string{"Site::local_nets": `["10.0.0.0/8"]`}})
	topic := a.Topic()
	cfg := mgmtConfig("cfg-1")

	// deploy: one Result per node of this agent, sorted by node name.
	c.send(topic, api.AgentDeployRequest{Reqid: "D1", Config: cfg})
	equalMsg(t, c.nextMsg(ctx), api.AgentDeployResponse{Reqid: "D1", Results: []api.Result{nodeOK("D1", "logger-f"), nodeOK("D1", "worker-f")}})
	if got := a.Config(); got == nil || got.ID != "cfg-1" {
		t.Fatalf("adopted %+v", got)
	}
	// The running configuration again: nothing to do, one Result.
	c.send(topic, api.AgentDeployRequest{Reqid: "D2", Config: cfg})
	equalMsg(t, c.nextMsg(ctx), api.AgentDeployResponse{Reqid: "D2", Results: []api.Result{okResult("D2", "fake-1")}})

	statuses := func(reqid string) map[string]api.NodeStatus {
		t.Helper()
		c.send(topic, api.AgentGetNodesRequest{Reqid: reqid})
		r, ok := c.nextMsg(ctx).(api.AgentGetNodesResponse)
		if !ok || r.Reqid != reqid || !r.Result.Success || r.Result.Instance != "fake-1" || r.Result.Reqid != reqid {
			t.Fatalf("get_nodes answer %+v", r)
		}
		ns, err := api.Mgmt.DecodeNodeStatuses(r.Result.Data)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]api.NodeStatus{}
		for _, s := range ns {
			out[s.Node] = s
		}
		return out
	}
	before := statuses("N1")
	if len(before) != 3 {
		t.Fatalf("statuses %+v, want the agent and its two nodes", before)
	}
	self, logger := before["fake-1"], before["logger-f"]
	if self.MgmtRole != api.RoleAgent || self.State != api.StateRunning || !self.PID.Set || self.Port.Set {
		t.Errorf("agent status %+v", self)
	}
	if logger.ClusterRole != api.ClusterRoleLogger || logger.MgmtRole != api.RoleNone || logger.Port != cfg.Nodes[1].Port ||
		logger.MetricsPort != cfg.Nodes[1].MetricsPort || !logger.PID.Set || logger.PID == self.PID {
		t.Errorf("logger status %+v", logger)
	}

	// restart one node: its Result, then a new pid for it only.
	c.send(topic, api.AgentRestartRequest{Reqid: "R1", Nodes: []string{"worker-f", "worker-o"}})
	equalMsg(t, c.nextMsg(ctx), api.AgentRestartResponse{Reqid: "R1", Results: []api.Result{nodeOK("R1", "worker-f")}})
	after := statuses("N2")
	if after["worker-f"].PID == before["worker-f"].PID || after["logger-f"].PID != before["logger-f"].PID {
		t.Errorf("pids before %v/%v, after %v/%v: only worker-f should change",
			before["worker-f"].PID, before["logger-f"].PID, after["worker-f"].PID, after["logger-f"].PID)
	}
	c.send(topic, api.AgentRestartRequest{Reqid: "R2"})
	equalMsg(t, c.nextMsg(ctx), api.AgentRestartResponse{Reqid: "R2", Results: []api.Result{nodeOK("R2", "logger-f"), nodeOK("R2", "worker-f")}})
	c.send(topic, api.AgentRestartRequest{Reqid: "R3", Nodes: []string{"worker-o"}})
	// No node of this agent: an empty vector (decoded as nil).
	equalMsg(t, c.nextMsg(ctx), api.AgentRestartResponse{Reqid: "R3"})

	// node_dispatch get_id_value: a JSON string per node.
	withData := func(r api.Result, json string) api.Result { r.Data = broker.String(json); return r }
	c.send(topic, api.AgentNodeDispatchRequest{Reqid: "G1", Action: []string{"get_id_value", "bits_per_uid"}})
	equalMsg(t, c.nextMsg(ctx), api.AgentNodeDispatchResponse{Reqid: "G1", Results: []api.Result{
		withData(nodeOK("G1", "logger-f"), "96"), withData(nodeOK("G1", "worker-f"), "96")}})
	c.send(topic, api.AgentNodeDispatchRequest{Reqid: "G2", Action: []string{"get_id_value", "Cluster::node"}, Nodes: []string{"worker-f"}})
	equalMsg(t, c.nextMsg(ctx), api.AgentNodeDispatchResponse{Reqid: "G2", Results: []api.Result{withData(nodeOK("G2", "worker-f"), `"worker-f"`)}})
	c.send(topic, api.AgentNodeDispatchRequest{Reqid: "G3", Action: []string{"get_id_value", "Site::local_nets"}, Nodes: []string{"logger-f"}})
	equalMsg(t, c.nextMsg(ctx), api.AgentNodeDispatchResponse{Reqid: "G3", Results: []api.Result{withData(nodeOK("G3", "logger-f"), `["10.0.0.0/8"]`)}})
	c.send(topic, api.AgentNodeDispatchRequest{Reqid: "G4", Action: []string{"get_id_value", "No::such"}, Nodes: []string{"logger-f"}})
	equalMsg(t, c.nextMsg(ctx), api.AgentNodeDispatchResponse{Reqid: "G4", Results: []api.Result{
		{Reqid: "G4", Instance: "fake-1", Error: "unknown id", Node: api.Some("logger-f")}}})

	// A new configuration restarts everything; standby drops it.
	c.send(topic, api.AgentDeployRequest{Reqid: "D3", Config: mgmtConfig("cfg-2")})
	equalMsg(t, c.nextMsg(ctx), api.AgentDeployResponse{Reqid: "D3", Results: []api.Result{nodeOK("D3", "logger-f"), nodeOK("D3", "worker-f")}})
	if n := statuses("N3"); n["logger-f"].PID == after["logger-f"].PID {
		t.Error("a new deployment kept the old pid")
	}
	c.send(topic, api.AgentStandbyRequest{Reqid: ""})
	equalMsg(t, c.nextMsg(ctx), api.AgentStandbyResponse{Reqid: "", Result: okResult("", "fake-1")})
	c.send(topic, api.AgentRestartRequest{Reqid: "R4"})
	equalMsg(t, c.nextMsg(ctx), api.AgentRestartResponse{Reqid: "R4"})
	if len(statuses("N4")) != 1 {
		t.Error("an agent on standby still reports nodes")
	}
	if st := a.Status(); st.ConfigsReceived != 3 || st.FaultsInjected != 0 {
		t.Errorf("status %+v", st)
	}
}

// The hook actions apply to mgmt requests; fail names one node of a
// per-node answer and carries its outputs.
func TestMgmtHookActions(t *testing.T) {
	cfg := mgmtConfig("cfg")
	outputs := func(stdout, stderr string) broker.Value {
		v, err := api.Mgmt.NodeOutputsValue(api.NodeOutputs{Stdout: stdout, Stderr: stderr})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []struct {
		name  string
		event string
		rule  Rule
		send  api.Message
		want  api.Message
	}{
		{"deploy: one node fails with its outputs", "deploy_request",
			Rule{Action: ActionFail, Node: "worker-f", Stderr: "fatal error in local.zeek\n"},
			api.AgentDeployRequest{Reqid: "D", Config: cfg},
			api.AgentDeployResponse{Reqid: "D", Results: []api.Result{nodeOK("D", "logger-f"),
				{Reqid: "D", Instance: "fake-1", Node: api.Some("worker-f"), Data: outputs("", "fatal error in local.zeek\n")}}}},
		{"deploy: default node, error text given", "deploy_request", Rule{Action: ActionFail, Error: "exit 1", Stdout: "out"},
			api.AgentDeployRequest{Reqid: "D", Config: cfg},
			api.AgentDeployResponse{Reqid: "D", Results: []api.Result{
				{Reqid: "D", Instance: "fake-1", Node: api.Some("logger-f"), Error: "exit 1", Data: outputs("out", "")}, nodeOK("D", "worker-f")}}},
		{"deploy: the agent's own timeout", "deploy_request", Rule{Action: ActionFailNoNode, Error: "request timed out"},
			api.AgentDeployRequest{Reqid: "D", Config: cfg},
			api.AgentDeployResponse{Reqid: "D", Results: []api.Result{{Reqid: "D", Instance: "fake-1", Error: "request timed out"}}}},
		{"deploy: other instance", "deploy_request", Rule{Action: ActionOtherInstance, Instance: "ghost"},
			api.AgentDeployRequest{Reqid: "D", Config: cfg},
			api.AgentDeployResponse{Reqid: "D", Results: []api.Result{
				{Reqid: "D", Instance: "ghost", Success: true, Node: api.Some("logger-f")},
				{Reqid: "D", Instance: "ghost", Success: true, Node: api.Some("worker-f")}}}},
		{"restart fails a node", "restart_request", Fail("worker-f", ""),
			api.AgentRestartRequest{Reqid: "R"},
			api.AgentRestartResponse{Reqid: "R", Results: []api.Result{nodeOK("R", "logger-f"),
				{Reqid: "R", Instance: "fake-1", Node: api.Some("worker-f"), Error: "could not restart node worker-f"}}}},
		{"get_id_value fails a node", "node_dispatch_request", Fail("", "no ID value"),
			api.AgentNodeDispatchRequest{Reqid: "G", Action: []string{"get_id_value", "bits_per_uid"}, Nodes: []string{"worker-f"}},
			api.AgentNodeDispatchResponse{Reqid: "G", Results: []api.Result{
				{Reqid: "G", Instance: "fake-1", Node: api.Some("worker-f"), Error: "no ID value"}}}},
		{"get_nodes fails", "get_nodes_request", Rule{Action: ActionFailNoNode, Error: "supervisor gone"},
			api.AgentGetNodesRequest{Reqid: "N"},
			api.AgentGetNodesResponse{Reqid: "N", Result: api.Result{Reqid: "N", Instance: "fake-1", Error: "supervisor gone"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			a, c := startedMgmt(t, ctx, Options{})
			if _, isDeploy := tc.send.(api.AgentDeployRequest); !isDeploy {
				c.send(a.Topic(), api.AgentDeployRequest{Reqid: "D0", Config: cfg})
				c.nextMsg(ctx)
			}
			if err := a.SetBehaviour(Behaviour{}.With(tc.event, tc.rule)); err != nil {
				t.Fatal(err)
			}
			c.send(a.Topic(), tc.send)
			equalMsg(t, c.nextMsg(ctx), tc.want)
			if st := a.Status(); st.FaultsInjected != 1 {
				t.Errorf("faults injected %d, want 1", st.FaultsInjected)
			}
		})
	}
	// The generic actions need nothing per profile: twice and never.
	ctx := testCtx(t)
	a, c := startedMgmt(t, ctx, Options{Behaviour: Behaviour{}.With("deploy_request", Sequence(Do(ActionTwice).Times(1), Do(ActionNever)))})
	c.send(a.Topic(), api.AgentDeployRequest{Reqid: "D", Config: cfg})
	want := api.AgentDeployResponse{Reqid: "D", Results: []api.Result{nodeOK("D", "logger-f"), nodeOK("D", "worker-f")}}
	equalMsg(t, c.nextMsg(ctx), want)
	equalMsg(t, c.nextMsg(ctx), want)
	c.send(a.Topic(), api.AgentDeployRequest{Reqid: "D2", Config: cfg, Force: true})
	c.send(a.Topic(), api.AgentRestartRequest{Reqid: "R", Nodes: []string{"logger-f"}})
	equalMsg(t, c.nextMsg(ctx), api.AgentRestartResponse{Reqid: "R", Results: []api.Result{nodeOK("R", "logger-f")}})
}

func TestMgmtOptionErrors(t *testing.T) {
	_, err := New(Options{Name: "a", Profile: api.Mgmt, Controller: "127.0.0.1:1", IDValues: map[string]string{"x": "not json"}})
	if err == nil || !strings.Contains(err.Error(), `id_values.x: "not json" is not JSON text`) {
		t.Errorf("IDValues: %v", err)
	}
	err = Behaviour{}.With("deploy_request", Rule{Action: ActionNever, Stdout: "x"}).Validate(api.Mgmt)
	if err == nil || err.Error() != `on.deploy_request.stdout: only action fail takes node outputs (stdout, stderr), not "never"` {
		t.Errorf("stdout on never: %v", err)
	}
	err = Behaviour{}.With("set_configuration_request", Do(ActionFail)).Validate(api.Mgmt)
	if err == nil || !strings.Contains(err.Error(), "not a request an agent of profile mgmt receives") {
		t.Errorf("cc42 request in a mgmt behaviour: %v", err)
	}
	if got := strings.Join(RequestNames(api.Mgmt), ","); got != "agent_standby_request,agent_welcome_request,deploy_request,get_nodes_request,node_dispatch_request,restart_request" {
		t.Errorf("RequestNames(mgmt) = %s", got)
	}
}

// The controller frames a real Zeek 8.1.2 sent to a WebSocket fake agent
// (vectors mgmt/zeek-8.1/fake-agent--websocket) are answered with the event
// and reqid the controller waits for; welcome and deploy exactly as the
// fake agent that Zeek accepted answered them.
func TestMgmtAnswersZeek81Controller(t *testing.T) {
	dir, err := mgmtvectors.Dir()
	if err != nil {
		t.Fatal(err)
	}
	trs, err := mgmtvectors.LoadTranscripts(dir)
	if err != nil {
		t.Fatal(err)
	}
	var tr *mgmtvectors.Transcript
	for i := range trs {
		if trs[i].Case == "fake-agent--websocket" {
			tr = &trs[i]
		}
	}
	if tr == nil {
		t.Fatal("transcript fake-agent--websocket not found")
	}
	// The recorded agent's answers, by reqid.
	recorded := map[string]api.Message{}
	for _, f := range tr.Frames {
		if f.Dir == mgmtvectors.DirFakeAgentToController && f.Kind == "" && strings.HasPrefix(f.Text, "{") {
			fr, err := broker.DecodeFrame([]byte(f.Text))
			if err != nil {
				t.Fatal(err)
			}
			m, err := api.Mgmt.DecodeFrame(fr)
			if err != nil {
				t.Fatal(err)
			}
			if r, ok := api.ReqidOf(m); ok {
				recorded[r] = m
			}
		}
	}
	ctx := testCtx(t)
	s := newScriptedProfile(t, api.Mgmt)
	a, c := started(t, ctx, s, Options{Name: "fake-1", Profile: api.Mgmt, HelloInterval: Duration(time.Hour)})
	answered := 0
	for _, f := range tr.Frames {
		if f.Dir != mgmtvectors.DirControllerToFakeAgent || f.Kind != "" || !strings.Contains(f.Text, `"data-message"`) {
			continue
		}
		fr, err := broker.DecodeFrame([]byte(f.Text))
		if err != nil {
			t.Fatal(err)
		}
		req, err := api.Mgmt.DecodeFrame(fr)
		if err != nil {
			t.Fatal(err)
		}
		c.sendRaw([]byte(f.Text))
		got := c.nextMsg(ctx)
		reqid, _ := api.ReqidOf(req)
		if r, _ := api.ReqidOf(got); r != reqid {
			t.Fatalf("answer %+v to %s carries reqid %q", got, f.Text, r)
		}
		want := recorded[reqid]
		if want == nil || want.Kind() != got.Kind() {
			t.Fatalf("answer %T, the recorded agent answered %T", got, want)
		}
		switch req.(type) {
		case api.AgentWelcomeRequest, api.AgentDeployRequest:
			equalMsg(t, got, want)
		}
		answered++
	}
	if answered != 4 {
		t.Errorf("%d requests answered, the transcript has 4", answered)
	}
	if !a.Status().Welcomed {
		t.Error("agent not welcomed")
	}
}

// A failing node with outputs is plain data, as a scenario file writes it.
func TestMgmtRuleIsSerialisable(t *testing.T) {
	b := Behaviour{}.With("deploy_request", Rule{Action: ActionFail, Node: "worker-f", Error: "exit 1", Stdout: "out", Stderr: "err\n"})
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"on":{"deploy_request":{"action":"fail","node":"worker-f","error":"exit 1","stdout":"out","stderr":"err\n"}}}`
	if string(raw) != want {
		t.Fatalf("JSON %s\nwant %s", raw, want)
	}
	var back Behaviour
	if err := json.Unmarshal(raw, &back); err != nil || !reflect.DeepEqual(back, b) {
		t.Fatalf("round trip %+v (%v)", back, err)
	}
	if err := back.Validate(api.Mgmt); err != nil {
		t.Fatal(err)
	}
}
