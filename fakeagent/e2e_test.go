package fakeagent_test

// End-to-end: fake agents against the reference controller over loopback.
// Each hook action must change what the controller answers the client the
// way the spec says a Zeek 4.2 controller would. The expected texts are
// written here from the spec (clustercontroller-v1.md §5.7, §5.10, §8),
// never taken from the controller's constants.

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
	"github.com/zcc-harness/zcc/controller"
	"github.com/zcc-harness/zcc/fakeagent"
)

const (
	// Timeout-path specs use a short controller timeout, so that a
	// "request timed out" Result comes within 100–150 ms (spec §6.3).
	shortTimeout = 100 * time.Millisecond
	shortSweep   = 50 * time.Millisecond
	// Success-path specs use a long one, so that a slow CI machine can
	// never turn a success into a timeout.
	longTimeout = 10 * time.Second
)

func e2eCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func startController(t *testing.T, ctx context.Context, timeout time.Duration) *controller.Controller {
	t.Helper()
	sweep := shortSweep
	if timeout > shortTimeout {
		sweep = timeout
	}
	c, err := controller.Start(ctx, controller.Options{Name: "controller-e2e", RequestTimeout: timeout, SweepInterval: sweep,
		ConnectRetry: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// client is the test's zeek-client: it publishes requests on the
// controller topic and reads the responses.
type client struct {
	t    *testing.T
	conn *broker.Conn
}

func dialClient(t *testing.T, ctx context.Context, url string) *client {
	t.Helper()
	conn, err := broker.Dial(ctx, url, []string{api.CC42.ControllerTopic}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &client{t: t, conn: conn}
}

func (c *client) send(ctx context.Context, m api.Message) {
	c.t.Helper()
	ev, err := api.CC42.Encode(m)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.conn.Publish(ctx, api.CC42.ControllerTopic, ev); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) next(ctx context.Context) api.Message {
	c.t.Helper()
	m, err := c.conn.Next(ctx)
	if err != nil {
		c.t.Fatalf("client: no response: %v", err)
	}
	ev, err := m.Event()
	if err != nil {
		c.t.Fatalf("client: %v\n%s", err, m.Raw)
	}
	msg, err := api.CC42.Decode(ev)
	if err != nil {
		c.t.Fatalf("client: %v\n%s", err, m.Raw)
	}
	return msg
}

// setConfig sends a set_configuration_request and returns its response.
func (c *client) setConfig(ctx context.Context, reqid string, cfg api.Configuration) []api.Result {
	c.t.Helper()
	c.send(ctx, api.SetConfigurationRequest{Reqid: reqid, Config: cfg})
	r, ok := c.next(ctx).(api.SetConfigurationResponse)
	if !ok || r.Reqid != reqid {
		c.t.Fatalf("client: want set_configuration_response %s, got %+v", reqid, r)
	}
	return r.Results
}

// expectNothingBefore proves that no other response is on its way: it
// asks get_instances and expects that answer next.
func (c *client) expectNothingBefore(ctx context.Context, reqid string) {
	c.t.Helper()
	c.send(ctx, api.GetInstancesRequest{Reqid: reqid})
	if r, ok := c.next(ctx).(api.GetInstancesResponse); !ok || r.Reqid != reqid {
		c.t.Fatalf("client: expected only the get_instances answer, got %+v", r)
	}
}

// configFor names every agent, one worker per agent.
func configFor(id string, agents ...*fakeagent.Agent) api.Configuration {
	cfg := api.Configuration{ID: id}
	for i, a := range agents {
		cfg.Instances = append(cfg.Instances, a.Instance())
		cfg.Nodes = append(cfg.Nodes, api.Node{Name: "worker-" + a.Name(), Instance: a.Name(),
			Port: api.Some(broker.TCPPort(uint16(6000 + i))), Role: api.ClusterRoleWorker, State: api.StateRunning})
	}
	return cfg
}

func startAgent(t *testing.T, ctx context.Context, o fakeagent.Options) *fakeagent.Agent {
	t.Helper()
	a, err := fakeagent.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	return a
}

// waitKnown waits until the controller has processed every agent's hello,
// so that the configuration welcomes them at once.
func waitKnown(t *testing.T, ctx context.Context, ctl *controller.Controller, names ...string) {
	t.Helper()
	for _, name := range names {
		for {
			found := false
			for _, k := range ctl.Snapshot().Known {
				found = found || k == name
			}
			if found {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("controller never heard %s's hello", name)
			case <-ctl.Logs():
				// Each log record is a state change worth re-checking.
			}
		}
	}
}

func timedOut(reqid string) api.Result {
	return api.Result{Reqid: reqid, Instance: "", Success: false, Error: "request timed out"}
}

func sameResults(t *testing.T, got, want []api.Result) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("results: got %d %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Reqid != w.Reqid || g.Instance != w.Instance || g.Success != w.Success || g.Error != w.Error ||
			g.Node != w.Node || !g.Data.IsNone() {
			t.Fatalf("result %d: got %+v, want %+v", i, g, w)
		}
	}
}

func TestE2EAllSucceed(t *testing.T) {
	ctx := e2eCtx(t)
	ctl := startController(t, ctx, longTimeout)
	var agents []*fakeagent.Agent
	for _, n := range []string{"e2e-a", "e2e-b", "e2e-c"} {
		agents = append(agents, startAgent(t, ctx, fakeagent.Options{Name: n, Controller: ctl.URL()}))
	}
	c := dialClient(t, ctx, ctl.URL())
	res := c.setConfig(ctx, "R1", configFor("cfg", agents...))
	want := []api.Result{{Reqid: "R1", Instance: "e2e-a", Success: true}, {Reqid: "R1", Instance: "e2e-b", Success: true},
		{Reqid: "R1", Instance: "e2e-c", Success: true}}
	sortResults(res)
	sameResults(t, res, want)
	for _, a := range agents {
		if a.Count(api.KindAgentWelcomeRequest) != 1 || a.Count(api.KindAgentSetConfigurationRequest) != 1 {
			t.Fatalf("%s: %d welcomes, %d configurations", a.Name(), a.Count(api.KindAgentWelcomeRequest),
				a.Count(api.KindAgentSetConfigurationRequest))
		}
		// Every agent gets the whole configuration (§5.6).
		if cfg := a.Config(); cfg == nil || len(cfg.Instances) != 3 || len(cfg.Nodes) != 3 {
			t.Fatalf("%s adopted %+v", a.Name(), cfg)
		}
	}
	c.expectNothingBefore(ctx, "G1")
}

func sortResults(rs []api.Result) {
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j].Instance < rs[j-1].Instance; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

// e2eCase: agent "bad" misbehaves per rule on set_configuration_request,
// agent "good" behaves; want is the client's Results (sorted by instance).
type e2eCase struct {
	name    string
	event   string
	rule    fakeagent.Rule
	timeout time.Duration
	want    func(reqid string) []api.Result
	check   func(t *testing.T, ctx context.Context, bad *fakeagent.Agent)
}

func TestE2EHookActionsChangeTheControllersAnswer(t *testing.T) {
	good := func(reqid string) api.Result { return api.Result{Reqid: reqid, Instance: "x-good", Success: true} }
	cases := []e2eCase{
		{name: "fail", event: "set_configuration_request", rule: fakeagent.Fail("worker-x-bad", "disk full"), timeout: longTimeout,
			want: func(r string) []api.Result {
				// §5.7 step 6: "node <node> failed: <error>".
				return []api.Result{{Reqid: r, Instance: "x-bad", Success: false, Error: "node worker-x-bad failed: disk full"}, good(r)}
			}},
		{name: "delay under the timeout", event: "set_configuration_request", rule: fakeagent.Delayed(30 * time.Millisecond), timeout: longTimeout,
			want: func(r string) []api.Result {
				return []api.Result{{Reqid: r, Instance: "x-bad", Success: true}, good(r)}
			}},
		{name: "never", event: "set_configuration_request", rule: fakeagent.Do(fakeagent.ActionNever), timeout: shortTimeout,
			want: func(r string) []api.Result { return []api.Result{timedOut(r)} }},
		{name: "delay over the timeout", event: "set_configuration_request", rule: fakeagent.Delayed(time.Second), timeout: shortTimeout,
			want: func(r string) []api.Result { return []api.Result{timedOut(r)} }},
		{name: "close before", event: "set_configuration_request", rule: fakeagent.Do(fakeagent.ActionCloseBefore), timeout: shortTimeout,
			want: func(r string) []api.Result { return []api.Result{timedOut(r)} }},
		{name: "reset before", event: "set_configuration_request", rule: fakeagent.Do(fakeagent.ActionResetBefore), timeout: shortTimeout,
			want: func(r string) []api.Result { return []api.Result{timedOut(r)} }},
		{name: "unknown reqid", event: "set_configuration_request", rule: fakeagent.Do(fakeagent.ActionUnknownReqid), timeout: shortTimeout,
			want: func(r string) []api.Result { return []api.Result{timedOut(r)} }},
		{name: "fail without node (zeek42 quirk)", event: "set_configuration_request", rule: fakeagent.Do(fakeagent.ActionFailNoNode), timeout: shortTimeout,
			// §5.7 step 11: the handler aborts; only the timeout answers.
			want: func(r string) []api.Result { return []api.Result{timedOut(r)} }},
		{name: "malformed", event: "set_configuration_request", rule: fakeagent.Do(fakeagent.ActionMalformed), timeout: shortTimeout,
			want: func(r string) []api.Result { return []api.Result{timedOut(r)} },
			check: func(t *testing.T, ctx context.Context, bad *fakeagent.Agent) {
				// The controller answers the bad frame with an error frame.
				e, err := bad.WaitFor(ctx, func(e fakeagent.Entry) bool { return e.Detail == "error frame from the controller" })
				if err != nil || !strings.HasPrefix(e.Err, "deserialization_failed") {
					t.Fatalf("error frame for invalid JSON: %+v %v", e, err)
				}
			}},
		{name: "wrong type", event: "set_configuration_request", rule: fakeagent.Do(fakeagent.ActionWrongType), timeout: shortTimeout,
			want: func(r string) []api.Result { return []api.Result{timedOut(r)} },
			check: func(t *testing.T, ctx context.Context, bad *fakeagent.Agent) {
				e, err := bad.WaitFor(ctx, func(e fakeagent.Entry) bool { return e.Detail == "error frame from the controller" })
				if err != nil || !strings.HasPrefix(e.Err, "deserialization_failed") || !strings.Contains(e.Err, "set_configuration_response") {
					t.Fatalf("error frame for a wrongly typed answer: %+v %v", e, err)
				}
			}},
		{name: "welcome never answered", event: "agent_welcome_request", rule: fakeagent.Do(fakeagent.ActionNever), timeout: shortTimeout,
			// Not every configured agent is ready: nobody gets the
			// configuration (§5.5), the request times out.
			want: func(r string) []api.Result { return []api.Result{timedOut(r)} },
			check: func(t *testing.T, _ context.Context, bad *fakeagent.Agent) {
				if n := bad.Count(api.KindAgentSetConfigurationRequest); n != 0 {
					t.Fatalf("an agent received the configuration before all were welcomed (%d)", n)
				}
			}},
		{name: "welcome failed", event: "agent_welcome_request", rule: fakeagent.Fail("", "not today"), timeout: shortTimeout,
			want: func(r string) []api.Result { return []api.Result{timedOut(r)} },
			check: func(t *testing.T, ctx context.Context, bad *fakeagent.Agent) {
				// A failed welcome gets standby("") (§5.4 step 4).
				e, err := bad.WaitFor(ctx, func(e fakeagent.Entry) bool {
					return e.Dir == fakeagent.In && e.Kind == api.KindAgentStandbyRequest
				})
				if err != nil || e.Msg.(api.AgentStandbyRequest).Reqid != "" {
					t.Fatalf("standby after a failed welcome: %+v %v", e, err)
				}
			}},
		{name: "welcome naming another instance", event: "agent_welcome_request", rule: fakeagent.Do(fakeagent.ActionOtherInstance), timeout: shortTimeout,
			want: func(r string) []api.Result { return []api.Result{timedOut(r)} },
			check: func(t *testing.T, ctx context.Context, bad *fakeagent.Agent) {
				// Standby goes to the named instance's topic; "x-bad" is a
				// prefix of "x-bad-other", so the agent hears it (§12.1).
				e, err := bad.WaitFor(ctx, func(e fakeagent.Entry) bool {
					return e.Dir == fakeagent.In && e.Kind == api.KindAgentStandbyRequest
				})
				if err != nil || e.Topic != "zeek/cluster-control/agent/x-bad-other" {
					t.Fatalf("standby for the foreign instance: %+v %v", e, err)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := e2eCtx(t)
			ctl := startController(t, ctx, tc.timeout)
			bad := startAgent(t, ctx, fakeagent.Options{Name: "x-bad", Controller: ctl.URL(),
				Backoff:   fakeagent.Backoff{Initial: fakeagent.Duration(10 * time.Millisecond)},
				Behaviour: fakeagent.Behaviour{}.With(tc.event, tc.rule)})
			goodAgent := startAgent(t, ctx, fakeagent.Options{Name: "x-good", Controller: ctl.URL()})
			waitKnown(t, ctx, ctl, "x-bad", "x-good")
			c := dialClient(t, ctx, ctl.URL())
			res := c.setConfig(ctx, "R", configFor("cfg", bad, goodAgent))
			sortResults(res)
			sameResults(t, res, tc.want("R"))
			if tc.check != nil {
				tc.check(t, ctx, bad)
			}
			if st := bad.Status(); st.FaultsInjected < 1 {
				t.Fatalf("bad agent status: %+v", st)
			}
			c.expectNothingBefore(ctx, "G")
		})
	}
}

// An agent answering twice, or with a stale reqid, must not crash the
// controller, and the client gets exactly one response.
func TestE2EDuplicateAndStaleReplies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rule    fakeagent.Rule
		timeout time.Duration
		second  func(r string) []api.Result
	}{
		{"twice", fakeagent.Do(fakeagent.ActionTwice), longTimeout,
			func(r string) []api.Result { return []api.Result{{Reqid: r, Instance: "d-1", Success: true}} }},
		// The second request is answered with the first one's child
		// reqid, which the controller ignores: it times out.
		{"stale reqid", fakeagent.Sequence(fakeagent.Do(fakeagent.ActionReply).Times(1), fakeagent.Do(fakeagent.ActionStaleReqid)), shortTimeout,
			func(r string) []api.Result { return []api.Result{timedOut(r)} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := e2eCtx(t)
			ctl := startController(t, ctx, tc.timeout)
			a := startAgent(t, ctx, fakeagent.Options{Name: "d-1", Controller: ctl.URL(),
				Behaviour: fakeagent.Behaviour{}.With("set_configuration_request", tc.rule)})
			waitKnown(t, ctx, ctl, "d-1")
			c := dialClient(t, ctx, ctl.URL())
			cfg := configFor("cfg", a)
			first := c.setConfig(ctx, "R1", cfg)
			if tc.name == "twice" {
				sameResults(t, first, tc.second("R1"))
			} else {
				sameResults(t, first, []api.Result{{Reqid: "R1", Instance: "d-1", Success: true}})
			}
			second := c.setConfig(ctx, "R2", cfg)
			sameResults(t, second, tc.second("R2"))
			// Wait until the controller has read every answer the agent
			// sent (§8: one "rx … set_configuration_response" line each),
			// then prove no further response reaches the client.
			sent := len(a.Sent(api.KindAgentSetConfigurationResponse))
			waitLogs(t, ctx, ctl, "rx ClusterAgent::API::set_configuration_response", sent)
			c.expectNothingBefore(ctx, "G")
			if got := ctl.Snapshot().Pending; got != "" {
				t.Fatalf("controller still has %q pending", got)
			}
		})
	}
}

// waitLogs waits until the controller has logged n lines starting with
// prefix since it started. Records drained by earlier waits still count.
func waitLogs(t *testing.T, ctx context.Context, ctl *controller.Controller, prefix string, n int) {
	t.Helper()
	seen := 0
	for seen < n {
		select {
		case rec := <-ctl.Logs():
			if strings.HasPrefix(rec.Msg, prefix) {
				seen++
			}
		case <-ctx.Done():
			t.Fatalf("controller logged %d of %d %q lines", seen, n, prefix)
		}
	}
}

// The controller-connects path: an Instance with a listen port makes the
// controller dial the agent, which then gets its configuration.
func TestE2EListeningAgent(t *testing.T) {
	ctx := e2eCtx(t)
	ctl := startController(t, ctx, longTimeout)
	a := startAgent(t, ctx, fakeagent.Options{Name: "listener-1", Connect: fakeagent.ConnectListen})
	inst := a.Instance()
	if p, ok := inst.ListenPort.Get(); !ok || p.Number == 0 || inst.Host != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("instance = %+v", inst)
	}
	c := dialClient(t, ctx, ctl.URL())
	res := c.setConfig(ctx, "RL", configFor("cfg", a))
	sameResults(t, res, []api.Result{{Reqid: "RL", Instance: "listener-1", Success: true}})
	st := a.Status()
	if !st.Connected || st.Connections != 1 || st.ConfigsReceived != 1 || !st.Welcomed {
		t.Fatalf("listening agent status = %+v", st)
	}
}

// A hello with api_version ≠ 1 is never welcomed (§5.3 step 2).
func TestE2EWrongAPIVersion(t *testing.T) {
	ctx := e2eCtx(t)
	ctl := startController(t, ctx, shortTimeout)
	a := startAgent(t, ctx, fakeagent.Options{Name: "v2", Controller: ctl.URL(), APIVersion: fakeagent.Uint64(2)})
	waitLogs(t, ctx, ctl, "instance v2/127.0.0.1 has checked in with incompatible API version 2", 1)
	c := dialClient(t, ctx, ctl.URL())
	sameResults(t, c.setConfig(ctx, "RV", configFor("cfg", a)), []api.Result{timedOut("RV")})
	if n := a.Count(api.KindAgentWelcomeRequest); n != 0 {
		t.Fatalf("agent with api_version 2 was welcomed %d times", n)
	}
	// A hello with the right version afterwards gets it welcomed.
	if err := a.SendHelloVersion(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := a.WaitFor(ctx, func(e fakeagent.Entry) bool { return e.Kind == api.KindAgentWelcomeRequest }); err != nil {
		t.Fatal(err)
	}
}

// Spontaneous notifications are accepted and change nothing (§5.13).
func TestE2ENotifications(t *testing.T) {
	ctx := e2eCtx(t)
	ctl := startController(t, ctx, longTimeout)
	a := startAgent(t, ctx, fakeagent.Options{Name: "n-1", Controller: ctl.URL()})
	if err := a.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := a.SendNotifyError(ctx, fmt.Sprintf("failed to create node w%d", i), fmt.Sprintf("w%d", i)); err != nil {
			t.Fatal(err)
		}
		if err := a.SendNotifyLog(ctx, "log line", ""); err != nil {
			t.Fatal(err)
		}
	}
	c := dialClient(t, ctx, ctl.URL())
	sameResults(t, c.setConfig(ctx, "RN", configFor("cfg", a)), []api.Result{{Reqid: "RN", Instance: "n-1", Success: true}})
	if n := len(a.Transcript().Filter(func(e fakeagent.Entry) bool { return e.Detail == "error frame from the controller" })); n != 0 {
		t.Fatalf("controller rejected %d notifications", n)
	}
}
