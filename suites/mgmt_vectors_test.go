package suites

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/api/mgmtvectors"
	"github.com/zcc-harness/zcc/broker"
	"github.com/zcc-harness/zcc/client"
	"github.com/zcc-harness/zcc/controller"
	"github.com/zcc-harness/zcc/fakeagent"
)

// The frames the real zeek-client 1.5.0 sends (testdata/vectors/mgmt/
// client-requests), replayed byte for byte against the in-process
// reference controller of profile mgmt, with fake agents standing in for
// the instances they name. Every response must have the shape zeek-client
// reads (mgmt_shape.go, the same checker every mgmt spec applies).
//
// This is a plain Go test rather than a spec: the vectors live in the
// repository's testdata, which a compiled-in suite (zcc conform, another
// project's test binary) cannot reach, and the frames name fixed instances
// (instance-1, …) that only a controller of their own can host. The specs
// check the same shapes on their own requests against any target.

// replayTimeout is the controller's request timeout in these tests: long
// enough for a deploy under the race detector, short for the
// test_timeout vectors.
const (
	replayTimeout = 500 * time.Millisecond
	replaySweep   = 100 * time.Millisecond
)

// baseCluster is deployed before vectors that query a running cluster
// (get-config, get-nodes, get-id-value, restart, deploy): the node names
// are the ones those vectors' command lines name.
func baseCluster() api.Configuration {
	in := "instance-1"
	return api.Configuration{
		ID:        "base-cluster",
		Instances: []api.Instance{connecting(in)},
		Nodes: []api.Node{
			mgmtNode("manager", in, api.ClusterRoleManager),
			mgmtNode("logger-01", in, api.ClusterRoleLogger),
			mgmtNode("worker-01", in, api.ClusterRoleWorker),
			mgmtNode("worker-02", in, api.ClusterRoleWorker),
		},
	}
}

type replay struct {
	t      *testing.T
	ctx    context.Context
	ctrl   *controller.Controller
	agents []*fakeagent.Agent
}

