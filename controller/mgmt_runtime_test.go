package controller

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/client"
	"github.com/zcc-harness/zcc/fakeagent"
)

// Runtime tests of the Management profile over loopback: real WebSocket
// connections, fakeagent agents with profile api.Mgmt, and the typed
// client. Expected values are written from the spec
// (management-websocket.md §2.4) and the Zeek 8.1.2 observations.

func startMgmtController(t *testing.T, ctx context.Context, opts Options) *Controller {
	t.Helper()
	opts.Profile = api.Mgmt
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 2 * time.Second
		opts.SweepInterval = 100 * time.Millisecond
	}
	return startController(t, ctx, opts)
}

func startMgmtAgent(t *testing.T, ctx context.Context, url, name string, tweak func(*fakeagent.Options)) *fakeagent.Agent {
	t.Helper()
	o := fakeagent.Options{Name: name, Profile: api.Mgmt, Controller: url,
		HelloInterval: fakeagent.Duration(50 * time.Millisecond)}
	if tweak != nil {
		tweak(&o)
	}
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

func dialMgmtClient(t *testing.T, ctx context.Context, url string) *client.Client {
	t.Helper()
	cl, err := client.Dial(ctx, url, client.Options{Profile: api.Mgmt})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// waitKnown polls the controller's snapshot until every name is known.
func waitKnown(t *testing.T, ctx context.Context, c *Controller, names ...string) {
	t.Helper()
	for {
		known := map[string]bool{}
		for _, n := range c.Snapshot().Known {
			known[n] = true
		}
		all := true
		for _, n := range names {
			all = all && known[n]
		}
		if all {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("instances %v never became known (known: %v)", names, c.Snapshot().Known)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func mgmtNode(name, instance string, role api.ClusterRole) api.Node {
	return api.Node{Name: name, Instance: instance, Role: role, State: api.StateRunning}
}

func TestMgmtRuntimeStageDeployGetNodesIDValueRestart(t *testing.T) {
	ctx := testCtx(t)
	c := startMgmtController(t, ctx, Options{})
	a1 := startMgmtAgent(t, ctx, c.URL(), "instance-1", nil)
	a2 := startMgmtAgent(t, ctx, c.URL(), "instance-2", nil)
	waitKnown(t, ctx, c, "instance-1", "instance-2")
	cl := dialMgmtClient(t, ctx, c.URL())

	res, err := cl.GetInstances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	insts, err := api.Mgmt.DecodeInstances(res.Data)
	if err != nil || len(insts) != 2 || insts[0].Name != "instance-1" || insts[0].Host != netip.MustParseAddr("127.0.0.1") || insts[0].ListenPort.Set {
		t.Fatalf("get_instances = %+v, %v; want instance-1 and instance-2 at 127.0.0.1 without port", insts, err)
	}

	cfg := api.Configuration{ID: "cfg-1",
		Instances: []api.Instance{{Name: "instance-1", Host: netip.IPv4Unspecified()}, {Name: "instance-2", Host: netip.IPv4Unspecified()}},
		Nodes: []api.Node{
			mgmtNode("manager", "instance-1", api.ClusterRoleManager),
			mgmtNode("logger", "instance-1", api.ClusterRoleLogger),
			mgmtNode("worker-1", "instance-2", api.ClusterRoleWorker),
		}}
	rs, err := cl.StageConfiguration(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || !rs[0].Success {
		t.Fatalf("stage: %+v", rs)
	}
	if id, _ := rs[0].Data.AsString(); id != "cfg-1" {
		t.Fatalf("stage data %v, want the config id", rs[0].Data)
	}

	rs, err = cl.Deploy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// instance-1's two nodes, instance-2's worker, then the controller's
	// own Result with the config id.
	if len(rs) != 4 {
		t.Fatalf("deploy results %+v", rs)
	}
	last := rs[3]
	if id, _ := last.Data.AsString(); !last.Success || id != "cfg-1" || last.Instance != "" || last.Node.Set {
		t.Fatalf("deploy's own Result %+v", last)
	}
	for _, r := range rs[:3] {
		if !r.Success || !r.Node.Set || r.Instance == "" {
			t.Errorf("agent Result %+v", r)
		}
	}

	deployed, err := cl.GetConfiguration(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := api.Mgmt.DecodeConfiguration(deployed.Data)
	if err != nil {
		t.Fatal(err)
	}
	ports := map[string]string{}
	for _, n := range dc.Nodes {
		ports[n.Name] = n.Port.String() + " " + n.MetricsPort.String()
	}
	// Broker ports by instance, role, name from 2200; metrics ports per
	// host from 9000 in the same order (both instances are 127.0.0.1).
	want := map[string]string{"manager": "2200/tcp 9000/tcp", "logger": "2201/tcp 9001/tcp", "worker-1": "nil 9002/tcp"}
	for n, w := range want {
		if ports[n] != w {
			t.Errorf("deployed %s ports %q, want %q", n, ports[n], w)
		}
	}
	for _, in := range dc.Instances {
		if in.Host != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("deployed instance %+v: want the known agent's address", in)
		}
	}

	// One Result per known agent, in the order the agents answered.
	rs, err = cl.GetNodes(ctx)
	if err != nil || len(rs) != 2 || rs[0].Instance == rs[1].Instance ||
		(rs[0].Instance != "instance-1" && rs[0].Instance != "instance-2") ||
		(rs[1].Instance != "instance-1" && rs[1].Instance != "instance-2") {
		t.Fatalf("get_nodes %+v %v", rs, err)
	}
	for _, r := range rs {
		if st, err := api.Mgmt.DecodeNodeStatuses(r.Data); err != nil || len(st) == 0 {
			t.Errorf("get_nodes data of %s: %v %v", r.Instance, st, err)
		}
	}
	rs, err = cl.GetIDValue(ctx, "Log::default_rotation_interval", []string{"manager", "nosuch"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Error != "unknown cluster node" || rs[0].Node.V != "nosuch" || !rs[1].Success || rs[1].Node.V != "manager" {
		t.Fatalf("get_id_value %+v", rs)
	}
	rs, err = cl.Restart(ctx, []string{"logger"})
	if err != nil || len(rs) != 1 || !rs[0].Success || rs[0].Node.V != "logger" {
		t.Fatalf("restart %+v %v", rs, err)
	}
	if n := a1.Count(api.KindAgentDeployRequest) + a2.Count(api.KindAgentDeployRequest); n != 2 {
		t.Errorf("%d deploy_requests reached the agents, want one each", n)
	}
}
