package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testCtx bounds a whole runtime test; nothing waits longer than this.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func startController(t *testing.T, ctx context.Context, opts Options) *Controller {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "controller-test"
	}
	c, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// peerConn is a scripted agent or client: a plain broker.Conn that speaks
// typed messages.
type peerConn struct {
	t     *testing.T
	conn  *broker.Conn
	topic string // where it publishes
}

func dialPeer(t *testing.T, ctx context.Context, url string, subscribe []string, publishTopic string) *peerConn {
	t.Helper()
	conn, err := broker.Dial(ctx, url, subscribe, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &peerConn{t: t, conn: conn, topic: publishTopic}
}

func dialAgent(t *testing.T, ctx context.Context, url, name string) *peerConn {
	return dialPeer(t, ctx, url, []string{agentPrefix + name}, agentPrefix+name)
}

func dialClient(t *testing.T, ctx context.Context, url string) *peerConn {
	return dialPeer(t, ctx, url, []string{controllerTopic}, controllerTopic)
}

func (p *peerConn) send(ctx context.Context, m api.Message) {
	p.t.Helper()
	ev, err := api.CC42.Encode(m)
	if err != nil {
		p.t.Fatalf("encode %T: %v", m, err)
	}
	if err := p.conn.Publish(ctx, p.topic, ev); err != nil {
		p.t.Fatalf("publish %T: %v", m, err)
	}
}

func (p *peerConn) next(ctx context.Context) api.Message {
	p.t.Helper()
	msg, err := p.conn.Next(ctx)
	if err != nil {
		p.t.Fatalf("waiting for a message: %v", err)
	}
	if msg.Err != nil {
		p.t.Fatalf("undecodable frame %s: %v", msg.Raw, msg.Err)
	}
	ev, err := msg.Event()
	if err != nil {
		p.t.Fatalf("not an event: %v", err)
	}
	m, err := api.CC42.Decode(ev)
	if err != nil {
		p.t.Fatalf("decode %s: %v", ev.Name, err)
	}
	return m
}

// await skips messages (including undecodable ones, e.g. another client's
// malformed request) until match accepts one.
func (p *peerConn) await(ctx context.Context, match func(api.Message) bool) api.Message {
	p.t.Helper()
	for {
		msg, err := p.conn.Next(ctx)
		if err != nil {
			p.t.Fatalf("waiting for a message: %v", err)
		}
		if msg.Err != nil {
			continue
		}
		ev, err := msg.Event()
		if err != nil {
			continue
		}
		m, err := api.CC42.Decode(ev)
		if err == nil && match(m) {
			return m
		}
	}
}

func getInstancesResponseFor(reqid string) func(api.Message) bool {
	return func(m api.Message) bool {
		r, ok := m.(api.GetInstancesResponse)
		return ok && r.Reqid == reqid
	}
}

func expect[M api.Message](t *testing.T, m api.Message) M {
	t.Helper()
	got, ok := m.(M)
	if !ok {
		var zero M
		t.Fatalf("got %T %+v, want a %T", m, m, zero)
	}
	return got
}

func (p *peerConn) nextError(ctx context.Context) broker.Frame {
	p.t.Helper()
	select {
	case f := <-p.conn.Errors():
		return f
	case <-ctx.Done():
		p.t.Fatalf("no error frame: %v", ctx.Err())
	}
	return broker.Frame{}
}

// agentHello is the hello of a real P1 agent.
func agentHello(name string) api.Message {
	return api.NotifyAgentHello{Instance: name, Host: localhost, APIVersion: 1}
}

// serveAgent answers welcome and configuration requests like a real agent,
// until the connection ends; failNode makes it fail with that node.
func (p *peerConn) serveAgent(ctx context.Context, name string) {
	for {
		msg, err := p.conn.Next(ctx)
		if err != nil {
			return
		}
		ev, err := msg.Event()
		if err != nil {
			continue
		}
		m, err := api.CC42.Decode(ev)
		if err != nil {
			continue
		}
		switch m := m.(type) {
		case api.AgentWelcomeRequest:
			p.send(ctx, api.AgentWelcomeResponse{Reqid: m.Reqid, Result: api.Result{Reqid: m.Reqid, Instance: name, Success: true}})
		case api.AgentSetConfigurationRequest:
			p.send(ctx, api.AgentSetConfigurationResponse{Reqid: m.Reqid, Result: api.Result{Reqid: m.Reqid, Instance: name, Success: true}})
		}
	}
}

func TestRuntimeHelloWelcomeConfigureRespond(t *testing.T) {
	ctx := testCtx(t)
	c := startController(t, ctx, Options{})
	client := dialClient(t, ctx, c.URL())
	agent := dialAgent(t, ctx, c.URL(), "a1")

	agent.send(ctx, agentHello("a1"))
	cfg := config("cfg1", connecting("a1"))
	client.send(ctx, api.SetConfigurationRequest{Reqid: "R1", Config: cfg})

	w := expect[api.AgentWelcomeRequest](t, agent.next(ctx))
	agent.send(ctx, api.AgentWelcomeResponse{Reqid: w.Reqid, Result: api.Result{Reqid: w.Reqid, Instance: "a1", Success: true}})
	push := expect[api.AgentSetConfigurationRequest](t, agent.next(ctx))
	if !push.Config.Equal(cfg) || push.Reqid == w.Reqid || len(push.Reqid) != 15 {
		t.Errorf("pushed %+v (welcome id %q), want the whole configuration under a fresh 15-char id", push, w.Reqid)
	}
	agent.send(ctx, api.AgentSetConfigurationResponse{Reqid: push.Reqid, Result: api.Result{Reqid: push.Reqid, Instance: "a1", Success: true}})

	resp := expect[api.SetConfigurationResponse](t, client.next(ctx))
	if resp.Reqid != "R1" || len(resp.Results) != 1 || !resp.Results[0].Equal(okResult("R1", "a1")) {
		t.Errorf("response %+v, want R1 with one success for a1", resp)
	}
	select {
	case r := <-c.AgentsReady():
		if strings.Join(r.Instances, ",") != "a1" {
			t.Errorf("notify_agents_ready %v, want [a1]", r.Instances)
		}
	case <-ctx.Done():
		t.Fatal("no notify_agents_ready observed")
	}

	client.send(ctx, api.GetInstancesRequest{Reqid: "R2"})
	gi := expect[api.GetInstancesResponse](t, client.next(ctx))
	insts, err := api.CC42.DecodeInstances(gi.Result.Data)
	if err != nil || gi.Reqid != "R2" || !gi.Result.Success || len(insts) != 1 || !insts[0].Equal(connecting("a1")) {
		t.Errorf("get_instances %+v (%v), want a1 as configured", gi, err)
	}

	s := c.Snapshot()
	if s.Pending != "" || strings.Join(s.Ready, ",") != "a1" || s.Current.ID != "cfg1" || s.Speakers["a1"].Kind != PeerHub {
		t.Errorf("snapshot %+v", s)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case <-c.Done():
	default:
		t.Error("Done not closed after Close")
	}
	// The log stream holds the whole exchange and ends with Close.
	var lines []string
	for l := range c.Logs() {
		lines = append(lines, l.Msg)
	}
	for _, want := range []string{
		"controller is live",
		"rx ClusterController::API::set_configuration_request R1",
		"instance a1 ready",
		"rx ClusterController::API:notify_agents_ready a1",
		"tx ClusterController::API::set_configuration_response [request R1 pending, results: success (reqid R1, instance a1)]",
	} {
		if !containsLine(lines, want) {
			t.Errorf("log lacks %q; got %q", want, lines)
		}
	}
}

func containsLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

func TestRuntimeTimeouts(t *testing.T) {
	ctx := testCtx(t)
	const timeout = 50 * time.Millisecond
	c := startController(t, ctx, Options{RequestTimeout: timeout, SweepInterval: 20 * time.Millisecond})
	client := dialClient(t, ctx, c.URL())

	sent := time.Now()
	client.send(ctx, api.TestTimeoutRequest{Reqid: "T1", WithState: true})
	tt := expect[api.TestTimeoutResponse](t, client.next(ctx))
	if elapsed := time.Since(sent); elapsed < timeout {
		t.Errorf("test_timeout answered after %v, before the %v timeout", elapsed, timeout)
	}
	if tt.Reqid != "T1" || !tt.Result.Equal(timedOut("T1")) {
		t.Errorf("test_timeout_response %+v", tt)
	}

	// No agent ever connects: the configuration times out.
	client.send(ctx, api.SetConfigurationRequest{Reqid: "R1", Config: config("c1", connecting("a1"))})
	sc := expect[api.SetConfigurationResponse](t, client.next(ctx))
	if sc.Reqid != "R1" || len(sc.Results) != 1 || !sc.Results[0].Equal(timedOut("R1")) {
		t.Errorf("set_configuration_response %+v, want the single timeout Result", sc)
	}
	if p := c.Snapshot().Pending; p != "" {
		t.Errorf("pending %q after the timeout", p)
	}
}

func TestRuntimeBadInputGetsErrorFrames(t *testing.T) {
	ctx := testCtx(t)
	c := startController(t, ctx, Options{})
	bad := dialClient(t, ctx, c.URL())
	other := dialClient(t, ctx, c.URL())

	cases := []struct {
		name    string
		send    func()
		context []string // substrings of the error frame's context
	}{
		{"wrong argument count", func() {
			ev := broker.NewEvent("ClusterController::API::get_instances_request", broker.String("R1"), broker.String("extra"))
			if err := bad.conn.Publish(ctx, controllerTopic, ev); err != nil {
				t.Fatal(err)
			}
		}, []string{"failed to create Zeek event: ", "get_instances_request"}},
		{"wrong argument type", func() {
			ev := broker.NewEvent("ClusterController::API::test_timeout_request", broker.String("R1"), broker.Count(1))
			if err := bad.conn.Publish(ctx, controllerTopic, ev); err != nil {
				t.Fatal(err)
			}
		}, []string{"failed to create Zeek event: ", "test_timeout_request", "arg 1"}},
		{"unknown event", func() {
			ev := broker.NewEvent("ClusterController::API::no_such_request", broker.String("R1"))
			if err := bad.conn.Publish(ctx, controllerTopic, ev); err != nil {
				t.Fatal(err)
			}
		}, []string{"failed to create Zeek event: ", "no_such_request"}},
		{"not an event", func() {
			if err := bad.conn.PublishValue(ctx, controllerTopic, broker.String("hello")); err != nil {
				t.Fatal(err)
			}
		}, []string{"failed to create Zeek event: "}},
		{"malformed JSON", func() {
			if err := bad.conn.WriteRaw(ctx, []byte(`{"topic": `)); err != nil {
				t.Fatal(err)
			}
		}, nil},
	}
	for _, tc := range cases {
		tc.send()
		f := bad.nextError(ctx)
		if f.Code != "deserialization_failed" {
			t.Errorf("%s: error frame code %q", tc.name, f.Code)
		}
		for _, s := range tc.context {
			if !strings.Contains(f.Context, s) {
				t.Errorf("%s: error frame context %q lacks %q", tc.name, f.Context, s)
			}
		}
	}
	// Both the offender and everyone else are still served.
	for i, p := range []*peerConn{bad, other} {
		reqid := "G" + string(rune('1'+i))
		p.send(ctx, api.GetInstancesRequest{Reqid: reqid})
		p.await(ctx, getInstancesResponseFor(reqid))
	}
	// A response published by someone else is dropped silently.
	bad.send(ctx, api.GetInstancesResponse{Reqid: "x", Result: api.Result{Reqid: "x", Success: true}})
	bad.send(ctx, api.GetInstancesRequest{Reqid: "G3"})
	bad.await(ctx, getInstancesResponseFor("G3"))
	select {
	case f := <-bad.conn.Errors():
		t.Errorf("unexpected error frame %v for a known event without handler", f)
	default:
	}
}

func TestRuntimePeerLossFixed(t *testing.T) {
	ctx := testCtx(t)
	c := startController(t, ctx, Options{Mode: ModeFixed})
	client := dialClient(t, ctx, c.URL())
	a1 := dialAgent(t, ctx, c.URL(), "a1")
	a2 := dialAgent(t, ctx, c.URL(), "a2")
	a1.send(ctx, agentHello("a1"))
	a2.send(ctx, agentHello("a2"))
	client.send(ctx, api.SetConfigurationRequest{Reqid: "R1", Config: config("c1", connecting("a1"), connecting("a2"))})

	for _, a := range []struct {
		p    *peerConn
		name string
	}{{a1, "a1"}, {a2, "a2"}} {
		w := expect[api.AgentWelcomeRequest](t, a.p.next(ctx))
		a.p.send(ctx, api.AgentWelcomeResponse{Reqid: w.Reqid, Result: api.Result{Reqid: w.Reqid, Instance: a.name, Success: true}})
	}
	p1 := expect[api.AgentSetConfigurationRequest](t, a1.next(ctx))
	expect[api.AgentSetConfigurationRequest](t, a2.next(ctx))
	a2.conn.Kill() // vanishes without answering
	a1.send(ctx, api.AgentSetConfigurationResponse{Reqid: p1.Reqid, Result: api.Result{Reqid: p1.Reqid, Instance: "a1", Success: true}})

	resp := expect[api.SetConfigurationResponse](t, client.next(ctx))
	want := []api.Result{okResult("R1", "a1"), failResult("R1", "a2", "agent a2 disconnected")}
	if resp.Reqid != "R1" || len(resp.Results) != 2 || !resp.Results[0].Equal(want[0]) || !resp.Results[1].Equal(want[1]) {
		t.Errorf("response %+v, want %+v", resp, want)
	}
	if s := c.Snapshot(); strings.Join(s.Ready, ",") != "a1" || strings.Join(s.Known, ",") != "a1" {
		t.Errorf("ready %v known %v after a2 vanished", s.Ready, s.Known)
	}
}

// recordingHandler is a slog.Handler that forwards every record's message
// to a channel (dropping when nobody listens), for waiting on log events.
type recordingHandler struct {
	ch chan string
}

func (h recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordingHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case h.ch <- r.Message:
	default:
	}
	return nil
}
func (h recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordingHandler) WithGroup(string) slog.Handler      { return h }

