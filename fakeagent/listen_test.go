package fakeagent

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// controllerDial connects to a listening agent as a controller does: it
// subscribes to every agent topic.
func controllerDial(t *testing.T, ctx context.Context, url string) *broker.Conn {
	t.Helper()
	c, err := broker.Dial(ctx, url, []string{api.CC42.AgentTopicPrefix}, nil)
	if err != nil {
		t.Fatalf("dial the agent: %v", err)
	}
	t.Cleanup(c.Kill)
	return c
}

func nextTyped(t *testing.T, ctx context.Context, c *broker.Conn) api.Message {
	t.Helper()
	m, err := c.Next(ctx)
	if err != nil {
		t.Fatalf("read from the agent: %v", err)
	}
	ev, err := m.Event()
	if err != nil {
		t.Fatalf("agent frame is not an event: %v\n%s", err, m.Raw)
	}
	msg, err := api.CC42.Decode(ev)
	if err != nil {
		t.Fatalf("agent event: %v\n%s", err, m.Raw)
	}
	return msg
}

func publish(t *testing.T, ctx context.Context, c *broker.Conn, topic string, m api.Message) {
	t.Helper()
	ev, err := api.CC42.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, topic, ev); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func TestListeningAgentServesTheController(t *testing.T) {
	ctx := testCtx(t)
	a, err := New(Options{Name: "l1", Connect: ConnectListen, Behaviour: Behaviour{}.With("set_configuration_request",
		Sequence(Do(ActionReply).Times(1), Do(ActionMalformed).Times(1), Do(ActionCloseAfter).Times(1), Do(ActionResetBefore)))})
	if err != nil {
		t.Fatal(err)
	}
	if a.URL() != "" {
		t.Fatalf("URL before Start = %q", a.URL())
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	port := a.Port()
	if port == 0 || a.URL() == "" || a.Status().URL != a.URL() {
		t.Fatalf("port %d url %q status url %q", port, a.URL(), a.Status().URL)
	}
	inst := a.Instance()
	if p, ok := inst.ListenPort.Get(); !ok || int(p.Number) != port || inst.Host.String() != "127.0.0.1" {
		t.Fatalf("Instance() = %+v", inst)
	}

	c := controllerDial(t, ctx, a.URL())
	equalMsg(t, nextTyped(t, ctx, c), api.NotifyAgentHello{Instance: "l1", Host: defaultHost, APIVersion: 1})
	if err := a.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	publish(t, ctx, c, a.Topic(), api.AgentWelcomeRequest{Reqid: "W"})
	equalMsg(t, nextTyped(t, ctx, c), api.AgentWelcomeResponse{Reqid: "W", Result: okResult("W", "l1")})
	if err := a.WaitWelcomed(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := config("c", "l1")
	publish(t, ctx, c, a.Topic(), api.AgentSetConfigurationRequest{Reqid: "A1", Config: cfg})
	equalMsg(t, nextTyped(t, ctx, c), api.AgentSetConfigurationResponse{Reqid: "A1", Result: okResult("A1", "l1")})

	// A malformed answer reaches the controller as the text it is.
	publish(t, ctx, c, a.Topic(), api.AgentSetConfigurationRequest{Reqid: "A2", Config: cfg})
	if m, err := c.Next(ctx); err != nil || m.Err == nil || !strings.HasPrefix(string(m.Raw), `{"type":"data-message"`) {
		t.Fatalf("malformed answer: %+v %v", m, err)
	}
	if err := a.SendRaw(ctx, []byte("[1,")); err != nil {
		t.Fatal(err)
	}
	if m, err := c.Next(ctx); err != nil || string(m.Raw) != "[1," {
		t.Fatalf("raw frame: %+v %v", m, err)
	}

	// Bad input from the controller is recorded and ignored: invalid
	// JSON, a wrongly typed event, an event on a foreign topic.
	if err := c.WriteRaw(ctx, []byte("{oops")); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, a.Topic(), broker.NewEvent("ClusterAgent::API::agent_welcome_request", broker.Count(3))); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, "zeek/somewhere/else", broker.NewEvent("ClusterAgent::API::agent_welcome_request", broker.String("Z"))); err != nil {
		t.Fatal(err)
	}
	publish(t, ctx, c, a.Topic(), api.AgentWelcomeRequest{Reqid: "W2"})
	equalMsg(t, nextTyped(t, ctx, c), api.AgentWelcomeResponse{Reqid: "W2", Result: okResult("W2", "l1")})
	bad := a.Transcript().Filter(func(e Entry) bool { return e.Dir == In && e.Action == ActionIgnore })
	if len(bad) != 3 || bad[0].Raw != "{oops" || !strings.Contains(bad[0].Err, "decode frame") ||
		!strings.Contains(bad[1].Err, "arg 0 (reqid)") || bad[2].Detail != "not on a topic the agent subscribed to" {
		t.Fatalf("ignored frames: %+v", bad)
	}

	// close_after: the answer, then a clean close of the controller's
	// connection; the agent keeps listening.
	publish(t, ctx, c, a.Topic(), api.AgentSetConfigurationRequest{Reqid: "A3", Config: cfg})
	equalMsg(t, nextTyped(t, ctx, c), api.AgentSetConfigurationResponse{Reqid: "A3", Result: okResult("A3", "l1")})
	<-c.Done()
	var ce *websocket.CloseError
	if !errors.As(c.Err(), &ce) || ce.Code != websocket.CloseNormalClosure {
		t.Fatalf("connection ended with %v, want a clean close", c.Err())
	}
	if _, err := a.WaitStatus(ctx, func(s Status) bool { return !s.Connected }); err != nil {
		t.Fatal(err)
	}

	// The controller reconnects (a new connection, a new hello);
	// reset_before drops it without a close frame.
	c2 := controllerDial(t, ctx, a.URL())
	if _, ok := nextTyped(t, ctx, c2).(api.NotifyAgentHello); !ok {
		t.Fatal("no hello on the second connection")
	}
	publish(t, ctx, c2, a.Topic(), api.AgentSetConfigurationRequest{Reqid: "A4", Config: cfg})
	<-c2.Done()
	if errors.As(c2.Err(), &ce) && ce.Code != websocket.CloseAbnormalClosure {
		t.Fatalf("reset ended with a close frame: %v", c2.Err())
	}
	if _, err := a.WaitStatus(ctx, func(s Status) bool { return !s.Connected }); err != nil {
		t.Fatal(err)
	}
	if st := a.Status(); st.Connections != 2 || st.ConfigsReceived != 4 || st.FaultsInjected != 3 {
		t.Fatalf("status = %+v", st)
	}

	// A restart keeps the port, so a configuration stays valid.
	if err := a.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if a.Port() != port {
		t.Fatalf("port after restart %d, want %d", a.Port(), port)
	}
	c3 := controllerDial(t, ctx, a.URL())
	if _, ok := nextTyped(t, ctx, c3).(api.NotifyAgentHello); !ok {
		t.Fatal("no hello after restart")
	}
	a.Kill()
	<-c3.Done()
}

func TestListeningAgentPortInUse(t *testing.T) {
	ctx := testCtx(t)
	a, err := New(Options{Name: "l1", Connect: ConnectListen})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	b, err := New(Options{Name: "l2", Connect: ConnectListen, ListenPort: a.Port()})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "agent l2: listen on 127.0.0.1:") {
		t.Fatalf("second listener on the same port: %v", err)
	}
	if st := b.Status(); st.Running || !strings.Contains(st.LastError, "address already in use") {
		t.Fatalf("status after failed start: %+v", st)
	}
}
