package fakeagent

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// hubController is a minimal controller side built from a Hub and an
// in-process subscriber: it welcomes every agent that says hello and
// collects what the agents answer.
type hubController struct {
	srv   *broker.Server
	local *broker.Local
	mu    sync.Mutex
	got   map[string][]api.Message
}

func newHubController(t *testing.T, ctx context.Context, welcome bool) *hubController {
	t.Helper()
	hc := &hubController{got: map[string][]api.Message{}}
	hub := broker.NewHub(broker.HubOptions{})
	hc.local = hub.Subscribe([]string{api.CC42.AgentTopicPrefix}, func(d broker.Delivery) {
		ev, err := broker.EventFromValue(d.Data)
		if err != nil {
			return
		}
		m, err := api.CC42.Decode(ev)
		if err != nil {
			return
		}
		name := strings.TrimPrefix(d.Topic, api.CC42.AgentTopicPrefix+"/")
		hc.mu.Lock()
		hc.got[name] = append(hc.got[name], m)
		hc.mu.Unlock()
		if h, ok := m.(api.NotifyAgentHello); ok && welcome {
			w, _ := api.CC42.Encode(api.AgentWelcomeRequest{Reqid: "W-" + h.Instance})
			_ = hc.local.PublishEvent(api.CC42.AgentTopic(h.Instance), w)
		}
	})
	srv, err := broker.Serve(ctx, "127.0.0.1:0", hub)
	if err != nil {
		t.Fatal(err)
	}
	hc.srv = srv
	t.Cleanup(func() { _ = srv.Close() })
	return hc
}

func (hc *hubController) send(t *testing.T, name string, m api.Message) {
	t.Helper()
	ev, err := api.CC42.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := hc.local.PublishEvent(api.CC42.AgentTopic(name), ev); err != nil {
		t.Fatal(err)
	}
}

func TestFleetStartsWaitsAndTargetsAgents(t *testing.T) {
	ctx := testCtx(t)
	hc := newHubController(t, ctx, true)
	f, err := NewFleet(FleetOptions{Count: 20, Template: Options{Controller: hc.srv.URL()},
		Customize: func(i int, name string, o *Options) {
			if i == 3 {
				o.Behaviour = Behaviour{}.With("set_configuration_request", Fail("worker-3", "boom"))
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if f.Len() != 20 || f.Names()[0] != "agent-001" || f.Names()[19] != "agent-020" || f.Agent("agent-003") == nil {
		t.Fatalf("names = %v", f.Names())
	}
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	if err := f.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitWelcomed(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := api.Configuration{ID: "c", Instances: f.Instances()}
	for _, name := range f.Names() {
		hc.send(t, name, api.AgentSetConfigurationRequest{Reqid: "A-" + name, Config: cfg})
	}
	for _, a := range f.Agents() {
		if _, err := a.WaitFor(ctx, func(e Entry) bool { return e.Kind == api.KindAgentSetConfigurationResponse }); err != nil {
			t.Fatal(err)
		}
	}
	st := f.Status()
	if st.Agents != 20 || st.Running != 20 || st.Connected != 20 || st.Welcomed != 20 || st.ConfigsReceived != 20 || st.FaultsInjected != 1 {
		t.Fatalf("fleet status = %+v", st)
	}
	if !strings.Contains(st.String(), "connected 20  welcomed 20  configs received 20  failures injected 1") {
		t.Fatalf("status line %q", st.String())
	}
	fail := f.Agent("agent-003").Sent(api.KindAgentSetConfigurationResponse)[0].Msg.(api.AgentSetConfigurationResponse)
	if fail.Result.Success || fail.Result.Error != "boom" {
		t.Fatalf("agent-003 answered %+v", fail.Result)
	}

	// A targeted kill takes one agent down; the totals follow.
	f.Agent("agent-007").Kill()
	if st := f.Status(); st.Connected != 19 || st.Welcomed != 19 || st.Running != 19 {
		t.Fatalf("after killing agent-007: %+v", st)
	}
	if err := f.Agent("agent-007").Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitWelcomed(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestFleetNotConnectedSaysWhy(t *testing.T) {
	ctx := testCtx(t)
	f, err := NewFleet(FleetOptions{Count: 2, NamePattern: "n%d", Template: Options{Controller: "127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	for _, a := range f.Agents() {
		if _, err := a.WaitStatus(ctx, func(s Status) bool { return s.DialFailures > 0 }); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 0)
	defer cancel()
	err = f.WaitConnected(short)
	if err == nil || !strings.Contains(err.Error(), "waiting for all 2 agents to be connected: 0 are") ||
		!strings.Contains(err.Error(), "n1: connect to controller") {
		t.Fatalf("WaitConnected error: %v", err)
	}
}

func TestFleetOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		o    FleetOptions
		want string
	}{
		{FleetOptions{}, "count must be at least 1"},
		{FleetOptions{Count: 2, NamePattern: "same", Template: Options{Controller: "x:1"}}, `name pattern "same" must hold exactly one integer verb`},
		{FleetOptions{Count: 2, NamePattern: "a%d%d", Template: Options{Controller: "x:1"}}, "exactly one integer verb"},
		{FleetOptions{Count: 2, Template: Options{}}, "agent agent-001: controller: required"},
		{FleetOptions{Count: 10, ListenBasePort: 65530, Template: Options{Connect: ConnectListen}}, "leaves the port range"},
	} {
		if _, err := NewFleet(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewFleet(%+v) = %v, want %q", tc.o, err, tc.want)
		}
	}
}

func TestFleetListenBasePort(t *testing.T) {
	ctx := testCtx(t)
	// Find a free base by letting one agent pick a port, then stop it.
	probeAgent, err := New(Options{Name: "p", Connect: ConnectListen})
	if err != nil {
		t.Fatal(err)
	}
	if err := probeAgent.Start(ctx); err != nil {
		t.Fatal(err)
	}
	base := probeAgent.Port()
	probeAgent.Stop()
	f, err := NewFleet(FleetOptions{Count: 3, ListenBasePort: base, Template: Options{Connect: ConnectListen}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(ctx); err != nil {
		t.Skipf("ports from %d not free: %v", base, err)
	}
	defer f.Stop()
	for i, inst := range f.Instances() {
		p, ok := inst.ListenPort.Get()
		if !ok || int(p.Number) != base+i {
			t.Fatalf("instance %d = %+v, want port %d", i, inst, base+i)
		}
	}
	c := controllerDial(t, ctx, f.Agent("agent-002").URL())
	if h, ok := nextTyped(t, ctx, c).(api.NotifyAgentHello); !ok || h.Instance != "agent-002" {
		t.Fatalf("hello from port %d: %+v", base+1, h)
	}
}