func waitLog(t *testing.T, ctx context.Context, ch <-chan string, substr string) {
	t.Helper()
	for {
		select {
		case m := <-ch:
			if strings.Contains(m, substr) {
				return
			}
		case <-ctx.Done():
			t.Fatalf("no log record containing %q", substr)
		}
	}
}

// listeningAgent is an agent that listens (a broker.Hub) and says hello to
// every client that connects, as a real agent does on peer_added.
type listeningAgent struct {
	srv       *broker.Server
	connected chan struct{}
}

func startListeningAgent(t *testing.T, ctx context.Context, addr, name string) *listeningAgent {
	t.Helper()
	hub := broker.NewHub(broker.HubOptions{})
	la := &listeningAgent{connected: make(chan struct{}, 8)}
	var local *broker.Local // set before serving, so callbacks see it
	publish := func(m api.Message) {
		ev, err := api.CC42.Encode(m)
		if err != nil {
			t.Errorf("encode: %v", err)
			return
		}
		_ = local.PublishEvent(agentPrefix+name, ev)
	}
	hub.OnPeer(func(ev broker.PeerEvent) {
		if !ev.Connected {
			return
		}
		publish(agentHello(name))
		la.connected <- struct{}{}
	})
	local = hub.Subscribe([]string{agentPrefix + name}, func(d broker.Delivery) {
		ev, err := broker.EventFromValue(d.Data)
		if err != nil {
			return
		}
		m, err := api.CC42.Decode(ev)
		if err != nil {
			return
		}
		switch m := m.(type) {
		case api.AgentWelcomeRequest:
			publish(api.AgentWelcomeResponse{Reqid: m.Reqid, Result: api.Result{Reqid: m.Reqid, Instance: name, Success: true}})
		case api.AgentSetConfigurationRequest:
			publish(api.AgentSetConfigurationResponse{Reqid: m.Reqid, Result: api.Result{Reqid: m.Reqid, Instance: name, Success: true}})
		}
	})
	srv, err := broker.Serve(ctx, addr, hub)
	if err != nil {
		t.Fatalf("agent listen on %s: %v", addr, err)
	}
	la.srv = srv
	return la
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return uint16(port)
}

