package client

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
	"github.com/zcc-harness/zcc/controller"
	"github.com/zcc-harness/zcc/fakeagent"
)

// End-to-end against the reference controller, with timeouts scaled down
// so that a controller-side expiry lands within a few hundred ms.

func startController(t *testing.T) *controller.Controller {
	t.Helper()
	ctl, err := controller.Start(context.Background(), controller.Options{
		RequestTimeout: 150 * time.Millisecond,
		SweepInterval:  50 * time.Millisecond,
		ConnectRetry:   50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	return ctl
}

func dialController(t *testing.T, ctl *controller.Controller) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	c, err := Dial(ctx, ctl.URL(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func startAgent(t *testing.T, ctl *controller.Controller, name string, b fakeagent.Behaviour) *fakeagent.Agent {
	t.Helper()
	a, err := fakeagent.New(fakeagent.Options{Name: name, Controller: ctl.URL(), Behaviour: b})
	if err != nil {
		t.Fatal(err)
	}
	// The agent lives until Stop; ctx only bounds the wait for it.
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if err := a.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	return a
}

func oneWorker(instance string) api.Configuration {
	return api.Configuration{
		ID:        "cfg-e2e",
		Instances: []api.Instance{{Name: instance, Host: netip.IPv4Unspecified()}},
		Nodes: []api.Node{{Name: "worker-01", Instance: instance, Port: api.Some(broker.TCPPort(5001)),
			Role: api.ClusterRoleWorker, State: api.StateRunning, Env: map[string]string{}}},
	}
}

func TestE2EGetInstancesAndTestTimeout(t *testing.T) {
	ctl := startController(t)
	c := dialController(t, ctl)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()

	res, err := c.GetInstances(ctx, WithReqid("gi-1"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Success || res.Reqid != "gi-1" || res.Data.Kind() != broker.KindVector || res.Data.Len() != 0 {
		t.Errorf("fresh controller get_instances: %v (data %v)", res, res.Data)
	}

	res, err = c.TestTimeout(ctx, true, WithReqid("tt-state"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Success || res.Reqid != "tt-state" || res.Error != "request timed out" || res.Instance != "" {
		t.Errorf("test_timeout with state: %v", res)
	}

	short, cancelShort := context.WithTimeout(ctx, 400*time.Millisecond)
	defer cancelShort()
	_, err = c.TestTimeout(short, false, WithReqid("tt-stateless"))
	if !errors.Is(err, ErrNoResponse) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("test_timeout without state: %v", err)
	}
}

func TestE2ESetConfigurationWithAgent(t *testing.T) {
	ctl := startController(t)
	agent := startAgent(t, ctl, "instance-1", fakeagent.Behaviour{})
	c := dialController(t, ctl)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()

	cfg := oneWorker("instance-1")
	results, err := c.SetConfiguration(ctx, cfg, WithReqid("R1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || !results[0].Success || results[0].Reqid != "R1" || results[0].Instance != "instance-1" {
		t.Fatalf("results %v", results)
	}
	if got := agent.Config(); got == nil || !got.Equal(cfg) {
		t.Errorf("agent holds %v, want %v", got, cfg)
	}

	res, err := c.GetInstances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	insts, err := c.Profile().DecodeInstances(res.Data)
	if err != nil || len(insts) != 1 || !insts[0].Equal(cfg.Instances[0]) {
		t.Errorf("instances %v, %v", insts, err)
	}
}

// Two clients on one controller: while A's configuration is pending, B's
// requests get B's answers only, and A still gets its own timeout.
func TestE2ETwoClientsCorrelate(t *testing.T) {
	ctl := startController(t)
	agent := startAgent(t, ctl, "instance-1", fakeagent.Behaviour{}.With("set_configuration_request", fakeagent.Do(fakeagent.ActionNever)))
	a := dialController(t, ctl)
	b := dialController(t, ctl)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()

	pending := make(chan reply, 1)
	go func() {
		rs, err := a.SetConfiguration(ctx, oneWorker("instance-1"), WithReqid("A"))
		pending <- reply{api.SetConfigurationResponse{Reqid: "A", Results: rs}, err}
	}()
	// Once the agent has A's configuration, A is the controller's pending
	// request (and stays so: the agent never answers).
	if _, err := agent.WaitFor(ctx, func(e fakeagent.Entry) bool {
		return e.Dir == fakeagent.In && e.Kind == api.KindAgentSetConfigurationRequest
	}); err != nil {
		t.Fatal(err)
	}
	if p := ctl.Snapshot().Pending; p != "A" {
		t.Fatalf("pending request %q, want A", p)
	}
	rs, err := b.SetConfiguration(ctx, oneWorker("instance-1"), WithReqid("B"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Success || rs[0].Reqid != "B" || !strings.Contains(rs[0].Error, "request A still pending") {
		t.Errorf("B's results %v", rs)
	}
	if _, err := b.GetInstances(ctx, WithReqid("B2")); err != nil {
		t.Errorf("B's get_instances: %v", err)
	}
	r := await(t, pending)
	if r.err != nil {
		t.Fatal(r.err)
	}
	got := r.msg.(api.SetConfigurationResponse).Results
	if len(got) != 1 || got[0].Reqid != "A" || got[0].Success || got[0].Error != "request timed out" {
		t.Errorf("A's results %v", got)
	}
}
