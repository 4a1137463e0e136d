package fakeagent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

func TestMain(m *testing.M) {
	if os.Getenv(ControllerHelperEnv) != "" {
		os.Exit(runControllerHelper())
	}
	goleak.VerifyTestMain(m)
}

// testCtx bounds one test; no test here needs more than a few seconds.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// config returns a configuration with one worker per instance, named
// "worker-<instance>", and a manager on the first instance.
func config(id string, instances ...string) api.Configuration {
	c := api.Configuration{ID: id}
	for i, inst := range instances {
		c.Instances = append(c.Instances, api.Instance{Name: inst, Host: netip.IPv4Unspecified()})
		c.Nodes = append(c.Nodes, api.Node{Name: "worker-" + inst, Instance: inst,
			Port: api.Some(broker.TCPPort(uint16(5000 + i))), Role: api.ClusterRoleWorker, State: api.StateRunning})
	}
	if len(instances) > 0 {
		c.Nodes = append(c.Nodes, api.Node{Name: "manager", Instance: instances[0],
			Port: api.Some(broker.TCPPort(4999)), Role: api.ClusterRoleManager, State: api.StateRunning})
	}
	return c
}

// started creates and starts an agent against s, waits for its connection
// and consumes the hello (unless the policy is none).
func started(t *testing.T, ctx context.Context, s *scripted, o Options) (*Agent, *scriptConn) {
	t.Helper()
	if o.Controller == "" {
		o.Controller = s.url()
	}
	a, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(a.Stop)
	c := s.accept(ctx)
	if o.Hello != HelloNone {
		h, ok := c.nextMsg(ctx).(api.NotifyAgentHello)
		if !ok {
			t.Fatalf("first frame is not a hello")
		}
		if h.Instance != o.Name {
			t.Fatalf("hello instance = %q, want %q", h.Instance, o.Name)
		}
	}
	return a, c
}

func okResult(reqid, inst string) api.Result {
	return api.Result{Reqid: reqid, Instance: inst, Success: true}
}

func equalMsg(t *testing.T, got, want api.Message) {
	t.Helper()
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if !bytes.Equal(gj, wj) {
		t.Fatalf("got  %T %s\nwant %T %s", got, gj, want, wj)
	}
}

// probe sends a welcome and expects its answer as the very next frame: it
// proves that nothing else was sent before it.
func probe(t *testing.T, ctx context.Context, c *scriptConn, name, reqid string) {
	t.Helper()
	c.send(api.CC42.AgentTopic(name), api.AgentWelcomeRequest{Reqid: reqid})
	got := c.nextMsg(ctx)
	equalMsg(t, got, api.AgentWelcomeResponse{Reqid: reqid, Result: okResult(reqid, name)})
}