func TestRuntimeDialsListeningAgent(t *testing.T) {
	ctx := testCtx(t)
	logs := make(chan string, 256)
	c := startController(t, ctx, Options{
		ConnectRetry: 20 * time.Millisecond,
		Logger:       slog.New(recordingHandler{ch: logs}),
	})
	client := dialClient(t, ctx, c.URL())
	port := freePort(t)
	addr := netip.AddrPortFrom(localhost, port).String()

	// Nothing listens yet: the controller keeps retrying.
	client.send(ctx, api.SetConfigurationRequest{Reqid: "R1", Config: config("c1", listening("a1", port))})
	waitLog(t, ctx, logs, "cannot reach listening instance a1")

	agent := startListeningAgent(t, ctx, addr, "a1")
	resp := expect[api.SetConfigurationResponse](t, client.next(ctx))
	if len(resp.Results) != 1 || !resp.Results[0].Equal(okResult("R1", "a1")) {
		t.Errorf("response %+v", resp)
	}
	if s := c.Snapshot(); s.Speakers["a1"].Kind != PeerDialed {
		t.Errorf("a1 speaks through %v, want a dialled connection", s.Speakers["a1"])
	}
	<-agent.connected

	// The agent restarts: the controller dials it again.
	_ = agent.srv.Close()
	agent = startListeningAgent(t, ctx, addr, "a1")
	defer agent.srv.Close()
	select {
	case <-agent.connected:
	case <-ctx.Done():
		t.Fatal("the controller did not reconnect to the restarted agent")
	}
}