func newReplay(t *testing.T) *replay {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	ctrl, err := controller.Start(ctx, controller.Options{
		Profile:        api.Mgmt,
		Name:           "controller-replay",
		RequestTimeout: replayTimeout,
		SweepInterval:  replaySweep,
		ConnectRetry:   20 * time.Millisecond,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("start the mgmt reference controller: %v", err)
	}
	t.Cleanup(func() { _ = ctrl.Close() })
	return &replay{t: t, ctx: ctx, ctrl: ctrl}
}

// agent starts a fake agent for instance name, dialling the controller or
// listening on loopback.
func (r *replay) agent(name string, listen bool) *fakeagent.Agent {
	r.t.Helper()
	opts := fakeagent.Options{
		Name: name, Profile: api.Mgmt, Controller: r.ctrl.URL(),
		Hello: fakeagent.HelloRepeat, HelloInterval: fakeagent.Duration(20 * time.Millisecond),
		Backoff: fakeagent.Backoff{Initial: fakeagent.Duration(20 * time.Millisecond), Max: fakeagent.Duration(200 * time.Millisecond)},
	}
	if listen {
		opts.Connect = fakeagent.ConnectListen
	}
	a, err := fakeagent.New(opts)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := a.Start(r.ctx); err != nil {
		r.t.Fatalf("start fake agent %s: %v", name, err)
	}
	r.t.Cleanup(a.Stop)
	r.t.Cleanup(func() {
		if r.t.Failed() {
			var b strings.Builder
			_ = a.Transcript().WriteJSONL(&b)
			r.t.Logf("transcript of %s:\n%s", name, b.String())
		}
	})
	r.agents = append(r.agents, a)
	return a
}

// deployBase stages and deploys baseCluster through zcc's typed client.
func (r *replay) deployBase() {
	r.t.Helper()
	r.agent("instance-1", false)
	c, err := client.Dial(r.ctx, r.ctrl.URL(), client.Options{Profile: api.Mgmt})
	if err != nil {
		r.t.Fatal(err)
	}
	defer c.Close()
	cfg := baseCluster()
	if res, err := c.StageConfiguration(r.ctx, cfg); err != nil || len(res) != 1 || !res[0].Success {
		r.t.Fatalf("stage the base cluster: %v %s", err, resultsText(res))
	}
	res, err := c.Deploy(r.ctx)
	if err != nil || len(res) == 0 || !res[len(res)-1].Success {
		r.t.Fatalf("deploy the base cluster: %v %s", err, resultsText(res))
	}
}

// stagedConfig decodes the configuration of a stage_configuration_request
// frame.
func stagedConfig(t *testing.T, raw string) api.Configuration {
	t.Helper()
	f, err := broker.DecodeFrame([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	m, err := api.Mgmt.DecodeFrame(f)
	if err != nil {
		t.Fatal(err)
	}
	req, ok := m.(api.StageConfigurationRequest)
	if !ok {
		t.Fatalf("first frame is %T, want a stage_configuration_request", m)
	}
	return req.Config
}

// agentsFor starts one fake agent per instance of a staged configuration
// and returns the frame with every instance that the controller must dial
// pointed at its listening agent on loopback (the recordings name hosts
// such as 10.0.0.2, which this test must not contact).
func (r *replay) agentsFor(cfg api.Configuration, frame string) string {
	r.t.Helper()
	for _, in := range cfg.Instances {
		port, listens := in.ListenPort.Get()
		a := r.agent(in.Name, listens)
		if !listens {
			continue
		}
		// zeek-client's own spelling of the Instance record.
		old := fmt.Sprintf(`{"@data-type": "string", "data": %q}, {"@data-type": "address", "data": %q}, {"@data-type": "port", "data": %q}`, in.Name, in.Host, port)
		local := a.Instance()
		lport, _ := local.ListenPort.Get()
		repl := fmt.Sprintf(`{"@data-type": "string", "data": %q}, {"@data-type": "address", "data": %q}, {"@data-type": "port", "data": %q}`, in.Name, local.Host, lport)
		if !strings.Contains(frame, old) {
			r.t.Fatalf("cannot find instance %s as zeek-client writes it (%s) in the frame", in.Name, old)
		}
		frame = strings.Replace(frame, old, repl, 1)
	}
	return frame
}

// awaitResponse reads until the response event with reqid arrives.
func awaitResponse(ctx context.Context, conn *broker.Conn, reqid string) (broker.Event, error) {
	for {
		m, err := conn.Next(ctx)
		if err != nil {
			return broker.Event{}, err
		}
		if m.Err != nil {
			continue
		}
		ev, err := m.Event()
		if err != nil || !strings.HasSuffix(ev.Name, "_response") || reqidArg(ev) != reqid {
			continue
		}
		return ev, nil
	}
}

func TestZeekClientRequestVectors(t *testing.T) {
	dir, err := mgmtvectors.Dir()
	if err != nil {
		t.Fatal(err)
	}
	vectors, err := mgmtvectors.LoadRequests(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(vectors) < 29 {
		t.Fatalf("%d client-requests vectors, want the 29 recorded", len(vectors))
	}
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			replayVector(t, v)
		})
	}
}

func replayVector(t *testing.T, v mgmtvectors.Request) {
	r := newReplay(t)
	frames := append([]string(nil), v.FramesRaw...)
	switch v.Argv[0] {
	case "stage-config", "deploy-config":
		frames[0] = r.agentsFor(stagedConfig(t, frames[0]), frames[0])
	case "get-instances", "test-timeout":
		r.agent("instance-1", false)
	default:
		r.deployBase()
	}
	for _, a := range r.agents {
		if a.Instance().ListenPort.Set {
			continue
		}
		if _, err := a.WaitFor(r.ctx, func(en fakeagent.Entry) bool {
			return en.Dir == fakeagent.Out && en.Kind == api.KindNotifyAgentHello && en.Err == ""
		}); err != nil {
			t.Fatalf("agent %s never said hello: %v", a.Name(), err)
		}
	}
	conn, err := broker.Dial(r.ctx, r.ctrl.URL(), v.Handshake, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var stagedID string
	for i, raw := range frames {
		ev, ok := eventOf(raw)
		if !ok {
			t.Fatalf("frame %d is not an event: %s", i, raw)
		}
		request := strings.TrimPrefix(ev.Name, mgmtAPI)
		reqid := reqidArg(ev)
		if err := conn.WriteRaw(r.ctx, []byte(raw)); err != nil {
			t.Fatal(err)
		}
		if request == "test_timeout_request" && !mustBool(t, ev.Args[1]) {
			// with_state=F: no response, ever.
			ctx, cancel := context.WithTimeout(r.ctx, (replayTimeout+replaySweep)*3/2)
			resp, err := awaitResponse(ctx, conn, reqid)
			cancel()
			if err == nil {
				t.Fatalf("test_timeout without state was answered: %s", resp)
			}
			continue
		}
		resp, err := awaitResponse(r.ctx, conn, reqid)
		if err != nil {
			t.Fatalf("no response to %s (reqid %s): %v", request, reqid, err)
		}
		if problems := mgmtShapeProblems(request, reqid, resp); len(problems) > 0 {
			t.Fatalf("zeek-client could not read the response to %s:\n  %s\n%s", request, strings.Join(problems, "\n  "), resp)
		}
		checkReplayOutcome(t, request, resp, &stagedID)
	}
}

func mustBool(t *testing.T, v broker.Value) bool {
	t.Helper()
	b, ok := v.AsBool()
	if !ok {
		t.Fatalf("want a boolean, got %s", v)
	}
	return b
}

// checkReplayOutcome checks what the vectors' command should achieve with
// every instance's agent present: each step succeeds, and a deploy-config's
// deploy ends with the id of the configuration it staged.
func checkReplayOutcome(t *testing.T, request string, resp broker.Event, stagedID *string) {
	t.Helper()
	m, err := api.Mgmt.Decode(resp)
	if err != nil {
		t.Fatalf("decode %s: %v", resp.Name, err)
	}
	var results []api.Result
	switch x := m.(type) {
	case api.GetInstancesResponse:
		results = []api.Result{x.Result}
	case api.GetConfigurationResponse:
		results = []api.Result{x.Result}
	case api.TestTimeoutResponse:
		expectResultT(t, x.Result, api.Result{Reqid: x.Reqid, Success: false, Error: errTimedOut})
		return
	case api.StageConfigurationResponse:
		results = x.Results
		if len(results) == 1 {
			*stagedID, _ = results[0].Data.AsString()
		}
	case api.DeployResponse:
		results = x.Results
		if *stagedID != "" && len(results) > 0 {
			if id, _ := results[len(results)-1].Data.AsString(); id != *stagedID {
				t.Errorf("deploy ended with config id %q, want the staged %q", id, *stagedID)
			}
		}
	case api.GetNodesResponse:
		results = x.Results
	case api.GetIDValueResponse:
		results = x.Results
	case api.RestartResponse:
		results = x.Results
	default:
		t.Fatalf("unexpected response %T", m)
	}
	for _, res := range results {
		if !res.Success {
			t.Errorf("%s failed although every instance has its agent: %s", request, resultText(res))
		}
	}
}

// expectResultT is ExpectResult for plain Go tests.
func expectResultT(t *testing.T, got, want api.Result) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("Result differs:\ngot  %s\nwant %s", resultText(got), resultText(want))
	}
}
