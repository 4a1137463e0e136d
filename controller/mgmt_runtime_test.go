package controller

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
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

func TestMgmtRuntimeBadInputGetsErrorFrames(t *testing.T) {
	ctx := testCtx(t)
	c := startMgmtController(t, ctx, Options{})
	cl := dialMgmtClient(t, ctx, c.URL())
	frames := []string{
		// wrong argument type: a count where get_instances wants a string
		`{"type":"data-message","topic":"zeek/management/controller","@data-type":"vector","data":[{"@data-type":"count","data":1},{"@data-type":"count","data":1},{"@data-type":"vector","data":[{"@data-type":"string","data":"Management::Controller::API::get_instances_request"},{"@data-type":"vector","data":[{"@data-type":"count","data":1}]}]}]}`,
		// an event Zeek does not declare
		`{"type":"data-message","topic":"zeek/management/controller","@data-type":"vector","data":[{"@data-type":"count","data":1},{"@data-type":"count","data":1},{"@data-type":"vector","data":[{"@data-type":"string","data":"Management::Controller::API::test_noop_request"},{"@data-type":"vector","data":[{"@data-type":"string","data":"x"}]}]}]}`,
		// a cc42 event under mgmt
		`{"type":"data-message","topic":"zeek/management/controller","@data-type":"vector","data":[{"@data-type":"count","data":1},{"@data-type":"count","data":1},{"@data-type":"vector","data":[{"@data-type":"string","data":"ClusterController::API::get_instances_request"},{"@data-type":"vector","data":[{"@data-type":"string","data":"x"}]}]}]}`,
		// not an event at all
		`{"type":"data-message","topic":"zeek/management/controller","@data-type":"string","data":"hello"}`,
	}
	for _, f := range frames {
		if err := cl.Conn().WriteRaw(ctx, []byte(f)); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-cl.Errors():
			if e.Code != "deserialization_failed" || !strings.HasPrefix(e.Context, "failed to create Zeek event: ") {
				t.Errorf("error frame %s %q for %s", e.Code, e.Context, f)
			}
		case <-ctx.Done():
			t.Fatalf("no error frame for %s", f)
		}
	}
	// The controller keeps serving.
	if res, err := cl.GetInstances(ctx); err != nil || !res.Success {
		t.Fatalf("get_instances after bad input: %+v %v", res, err)
	}
}

func TestMgmtRuntimeDeployTimeoutKeepsPartialResults(t *testing.T) {
	ctx := testCtx(t)
	c := startMgmtController(t, ctx, Options{RequestTimeout: 300 * time.Millisecond, SweepInterval: 50 * time.Millisecond})
	startMgmtAgent(t, ctx, c.URL(), "good", nil)
	startMgmtAgent(t, ctx, c.URL(), "silent", func(o *fakeagent.Options) {
		o.Behaviour = o.Behaviour.With("deploy_request", fakeagent.Do(fakeagent.ActionNever))
	})
	waitKnown(t, ctx, c, "good", "silent")
	cl := dialMgmtClient(t, ctx, c.URL())
	cfg := api.Configuration{ID: "c", Instances: []api.Instance{{Name: "good", Host: netip.IPv4Unspecified()}, {Name: "silent", Host: netip.IPv4Unspecified()}},
		Nodes: []api.Node{mgmtNode("w1", "good", api.ClusterRoleWorker), mgmtNode("w2", "silent", api.ClusterRoleWorker)}}
	if rs, err := cl.StageConfiguration(ctx, cfg); err != nil || !rs[0].Success {
		t.Fatalf("stage %+v %v", rs, err)
	}
	rs, err := cl.Deploy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Instance != "good" || rs[0].Node.V != "w1" || !rs[0].Success ||
		rs[1].Error != "request timed out" || rs[1].Success || rs[1].Instance != "" {
		t.Fatalf("deploy with a silent agent: %+v", rs)
	}
	// The timeout ended the deployment: nothing is pending or deployed.
	if s := c.Snapshot(); s.Pending != "" || s.Configs.Deployed != nil {
		t.Errorf("after the timeout: pending %q deployed %v", s.Pending, s.Configs.Deployed)
	}
}