// A default agent behaves as a Zeek 4.2 agent (spec §7, §12.1).
func TestDefaultBehaviourIsARealAgent(t *testing.T) {
	ctx := testCtx(t)
	s := newScripted(t)
	a, err := New(Options{Name: "inst-1", Controller: s.url()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	c := s.accept(ctx)
	if len(c.topics) != 1 || c.topics[0] != "zeek/cluster-control/agent/inst-1" {
		t.Fatalf("subscriptions = %q, want the agent's own topic", c.topics)
	}
	hello := c.next(ctx)
	if hello.f.Topic != "zeek/cluster-control/agent/inst-1" || hello.ev.Name != "ClusterAgent::API::notify_agent_hello" {
		t.Fatalf("hello frame: topic %q event %q", hello.f.Topic, hello.ev.Name)
	}
	equalMsg(t, hello.msg, api.NotifyAgentHello{Instance: "inst-1", Host: netip.MustParseAddr("127.0.0.1"), APIVersion: 1})
	topic := a.Topic()

	c.send(topic, api.AgentWelcomeRequest{Reqid: "W1"})
	equalMsg(t, c.nextMsg(ctx), api.AgentWelcomeResponse{Reqid: "W1", Result: okResult("W1", "inst-1")})
	if err := a.WaitWelcomed(ctx); err != nil {
		t.Fatal(err)
	}

	cfg := config("cfg-1", "inst-1", "inst-2")
	c.send(topic, api.AgentSetConfigurationRequest{Reqid: "A1", Config: cfg})
	equalMsg(t, c.nextMsg(ctx), api.AgentSetConfigurationResponse{Reqid: "A1", Result: okResult("A1", "inst-1")})
	if got := a.Config(); got == nil || got.ID != "cfg-1" {
		t.Fatalf("adopted config = %+v, want cfg-1", got)
	}

	// reqid "" gets no answer (§7.3 step 6): the next frame is the probe's.
	c.send(topic, api.AgentSetConfigurationRequest{Reqid: "", Config: cfg})
	probe(t, ctx, c, "inst-1", "W2")

	c.send(topic, api.AgentStandbyRequest{Reqid: ""})
	equalMsg(t, c.nextMsg(ctx), api.AgentStandbyResponse{Reqid: "", Result: okResult("", "inst-1")})
	if a.Config() != nil {
		t.Fatalf("standby should drop the configuration")
	}

	st := a.Status()
	if !st.Connected || st.ConfigsReceived != 2 || st.FaultsInjected != 0 || st.Connections != 1 {
		t.Fatalf("status = %+v", st)
	}
	if n := a.Count(api.KindAgentSetConfigurationRequest); n != 2 {
		t.Fatalf("Count(set_configuration_request) = %d, want 2", n)
	}
	if n := len(a.Sent(api.KindAgentSetConfigurationResponse)); n != 1 {
		t.Fatalf("sent %d set_configuration_responses, want 1", n)
	}
	empty := a.Received(api.KindAgentSetConfigurationRequest)[1]
	if empty.Action != ActionReply || !strings.Contains(empty.Detail, "does not answer a configuration with an empty reqid") {
		t.Fatalf("empty-reqid entry: action %q detail %q", empty.Action, empty.Detail)
	}
}

// hookCase drives one set_configuration_request through a rule and checks
// what the controller side sees.
type hookCase struct {
	name  string
	rule  Rule
	check func(t *testing.T, ctx context.Context, c *scriptConn, s *scripted)
}

func TestHookActionsOnSetConfiguration(t *testing.T) {
	const name = "inst-1"
	topic := api.CC42.AgentTopic(name)
	cfg := config("cfg", name, "inst-2")
	expectResult := func(t *testing.T, ctx context.Context, c *scriptConn, want api.Result) {
		t.Helper()
		equalMsg(t, c.nextMsg(ctx), api.AgentSetConfigurationResponse{Reqid: want.Reqid, Result: want})
	}
	cases := []hookCase{
		{"reply", Do(ActionReply), func(t *testing.T, ctx context.Context, c *scriptConn, _ *scripted) {
			expectResult(t, ctx, c, okResult("A", name))
		}},
		{"fail with node", Fail("worker-9", "boom"), func(t *testing.T, ctx context.Context, c *scriptConn, _ *scripted) {
			expectResult(t, ctx, c, api.Result{Reqid: "A", Instance: name, Error: "boom", Node: api.Some("worker-9")})
		}},
		{"fail default node", Do(ActionFail), func(t *testing.T, ctx context.Context, c *scriptConn, _ *scripted) {
			// The agent's own first node in the configuration.
			expectResult(t, ctx, c, api.Result{Reqid: "A", Instance: name, Error: "injected failure", Node: api.Some("manager")})
		}},
		{"fail without node", Rule{Action: ActionFailNoNode, Error: "no node"}, func(t *testing.T, ctx context.Context, c *scriptConn, _ *scripted) {
			expectResult(t, ctx, c, api.Result{Reqid: "A", Instance: name, Error: "no node"})
		}},
		{"never", Do(ActionNever), func(t *testing.T, ctx context.Context, c *scriptConn, _ *scripted) {
			probe(t, ctx, c, name, "P")
		}},
		{"twice", Do(ActionTwice), func(t *testing.T, ctx context.Context, c *scriptConn, _ *scripted) {
			expectResult(t, ctx, c, okResult("A", name))
			expectResult(t, ctx, c, okResult("A", name))
			probe(t, ctx, c, name, "P")
		}},
		{"unknown reqid", Do(ActionUnknownReqid), func(t *testing.T, ctx context.Context, c *scriptConn, _ *scripted) {
			r, ok := c.nextMsg(ctx).(api.AgentSetConfigurationResponse)
			if !ok || !strings.HasPrefix(r.Reqid, "zcc-unknown-inst-1-") || r.Result.Reqid != r.Reqid || !r.Result.Success {
				t.Fatalf("unknown-reqid answer = %+v", r)
			}
		}},
		{"other instance", Rule{Action: ActionOtherInstance, Instance: "intruder"}, func(t *testing.T, ctx context.Context, c *scriptConn, _ *scripted) {
			expectResult(t, ctx, c, okResult("A", "intruder"))
		}},
		{"malformed", Do(ActionMalformed), func(t *testing.T, ctx context.Context, c *scriptConn, _ *scripted) {
			f := c.next(ctx)
			if f.err == nil || json.Valid(f.raw) {
				t.Fatalf("malformed frame decoded: %s", f.raw)
			}
			if !bytes.HasPrefix(f.raw, []byte(`{"type":"data-message"`)) {
				t.Fatalf("malformed frame should be a cut data message, got %s", f.raw)
			}
			probe(t, ctx, c, name, "P")
		}},
		{"wrong type", Do(ActionWrongType), func(t *testing.T, ctx context.Context, c *scriptConn, _ *scripted) {
			f := c.next(ctx)
			var ae *api.ArgError
			if !errors.As(f.err, &ae) || ae.Index != 0 {
				t.Fatalf("wrong-type frame: err %v, want an ArgError on arg 0\n%s", f.err, f.raw)
			}
			if n, ok := f.ev.Args[0].AsCount(); !ok || n != 4242 {
				t.Fatalf("arg 0 = %v, want count 4242", f.ev.Args[0])
			}
		}},
		{"close before", Do(ActionCloseBefore), func(t *testing.T, ctx context.Context, c *scriptConn, s *scripted) {
			err := c.ended(ctx)
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				t.Fatalf("connection ended with %v, want a clean close", err)
			}
			// The agent reconnects and says hello again.
			c2 := s.accept(ctx)
			if _, ok := c2.nextMsg(ctx).(api.NotifyAgentHello); !ok {
				t.Fatalf("no hello after reconnecting")
			}
		}},
		{"close after", Do(ActionCloseAfter), func(t *testing.T, ctx context.Context, c *scriptConn, _ *scripted) {
			expectResult(t, ctx, c, okResult("A", name))
			if err := c.ended(ctx); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				t.Fatalf("connection ended with %v, want a clean close", err)
			}
		}},
		{"reset before", Do(ActionResetBefore), func(t *testing.T, ctx context.Context, c *scriptConn, _ *scripted) {
			err := c.ended(ctx)
			var ce *websocket.CloseError
			if err == nil || (errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure) {
				t.Fatalf("connection ended with %v, want an abrupt end without a close frame", err)
			}
		}},
		{"reset after", Do(ActionResetAfter), func(t *testing.T, ctx context.Context, c *scriptConn, _ *scripted) {
			expectResult(t, ctx, c, okResult("A", name))
			err := c.ended(ctx)
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure {
				t.Fatalf("connection ended with %v, want no close frame", err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			s := newScripted(t)
			a, c := started(t, ctx, s, Options{Name: name, Backoff: Backoff{Initial: Duration(10 * time.Millisecond)},
				Behaviour: Behaviour{}.With("set_configuration_request", tc.rule)})
			c.send(topic, api.AgentSetConfigurationRequest{Reqid: "A", Config: cfg})
			tc.check(t, ctx, c, s)
			in := a.Received(api.KindAgentSetConfigurationRequest)
			if len(in) != 1 || in[0].Action != tc.rule.actionOrReply() {
				t.Fatalf("transcript: %d entries, action %q; want 1 with %q", len(in), in[0].Action, tc.rule.actionOrReply())
			}
			wantFaults := 0
			if tc.rule.actionOrReply() != ActionReply {
				wantFaults = 1
			}
			if st := a.Status(); st.FaultsInjected != wantFaults || len(a.Transcript().Injected()) != wantFaults {
				t.Fatalf("faults injected = %d (transcript %d), want %d", st.FaultsInjected, len(a.Transcript().Injected()), wantFaults)
			}
		})
	}
}

func TestStaleReqidUsesAnEarlierReqid(t *testing.T) {
	ctx := testCtx(t)
	s := newScripted(t)
	// First configuration answered normally, every later one with the
	// reqid of the one before.
	a, c := started(t, ctx, s, Options{Name: "i1", Behaviour: Behaviour{}.With("set_configuration_request",
		Sequence(Do(ActionReply).Times(1), Do(ActionStaleReqid)))})
	cfg := config("c", "i1")
	c.send(a.Topic(), api.AgentSetConfigurationRequest{Reqid: "A1", Config: cfg})
	equalMsg(t, c.nextMsg(ctx), api.AgentSetConfigurationResponse{Reqid: "A1", Result: okResult("A1", "i1")})
	c.send(a.Topic(), api.AgentSetConfigurationRequest{Reqid: "A2", Config: cfg})
	equalMsg(t, c.nextMsg(ctx), api.AgentSetConfigurationResponse{Reqid: "A1", Result: okResult("A1", "i1")})
	c.send(a.Topic(), api.AgentSetConfigurationRequest{Reqid: "A3", Config: cfg})
	equalMsg(t, c.nextMsg(ctx), api.AgentSetConfigurationResponse{Reqid: "A2", Result: okResult("A2", "i1")})
}

func TestDelayKeepsLaterRequestsFlowing(t *testing.T) {
	ctx := testCtx(t)
	s := newScripted(t)
	const delay = 150 * time.Millisecond
	a, c := started(t, ctx, s, Options{Name: "i1",
		Behaviour: Behaviour{}.With("set_configuration_request", Delayed(delay))})
	sent := time.Now()
	c.send(a.Topic(), api.AgentSetConfigurationRequest{Reqid: "A", Config: config("c", "i1")})
	// The welcome sent after the delayed request is answered first.
	probe(t, ctx, c, "i1", "P")
	equalMsg(t, c.nextMsg(ctx), api.AgentSetConfigurationResponse{Reqid: "A", Result: okResult("A", "i1")})
	if el := time.Since(sent); el < delay {
		t.Fatalf("delayed answer after %s, before its delay of %s", el, delay)
	}
	e := a.Received(api.KindAgentSetConfigurationRequest)[0]
	if !e.Fault || !strings.Contains(e.Detail, "delay 150ms") {
		t.Fatalf("transcript entry: fault %t detail %q", e.Fault, e.Detail)
	}
}

func TestSequenceFirstNThenOther(t *testing.T) {
	ctx := testCtx(t)
	s := newScripted(t)
	a, c := started(t, ctx, s, Options{Name: "i1", Behaviour: Behaviour{}.With("set_configuration_request",
		Sequence(Do(ActionReply).Times(2), Fail("n1", "third and later fail")))})
	cfg := config("c", "i1")
	for i, want := range []bool{true, true, false, false} {
		reqid := string(rune('A' + i))
		c.send(a.Topic(), api.AgentSetConfigurationRequest{Reqid: reqid, Config: cfg})
		r := c.nextMsg(ctx).(api.AgentSetConfigurationResponse)
		if r.Result.Success != want {
			t.Fatalf("request %d: success %t, want %t", i+1, r.Result.Success, want)
		}
	}
	// A counted sequence without an open-ended last step falls back to
	// normal replies once used up.
	if err := a.SetBehaviour(Behaviour{}.With("set_configuration_request", Sequence(Do(ActionFail).Times(1)))); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{false, true} {
		c.send(a.Topic(), api.AgentSetConfigurationRequest{Reqid: "S" + string(rune('0'+i)), Config: cfg})
		if r := c.nextMsg(ctx).(api.AgentSetConfigurationResponse); r.Result.Success != want {
			t.Fatalf("after SetBehaviour, request %d: success %t, want %t", i+1, r.Result.Success, want)
		}
	}
}

func TestHookDecidesBeforeBehaviour(t *testing.T) {
	ctx := testCtx(t)
	s := newScripted(t)
	var calls []Call
	hook := func(c Call) (Rule, bool) {
		calls = append(calls, c) // the loop calls hooks one at a time
		if c.Kind == api.KindAgentSetConfigurationRequest && c.N == 2 {
			return Fail("hooked", "second config"), true
		}
		return Rule{}, false
	}
	a, c := started(t, ctx, s, Options{Name: "i1", Hook: hook,
		Behaviour: Behaviour{}.With("agent_welcome_request", Do(ActionTwice))})
	cfg := config("c", "i1")
	c.send(a.Topic(), api.AgentSetConfigurationRequest{Reqid: "A1", Config: cfg})
	if r := c.nextMsg(ctx).(api.AgentSetConfigurationResponse); !r.Result.Success {
		t.Fatalf("first config should succeed: %+v", r)
	}
	c.send(a.Topic(), api.AgentSetConfigurationRequest{Reqid: "A2", Config: cfg})
	equalMsg(t, c.nextMsg(ctx), api.AgentSetConfigurationResponse{Reqid: "A2",
		Result: api.Result{Reqid: "A2", Instance: "i1", Error: "second config", Node: api.Some("hooked")}})
	// The hook passes on welcomes, so the behaviour's "twice" applies.
	c.send(a.Topic(), api.AgentWelcomeRequest{Reqid: "W"})
	c.nextMsg(ctx)
	c.nextMsg(ctx)
	if len(calls) != 3 || calls[1].N != 2 || calls[1].Reqid != "A2" || calls[1].Event != "set_configuration_request" || calls[1].Agent != "i1" {
		t.Fatalf("hook calls = %+v", calls)
	}
}

func TestHookReturningAnInvalidRuleIsRecordedAndAnswered(t *testing.T) {
	ctx := testCtx(t)
	s := newScripted(t)
	a, c := started(t, ctx, s, Options{Name: "i1", Hook: func(Call) (Rule, bool) { return Do("explode"), true }})
	c.send(a.Topic(), api.AgentWelcomeRequest{Reqid: "W"})
	equalMsg(t, c.nextMsg(ctx), api.AgentWelcomeResponse{Reqid: "W", Result: okResult("W", "i1")})
	e := a.Received(api.KindAgentWelcomeRequest)[0]
	if !strings.Contains(e.Err, `unknown action "explode"`) {
		t.Fatalf("entry error = %q", e.Err)
	}
}

// Probabilistic rules draw from a per-agent source seeded by the seed and
// the name: the same seed gives the same faults, a different one does not.
func TestProbabilityIsDeterministicPerSeed(t *testing.T) {
	run := func(seed uint64) []bool {
		ctx := testCtx(t)
		s := newScripted(t)
		a, c := started(t, ctx, s, Options{Name: "agent-007", Seed: seed,
			Behaviour: Behaviour{}.With("set_configuration_request", WithProbability(0.5, Fail("n", "coin")))})
		cfg := config("c", "agent-007")
		var out []bool
		for i := 0; i < 40; i++ {
			c.send(a.Topic(), api.AgentSetConfigurationRequest{Reqid: "R" + string(rune('a'+i)), Config: cfg})
			out = append(out, c.nextMsg(ctx).(api.AgentSetConfigurationResponse).Result.Success)
		}
		faults := len(a.Transcript().Injected())
		fails := 0
		for _, ok := range out {
			if !ok {
				fails++
			}
		}
		if faults != fails {
			t.Fatalf("transcript counts %d injected faults, controller saw %d failures", faults, fails)
		}
		a.Stop()
		return out
	}
	a1, a2, b := run(42), run(42), run(43)
	if !equalBools(a1, a2) {
		t.Fatalf("same seed, different faults:\n%v\n%v", a1, a2)
	}
	if equalBools(a1, b) {
		t.Fatalf("seeds 42 and 43 gave the same 40 draws: %v", a1)
	}
	fails := 0
	for _, ok := range a1 {
		if !ok {
			fails++
		}
	}
	if fails == 0 || fails == len(a1) {
		t.Fatalf("p=0.5 over 40 requests gave %d failures", fails)
	}
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The RNG depends on seed and name only, not on what other agents do or
// when: two fleets with the same seed inject the same faults per agent.
func TestFleetFaultsDeterministicAcrossRuns(t *testing.T) {
	run := func() map[string][]bool {
		ctx := testCtx(t)
		s := newScripted(t)
		f, err := NewFleet(FleetOptions{Count: 5, Template: Options{Controller: s.url(), Seed: 7,
			Behaviour: Behaviour{}.With("set_configuration_request", WithProbability(0.3, Do(ActionFail)))}})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer f.Stop()
		conns := map[string]*scriptConn{}
		for range 5 {
			c := s.accept(ctx)
			h := c.nextMsg(ctx).(api.NotifyAgentHello)
			conns[h.Instance] = c
		}
		cfg := config("c", f.Names()...)
		// Interleave the requests across agents in a different order each
		// round; per-agent draws must not care.
		out := map[string][]bool{}
		for round := 0; round < 10; round++ {
			for i := range 5 {
				name := f.Names()[(i+round)%5]
				conns[name].send(f.Agent(name).Topic(), api.AgentSetConfigurationRequest{Reqid: "r", Config: cfg})
			}
			for _, name := range f.Names() {
				r := conns[name].nextMsg(ctx).(api.AgentSetConfigurationResponse)
				out[name] = append(out[name], r.Result.Success)
			}
		}
		return out
	}
	first, second := run(), run()
	for name, seq := range first {
		if !equalBools(seq, second[name]) {
			t.Fatalf("%s: %v vs %v", name, seq, second[name])
		}
	}
}

// Frames an agent cannot use are recorded and answered by nothing; the
// agent keeps serving.
func TestMalformedAndUnexpectedFramesAreRecordedAndIgnored(t *testing.T) {
	ctx := testCtx(t)
	s := newScripted(t)
	a, c := started(t, ctx, s, Options{Name: "i1"})
	topic := a.Topic()
	c.sendRaw([]byte(`{"type":"data-message","topic":`))                                                               // invalid JSON
	c.sendRaw([]byte(`{"type":"data-message","topic":"zeek/cluster-control/agent/i1","@data-type":"count","data":7}`)) // not an event
	c.sendEvent(topic, broker.NewEvent("ClusterAgent::API::no_such_event", broker.String("x")))                        // unknown event
	c.sendEvent(topic, broker.NewEvent("ClusterAgent::API::agent_welcome_request", broker.Count(1)))                   // wrong type
	c.sendEvent(topic, broker.NewEvent("ClusterAgent::API::agent_welcome_request"))                                    // wrong count
	c.send(topic, api.AgentSetConfigurationResponse{Reqid: "X", Result: okResult("X", "other")})                       // not a request
	c.sendRaw([]byte(`{"type":"error","code":"deserialization_failed","context":"something the agent sent"}`))         // error frame
	probe(t, ctx, c, "i1", "P")

	// Error frames arrive on their own channel, so their place among the
	// data frames is not fixed.
	errFrames := a.Transcript().Filter(func(e Entry) bool { return e.Detail == "error frame from the controller" })
	if len(errFrames) != 1 || errFrames[0].Err != "deserialization_failed: something the agent sent" || errFrames[0].Action != ActionIgnore {
		t.Fatalf("error frame entries: %+v", errFrames)
	}
	in := a.Transcript().Filter(func(e Entry) bool { return e.Dir == In && e.Detail != "error frame from the controller" })
	if len(in) != 7 {
		t.Fatalf("recorded %d incoming data frames, want 7: %+v", len(in), in)
	}
	wantErr := []string{"decode frame", "not a Zeek event", "unknown event", "agent_welcome_request arg 0 (reqid)", "want 1 arguments", ""}
	for i, want := range wantErr {
		e := in[i]
		if e.Action != ActionIgnore || !strings.Contains(e.Err, want) || e.Raw == "" {
			t.Errorf("frame %d: action %q err %q raw %q; want ignore with %q and the raw text", i+1, e.Action, e.Err, e.Raw, want)
		}
	}
	if in[5].Detail != "not a request an agent answers" || in[5].Kind != api.KindAgentSetConfigurationResponse {
		t.Errorf("response frame: kind %v detail %q err %q", in[5].Kind, in[5].Detail, in[5].Err)
	}
	if in[6].Action != ActionReply {
		t.Errorf("probe: action %q", in[6].Action)
	}
	if st := a.Status(); !st.Connected || st.FaultsInjected != 0 {
		t.Fatalf("status after bad frames: %+v", st)
	}
}

func TestPrefixNeighbourTrafficIsHandledUnlessExactTopic(t *testing.T) {
	for _, exact := range []bool{false, true} {
		ctx := testCtx(t)
		s := newScripted(t)
		a, c := started(t, ctx, s, Options{Name: "a1", ExactTopic: exact})
		// "a1" subscribes to a prefix of a10's topic (§12.1 pitfall).
		c.send(api.CC42.AgentTopic("a10"), api.AgentWelcomeRequest{Reqid: "W10"})
		if exact {
			probe(t, ctx, c, "a1", "P")
			if e := a.Received(api.KindAgentWelcomeRequest)[0]; e.Action != ActionIgnore {
				t.Fatalf("exact topic: neighbour's welcome action %q", e.Action)
			}
		} else {
			// A real agent answers it, naming itself, on its own topic.
			f := c.next(ctx)
			if f.f.Topic != a.Topic() {
				t.Fatalf("answer on %q", f.f.Topic)
			}
			equalMsg(t, f.msg, api.AgentWelcomeResponse{Reqid: "W10", Result: okResult("W10", "a1")})
		}
		a.Stop()
	}
}

func TestHelloOptions(t *testing.T) {
	ctx := testCtx(t)
	s := newScripted(t)
	a, err := New(Options{Name: "v0", Controller: s.url(), APIVersion: Uint64(0), Host: netip.MustParseAddr("10.1.2.3")})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	c := s.accept(ctx)
	equalMsg(t, c.nextMsg(ctx), api.NotifyAgentHello{Instance: "v0", Host: netip.MustParseAddr("10.1.2.3"), APIVersion: 0})
	if err := a.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.SendHelloVersion(ctx, 2); err != nil {
		t.Fatal(err)
	}
	equalMsg(t, c.nextMsg(ctx), api.NotifyAgentHello{Instance: "v0", Host: netip.MustParseAddr("10.1.2.3"), APIVersion: 2})
	if err := a.SendHello(ctx); err != nil {
		t.Fatal(err)
	}
	equalMsg(t, c.nextMsg(ctx), api.NotifyAgentHello{Instance: "v0", Host: netip.MustParseAddr("10.1.2.3"), APIVersion: 0})
	if err := a.SendNotifyError(ctx, "create failed", "worker-1"); err != nil {
		t.Fatal(err)
	}
	f := c.next(ctx)
	if len(f.ev.Args) != 3 {
		t.Fatalf("notify_error carries %d args, want 3 (node has &default but travels)", len(f.ev.Args))
	}
	equalMsg(t, f.msg, api.NotifyError{Instance: "v0", Msg: "create failed", Node: "worker-1"})
	if err := a.SendNotifyLog(ctx, "hi", ""); err != nil {
		t.Fatal(err)
	}
	equalMsg(t, c.nextMsg(ctx), api.NotifyLog{Instance: "v0", Msg: "hi", Node: ""})
	if err := a.SendRaw(ctx, []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if f := c.next(ctx); string(f.raw) != "not json" {
		t.Fatalf("raw frame = %q", f.raw)
	}
}

func TestHelloNoneSendsNothing(t *testing.T) {
	ctx := testCtx(t)
	s := newScripted(t)
	a, c := started(t, ctx, s, Options{Name: "quiet", Hello: HelloNone})
	probe(t, ctx, c, "quiet", "P")
	if n := len(a.Sent(api.KindNotifyAgentHello)); n != 0 {
		t.Fatalf("sent %d hellos", n)
	}
}

func TestHelloRepeatsUntilWelcomed(t *testing.T) {
	ctx := testCtx(t)
	s := newScripted(t)
	a, c := started(t, ctx, s, Options{Name: "rep", Hello: HelloRepeat, HelloInterval: Duration(10 * time.Millisecond)})
	for i := 0; i < 3; i++ {
		if _, ok := c.nextMsg(ctx).(api.NotifyAgentHello); !ok {
			t.Fatalf("frame %d is not a repeated hello", i+2)
		}
	}
	c.send(a.Topic(), api.AgentWelcomeRequest{Reqid: "W"})
	for {
		// Hellos already in flight may precede the welcome's answer.
		m := c.nextMsg(ctx)
		if _, ok := m.(api.AgentWelcomeResponse); ok {
			break
		}
	}
	if err := a.WaitWelcomed(ctx); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	sub := a.helloSub
	a.mu.Unlock()
	helloClocks.mu.Lock()
	clock := helloClocks.clocks[10*time.Millisecond]
	helloClocks.mu.Unlock()
	if sub || clock != nil {
		t.Fatalf("welcomed agent still on the hello clock (subscribed %t, clock %v)", sub, clock != nil)
	}
}

// An agent that cannot connect retries with a bounded, growing backoff and
// says why in its status; once the controller is there, it connects.
func TestReconnectBackoffAndStatus(t *testing.T) {
	ctx := testCtx(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	a, err := New(Options{Name: "r1", Controller: addr,
		Backoff: Backoff{Initial: Duration(5 * time.Millisecond), Max: Duration(20 * time.Millisecond)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	st, err := a.WaitStatus(ctx, func(s Status) bool { return s.DialFailures >= 4 })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st.LastError, "connection refused") || st.Connected || !st.Running {
		t.Fatalf("status = %+v", st)
	}
	if st.RetryIn != 20*time.Millisecond {
		t.Fatalf("after 4 failures the backoff is %s, want the 20ms cap", st.RetryIn)
	}
	if n := len(a.Transcript().Filter(func(e Entry) bool { return e.Detail == "dial failed" })); n < 4 {
		t.Fatalf("transcript has %d dial failures", n)
	}

	// Bring a controller up on that address.
	hub := broker.NewHub(broker.HubOptions{})
	got := make(chan broker.Delivery, 4)
	hub.Subscribe([]string{"zeek/cluster-control/agent"}, func(d broker.Delivery) { got <- d })
	srv, err := broker.Serve(ctx, addr, hub)
	if err != nil {
		t.Skipf("could not re-bind %s for the controller: %v", addr, err)
	}
	defer srv.Close()
	if err := a.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-got:
		ev, _ := broker.EventFromValue(d.Data)
		if ev.Name != "ClusterAgent::API::notify_agent_hello" {
			t.Fatalf("first event after connecting: %s", ev.Name)
		}
	case <-ctx.Done():
		t.Fatal("no hello after connecting")
	}
}

func TestStopKillRestart(t *testing.T) {
	ctx := testCtx(t)
	s := newScripted(t)
	a, c := started(t, ctx, s, Options{Name: "k1"})
	a.Stop()
	if err := c.ended(ctx); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("Stop: connection ended with %v, want close 1000", err)
	}
	if st := a.Status(); st.Running || st.Connected {
		t.Fatalf("after Stop: %+v", st)
	}
	if err := a.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	c2 := s.accept(ctx)
	if _, ok := c2.nextMsg(ctx).(api.NotifyAgentHello); !ok {
		t.Fatal("no hello after Restart")
	}
	a.Kill()
	err := c2.ended(ctx)
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure {
		t.Fatalf("Kill: connection ended with close code %d, want no close frame", ce.Code)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err == nil {
		t.Fatal("second Start of a running agent succeeded")
	}
	c3 := s.accept(ctx)
	c3.nextMsg(ctx)
	if st := a.Status(); st.Connections != 3 {
		t.Fatalf("connections = %d, want 3", st.Connections)
	}
	// Entries keep their connection number across restarts. (An entry is
	// recorded once its write returned, which may be after the peer read it.)
	if _, err := a.WaitFor(ctx, func(e Entry) bool { return e.Kind == api.KindNotifyAgentHello && e.Conn == 3 }); err != nil {
		t.Fatal(err)
	}
	hellos := a.Sent(api.KindNotifyAgentHello)
	if len(hellos) != 3 || hellos[0].Conn != 1 || hellos[2].Conn != 3 {
		t.Fatalf("hellos per connection: %+v", hellos)
	}
}

func TestTranscriptJSONLinesAndWaitFor(t *testing.T) {
	ctx := testCtx(t)
	s := newScripted(t)
	a, c := started(t, ctx, s, Options{Name: "t1", Behaviour: Behaviour{}.With("set_configuration_request", Fail("w", "x"))})
	waited := make(chan Entry, 1)
	go func() {
		e, err := a.WaitFor(ctx, func(e Entry) bool { return e.Dir == Out && e.Kind == api.KindAgentSetConfigurationResponse })
		if err == nil {
			waited <- e
		}
		close(waited)
	}()
	c.send(a.Topic(), api.AgentSetConfigurationRequest{Reqid: "A", Config: config("c", "t1")})
	c.nextMsg(ctx)
	e, ok := <-waited
	if !ok || e.Action != ActionFail || !strings.Contains(e.Raw, `"data":"A"`) {
		t.Fatalf("WaitFor returned %+v", e)
	}
	// Already recorded entries satisfy WaitFor at once.
	if _, err := a.WaitFor(ctx, func(e Entry) bool { return e.Kind == api.KindNotifyAgentHello }); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := a.WaitFor(short, func(e Entry) bool { return false }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor on nothing: %v", err)
	}

	var buf bytes.Buffer
	if err := a.Transcript().WriteJSONL(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(a.Transcript().Entries()) {
		t.Fatalf("%d lines for %d entries", len(lines), len(a.Transcript().Entries()))
	}
	var prev time.Duration
	sawIn := false
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i+1, err, l)
		}
		at := time.Duration(m["t_ns"].(float64))
		if at < prev {
			t.Fatalf("line %d goes back in time", i+1)
		}
		prev = at
		if m["dir"] == "in" && m["event"] == "ClusterAgent::API::set_configuration_request" {
			sawIn = true
			if m["action"] != "fail" || m["fault"] != true || m["raw"] == "" || m["msg"] == nil {
				t.Fatalf("incoming entry lacks action/raw/msg: %s", l)
			}
		}
	}
	if !sawIn {
		t.Fatal("dump lacks the incoming request")
	}
}

func TestTranscriptLimitKeepsNewestAndCounts(t *testing.T) {
	tr := newTranscript("x", time.Now(), 3)
	for i := 0; i < 5; i++ {
		tr.add(Entry{Dir: In, Kind: api.KindAgentWelcomeRequest, Detail: string(rune('a' + i))})
	}
	es := tr.Entries()
	if len(es) != 3 || es[0].Detail != "c" || es[2].Seq != 5 || tr.Dropped() != 2 || tr.Count(api.KindAgentWelcomeRequest) != 5 {
		t.Fatalf("entries %+v dropped %d count %d", es, tr.Dropped(), tr.Count(api.KindAgentWelcomeRequest))
	}
}

func TestOptionsValidation(t *testing.T) {
	cases := []struct {
		o    Options
		want string
	}{
		{Options{}, "name: required"},
		{Options{Name: "a"}, "controller: required"},
		{Options{Name: "a", Controller: "nohost"}, "want host:port or a ws:// URL"},
		{Options{Name: "a", Controller: "http://x:1"}, "scheme must be ws or wss"},
		{Options{Name: "a", Connect: "sideways"}, `connect: "sideways"`},
		{Options{Name: "a", Connect: ConnectListen, ListenPort: 70000}, "listen_port: 70000"},
		{Options{Name: "a", Controller: "x:1", Hello: "often"}, `hello: "often"`},
		{Options{Name: "a", Controller: "x:1", Behaviour: Behaviour{}.With("deploy_request", Do(ActionFail))}, "on.deploy_request: not a request an agent of profile cc42 receives"},
		{Options{Name: "a", Controller: "x:1", Behaviour: Behaviour{}.With("set_configuration_request", Do("fial"))}, `on.set_configuration_request.action: unknown action "fial"`},
		{Options{Name: "a", Controller: "x:1", Behaviour: Behaviour{}.With("*", WithProbability(1.5, Do(ActionNever)))}, "on.*.probability: must be within (0, 1], got 1.5"},
		{Options{Name: "a", Controller: "x:1", Behaviour: Behaviour{}.With("set_configuration_request", Sequence(Do(ActionFail), Do(ActionReply)))}, "sequence[0].count: only the last step"},
		{Options{Name: "a", Controller: "x:1", Behaviour: Behaviour{}.With("set_configuration_request", Rule{Action: ActionNever, Node: "n"})}, `node: only action fail takes a node, not "never"`},
		{Options{Name: "a", Controller: "x:1", Behaviour: Behaviour{}.With("set_configuration_request", Rule{Action: ActionFail, Count: 2})}, "count: only a sequence step has a count"},
	}
	for _, tc := range cases {
		_, err := New(tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error containing %q", tc.o, err, tc.want)
		}
	}
}

func TestControllerURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:2150":                       "ws://127.0.0.1:2150/v1/messages/json",
		":2150":                                "ws://127.0.0.1:2150/v1/messages/json",
		"[::1]:9":                              "ws://[::1]:9/v1/messages/json",
		"ws://127.0.0.1:2150":                  "ws://127.0.0.1:2150/v1/messages/json",
		"ws://127.0.0.1:2150/v1/messages/json": "ws://127.0.0.1:2150/v1/messages/json",
		"wss://h:1/custom":                     "wss://h:1/custom",
	} {
		got, err := ControllerURL(in)
		if err != nil || got != want {
			t.Errorf("ControllerURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "host", "h:notaport", "ftp://h:1", "ws://"} {
		if _, err := ControllerURL(bad); err == nil {
			t.Errorf("ControllerURL(%q) accepted", bad)
		}
	}
}

// The declarative form is plain data: it survives a JSON round trip.
func TestBehaviourJSONRoundTrip(t *testing.T) {
	b := Behaviour{On: map[string]Rule{
		"set_configuration_request": Sequence(Delayed(50*time.Millisecond).Times(2),
			WithProbability(0.25, Fail("worker-1", "boom"))),
		"agent_welcome_request": {Action: ActionOtherInstance, Instance: "x", Probability: 0.5, Otherwise: &Rule{Action: ActionNever}},
	}}
	j, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"on":{"agent_welcome_request":{"action":"other_instance","instance":"x","probability":0.5,"otherwise":{"action":"never"}},` +
		`"set_configuration_request":{"sequence":[{"action":"reply","delay":"50ms","count":2},{"action":"fail","node":"worker-1","error":"boom","probability":0.25}]}}}`
	if string(j) != want {
		t.Fatalf("JSON:\n%s\nwant\n%s", j, want)
	}
	var back Behaviour
	if err := json.Unmarshal(j, &back); err != nil {
		t.Fatal(err)
	}
	j2, _ := json.Marshal(back)
	if !bytes.Equal(j, j2) {
		t.Fatalf("round trip changed it:\n%s\n%s", j, j2)
	}
	if err := back.Validate(api.CC42); err != nil {
		t.Fatal(err)
	}
	if names := RequestNames(api.CC42); strings.Join(names, ",") != "agent_standby_request,agent_welcome_request,set_configuration_request" {
		t.Fatalf("RequestNames = %v", names)
	}
}

// A delayed answer still pending when the agent stops is dropped with its
// timer (goleak in TestMain would see a leaked timer goroutine).
func TestStopCancelsPendingDelayedReplies(t *testing.T) {
	ctx := testCtx(t)
	s := newScripted(t)
	a, c := started(t, ctx, s, Options{Name: "d1", Behaviour: Behaviour{}.With("set_configuration_request", Delayed(time.Hour))})
	c.send(a.Topic(), api.AgentSetConfigurationRequest{Reqid: "A", Config: config("c", "d1")})
	if _, err := a.Transcript().WaitReceived(ctx, api.KindAgentSetConfigurationRequest); err != nil {
		t.Fatal(err)
	}
	a.Stop()
	if err := c.ended(ctx); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("connection ended with %v", err)
	}
	if n := len(a.Sent(api.KindAgentSetConfigurationResponse)); n != 0 {
		t.Fatalf("%d delayed answers sent after Stop", n)
	}
}

// A listening agent answers a bad subscription handshake as a Broker
// server does (error frame, close 1008), records it, and keeps listening.
func TestListeningAgentBadHandshake(t *testing.T) {
	ctx := testCtx(t)
	a, err := New(Options{Name: "hs", Connect: ConnectListen})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, a.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"not":"an array"}`)); err != nil {
		t.Fatal(err)
	}
	_, b, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	f, err := broker.DecodeFrame(b)
	if err != nil || f.Type != broker.FrameError || f.Code != broker.CodeDeserializationFailed {
		t.Fatalf("answer to a bad handshake: %s (%v)", b, err)
	}
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
		t.Fatalf("after the error frame: %v, want close 1008", err)
	}
	if _, err := a.WaitFor(ctx, func(e Entry) bool { return strings.HasPrefix(e.Detail, "bad subscription handshake") }); err != nil {
		t.Fatal(err)
	}
	if st := a.Status(); st.Connected || st.Connections != 0 {
		t.Fatalf("a failed handshake counted as a connection: %+v", st)
	}
	// A wrong path gets a 404 naming the right one.
	_, resp, err := websocket.DefaultDialer.DialContext(ctx, strings.Replace(a.URL(), "/v1/messages/json", "/other", 1), nil)
	if err == nil || resp == nil || resp.StatusCode != 404 {
		t.Fatalf("wrong path: %v %v", resp, err)
	}
	resp.Body.Close()
	c := controllerDial(t, ctx, a.URL())
	if _, ok := nextTyped(t, ctx, c).(api.NotifyAgentHello); !ok {
		t.Fatal("no hello after a bad handshake")
	}
}