func TestRuntimeLogFormatAndLifecycle(t *testing.T) {
	var buf syncBuffer
	ctx, cancel := context.WithCancel(testCtx(t))
	c, err := Start(ctx, Options{Name: "ctl-1", Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	client := dialClient(t, testCtx(t), c.URL())
	client.send(testCtx(t), api.GetInstancesRequest{Reqid: "R1"})
	expect[api.GetInstancesResponse](t, client.next(testCtx(t)))

	// Cancelling Start's context shuts the controller down.
	cancel()
	select {
	case <-c.Done():
	case <-testCtx(t).Done():
		t.Fatal("controller still running after its context ended")
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	var live, rx bool
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if rec["role"] != "CONTROLLER" || rec["node"] != "ctl-1" {
			t.Errorf("log record without role/node: %v", rec)
		}
		switch rec["msg"] {
		case "controller is live":
			live = strings.HasPrefix(rec["url"].(string), "ws://127.0.0.1:") && rec["level"] == "INFO"
		case "rx ClusterController::API::set_instances_request R1":
			rx = true
		}
	}
	if !live || !rx {
		t.Errorf("log lacks the ready line with url or the rx line:\n%s", buf.Bytes())
	}
}

func TestStartRejectsBadOptions(t *testing.T) {
	ctx := testCtx(t)
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{ListenAddr: "256.0.0.1:0"}, "listen on 256.0.0.1:0"},
		{Options{ConnectRetry: -time.Second}, "connect retry"},
		{Options{RequestTimeout: -time.Second}, "request timeout"},
		{Options{Mode: Mode(9)}, "unknown mode"},
	} {
		c, err := Start(ctx, tc.opts)
		if err == nil {
			_ = c.Close()
			t.Errorf("Start(%+v) succeeded", tc.opts)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Start(%+v) = %v, want an error mentioning %q", tc.opts, err, tc.want)
		}
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf.Bytes()...)
}

// The cached configuration value must give exactly the profile's event,
// and a different configuration must not reuse a stale value.
func TestPushEncodingMatchesProfile(t *testing.T) {
	c := &Controller{profile: api.CC42}
	cfg1 := config("c1", connecting("a1"), listening("a2", 2151))
	cfg2 := config("c2", connecting("a3"))
	for i, m := range []api.AgentSetConfigurationRequest{
		{Reqid: "x1", Config: cfg1}, {Reqid: "x2", Config: cfg1}, {Reqid: "x3", Config: cfg2}, {Reqid: "x4", Config: api.Configuration{}},
	} {
		got, err := c.encode(m)
		if err != nil {
			t.Fatal(err)
		}
		want, err := api.CC42.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != want.Name || !broker.Equal(got.Value(), want.Value()) {
			t.Errorf("push %d: encoded %v, profile gives %v", i, got, want)
		}
	}
}