// TestMgmtRuntimeStateDirRestart stages and deploys, stops the controller,
// and starts a new one on the same state directory: it still has both
// configurations and redeploys the deployed one to the agent when it comes
// back, without any client asking.
func TestMgmtRuntimeStateDirRestart(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	cfg := api.Configuration{ID: "kept", Instances: []api.Instance{{Name: "instance-1", Host: netip.IPv4Unspecified()}},
		Nodes: []api.Node{mgmtNode("manager", "instance-1", api.ClusterRoleManager)}}

	c1 := startMgmtController(t, ctx, Options{StateDir: dir})
	a1 := startMgmtAgent(t, ctx, c1.URL(), "instance-1", func(o *fakeagent.Options) { o.NoReconnect = true })
	waitKnown(t, ctx, c1, "instance-1")
	cl := dialMgmtClient(t, ctx, c1.URL())
	if rs, err := cl.StageConfiguration(ctx, cfg); err != nil || !rs[0].Success {
		t.Fatalf("stage %+v %v", rs, err)
	}
	if rs, err := cl.Deploy(ctx); err != nil || !rs[len(rs)-1].Success {
		t.Fatalf("deploy %+v %v", rs, err)
	}
	_ = cl.Close()
	a1.Stop()
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 || entries[0].Name() != StateFileName {
		t.Fatalf("state directory holds %v (%v), want only %s", entries, err, StateFileName)
	}

	c2 := startMgmtController(t, ctx, Options{StateDir: dir})
	s := c2.Snapshot()
	if s.Configs.Staged == nil || !s.Configs.Staged.Equal(cfg) || s.Configs.Deployed == nil || s.Configs.Deployed.ID != "kept" ||
		s.Configs.Ready == nil || s.Configs.Ready.Nodes[0].Port.String() != "2200/tcp" {
		t.Fatalf("restored configurations %+v", s.Configs)
	}
	a2 := startMgmtAgent(t, ctx, c2.URL(), "instance-1", nil)
	e, err := a2.WaitFor(ctx, func(e fakeagent.Entry) bool {
		return e.Dir == fakeagent.In && e.Msg != nil && e.Msg.Kind() == api.KindAgentDeployRequest
	})
	if err != nil {
		t.Fatalf("the restarted controller never redeployed: %v", err)
	}
	if d := e.Msg.(api.AgentDeployRequest); d.Config.ID != "kept" {
		t.Errorf("redeployed %+v", d.Config)
	}
	cl2 := dialMgmtClient(t, ctx, c2.URL())
	res, err := cl2.GetConfiguration(ctx, true)
	if err != nil || !res.Success {
		t.Fatalf("deployed configuration after the restart: %+v %v", res, err)
	}
}

func TestMgmtRuntimeStateFileErrors(t *testing.T) {
	ctx := testCtx(t)
	for _, tc := range []struct {
		name, content, want string
	}{
		{"garbage", "{not json", "not a zcc state file"},
		{"unknown field", `{"format":"zcc-controller-state","version":1,"profile":"mgmt","extra":1}`, "not a zcc state file"},
		{"other version", `{"format":"zcc-controller-state","version":9,"profile":"mgmt"}`, "version 9"},
		{"other profile", `{"format":"zcc-controller-state","version":1,"profile":"cc42"}`, `written for profile "cc42"`},
		{"bad configuration", `{"format":"zcc-controller-state","version":1,"profile":"mgmt","staged":{"@data-type":"count","data":1}}`, "staged configuration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, StateFileName)
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := Start(ctx, Options{Profile: api.Mgmt, StateDir: dir})
			if err == nil {
				_ = c.Close()
				t.Fatal("Start accepted a bad state file")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want one naming %s and saying %q", err, path, tc.want)
			}
		})
	}
	if c, err := Start(ctx, Options{StateDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "needs the mgmt profile") {
		if c != nil {
			_ = c.Close()
		}
		t.Errorf("cc42 with a state directory: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := Start(ctx, Options{Profile: api.Mgmt, StateDir: file}); err == nil || !strings.Contains(err.Error(), "state directory") {
		if c != nil {
			_ = c.Close()
		}
		t.Errorf("a file as state directory: %v", err)
	}
}

func TestMgmtStateFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), StateFileName)
	staged := api.Configuration{ID: "s", Instances: []api.Instance{{Name: "i", Host: netip.IPv4Unspecified()}},
		Nodes: []api.Node{{Name: "w", Instance: "i", Role: api.ClusterRoleWorker, State: api.StateRunning,
			Scripts: api.Some([]string{"a.zeek"}), Env: map[string]string{"K": "V"}, MetricsPort: api.Some(broker.TCPPort(9000))}}}
	in := StoredConfigs{Staged: &staged}
	if err := saveState(path, api.Mgmt, in); err != nil {
		t.Fatal(err)
	}
	out, err := loadState(path, api.Mgmt)
	if err != nil {
		t.Fatal(err)
	}
	if out.Staged == nil || !out.Staged.Equal(staged) || out.Ready != nil || out.Deployed != nil {
		t.Errorf("round trip: %+v", out)
	}
	if missing, err := loadState(filepath.Join(t.TempDir(), StateFileName), api.Mgmt); missing != nil || err != nil {
		t.Errorf("missing file: %v %v, want a fresh start", missing, err)
	}
}
