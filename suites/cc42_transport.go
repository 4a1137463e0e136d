package suites

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	. "github.com/onsi/ginkgo/v2" //nolint:revive
	. "github.com/onsi/gomega"    //nolint:revive

	"github.com/zcc-harness/zcc/broker"
)

// Wire values of the transport, stated from management-websocket.md §1 and
// real-zeek-8.1-observations.md §1.
const (
	wirePath                  = "/v1/messages/json"
	codeDeserializationFailed = "deserialization_failed"
	ctxNotAnArray             = "subscriptions not an array"
	ctxSubscriptionNotString  = "individual subscription not a string"
	cc42ControllerTopic       = "zeek/cluster-control/controller"
	cc42AgentTopicPrefix      = "zeek/cluster-control/agent"
	cc42GetInstancesRequest   = "ClusterController::API::get_instances_request"
)

// rawConn is a bare gorilla connection for specs that must see the first
// frame or misbehave during the handshake.
type rawConn struct {
	*websocket.Conn
	ctx context.Context
}

func (e *Env) dialRaw(path string) (*rawConn, *http.Response, error) {
	u := strings.Replace(e.Ctrl.URL(), wirePath, path, 1)
	ctx, cancel := e.within(e.Cfg.Timeouts.Connect)
	defer cancel()
	c, resp, err := websocket.DefaultDialer.DialContext(ctx, u, nil)
	if err != nil {
		return nil, resp, err
	}
	DeferCleanup(c.Close)
	return &rawConn{Conn: c, ctx: e.Ctx}, resp, nil
}

// readJSON reads the next text frame within d and parses it as an object;
// ok is false when the connection closed or nothing came.
func (r *rawConn) readJSON(d time.Duration) (map[string]any, string, error) {
	_ = r.SetReadDeadline(time.Now().Add(d))
	for {
		kind, data, err := r.ReadMessage()
		if err != nil {
			return nil, "", err
		}
		if kind != websocket.TextMessage {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, string(data), fmt.Errorf("frame is not a JSON object: %w", err)
		}
		return m, string(data), nil
	}
}

// expectErrorFrame reads until an error frame arrives and checks its code
// and that its context starts with ctxPrefix (zcc adds details after the
// text Zeek uses).
func expectErrorFrame(f broker.Frame, code, ctxPrefix string) {
	GinkgoHelper()
	Expect(f.Type).To(Equal("error"))
	Expect(f.Code).To(Equal(code), "error frame code")
	Expect(f.Context).To(HavePrefix(ctxPrefix), "error frame context")
}

func (e *Env) nextErrorFrame(errs <-chan broker.Frame, what string) broker.Frame {
	GinkgoHelper()
	select {
	case f := <-errs:
		return f
	case <-time.After(e.Cfg.Timeouts.ResponseWait):
		Fail("no error frame within " + e.Cfg.Timeouts.ResponseWait.String() + " after " + what)
	case <-e.Ctx.Done():
		Fail("spec ended waiting for an error frame")
	}
	return broker.Frame{}
}

// expectServing checks that a fresh client still gets answers.
func (e *Env) expectServing() {
	GinkgoHelper()
	c := e.NewClient()
	ctx, cancel := e.responseCtx()
	defer cancel()
	reqid := e.Reqid("alive")
	res, err := c.GetInstances(ctx, withReqid(reqid))
	Expect(err).NotTo(HaveOccurred(), "the controller stopped answering get_instances_request")
	Expect(res.Reqid).To(Equal(reqid))
}

func init() {
	const cc42 = "cc42"

	spec(cc42, "transport", []string{"transport.malformed-frame"}, "answers invalid JSON with an error frame and keeps serving that client and others", func(e *Env) {
		c := e.NewClient()
		ctx, cancel := e.responseCtx()
		defer cancel()
		Expect(c.Conn().WriteRaw(ctx, []byte(`{"type":"data-message",`))).To(Succeed())
		f := e.nextErrorFrame(c.Errors(), "a truncated JSON frame")
		Expect(f.Code).To(Equal(codeDeserializationFailed))
		reqid := e.Reqid("after")
		res, err := c.GetInstances(ctx, withReqid(reqid))
		Expect(err).NotTo(HaveOccurred(), "the same client gets no answer after its malformed frame")
		Expect(res.Reqid).To(Equal(reqid))
		e.expectServing()
	})

	spec(cc42, "transport", []string{"transport.unknown-event"}, "drops an unknown event without harm", func(e *Env) {
		c := e.NewClient()
		ctx, cancel := e.responseCtx()
		defer cancel()
		ev := broker.NewEvent("ClusterController::API::test_noop_request", broker.String(e.Reqid("noop")))
		Expect(c.Conn().Publish(ctx, cc42ControllerTopic, ev)).To(Succeed())
		reqid := e.Reqid("after")
		res, err := c.GetInstances(ctx, withReqid(reqid))
		Expect(err).NotTo(HaveOccurred(), "no answer after an unknown event")
		Expect(res.Reqid).To(Equal(reqid))
	})

	spec(cc42, "transport", []string{"transport.wrong-args"}, "answers wrong argument types and counts with an error frame naming the event", func(e *Env) {
		c := e.NewClient()
		ctx, cancel := e.responseCtx()
		defer cancel()
		for _, args := range [][]broker.Value{
			{broker.Count(1)}, // reqid must be a string
			{},                // one argument is declared
			{broker.String(e.Reqid("x")), broker.String("extra")},
		} {
			ev := broker.NewEvent(cc42GetInstancesRequest, args...)
			Expect(c.Conn().Publish(ctx, cc42ControllerTopic, ev)).To(Succeed())
			f := e.nextErrorFrame(c.Errors(), fmt.Sprintf("get_instances_request%v", args))
			Expect(f.Code).To(Equal(codeDeserializationFailed))
			Expect(f.Context).To(ContainSubstring("get_instances_request"), "the error frame should name the event")
		}
		reqid := e.Reqid("after")
		res, err := c.GetInstances(ctx, withReqid(reqid))
		Expect(err).NotTo(HaveOccurred(), "no answer after bad arguments")
		Expect(res.Reqid).To(Equal(reqid))
	})

	spec(cc42, "transport", []string{"transport.oversized-frame"}, "answers a frame above the size limit with an error frame and keeps serving", func(e *Env) {
		c := e.NewClient()
		ctx, cancel := e.responseCtx()
		defer cancel()
		size := e.Cfg.Target.MaxFrameSize + 64*1024
		big := broker.NewEvent(cc42GetInstancesRequest, broker.String(strings.Repeat("x", int(size))))
		frame, err := broker.EventFrame(cc42ControllerTopic, big).Encode()
		Expect(err).NotTo(HaveOccurred())
		Expect(c.Conn().WriteRaw(ctx, frame)).To(Succeed())
		f := e.nextErrorFrame(c.Errors(), fmt.Sprintf("a %d-byte frame", len(frame)))
		Expect(f.Type).To(Equal("error"))
		e.expectServing()
	})

}

// rawSubscriber is a broker connection with arbitrary subscriptions.
type rawSubscriber struct {
	conn   *broker.Conn
	topics []string
}

func (e *Env) rawSubscriber(topics []string) *rawSubscriber {
	GinkgoHelper()
	ctx, cancel := e.within(e.Cfg.Timeouts.Connect)
	defer cancel()
	c, err := broker.Dial(ctx, e.Ctrl.URL(), topics, nil)
	if err != nil {
		infraError("connect a subscriber", err)
	}
	DeferCleanup(c.Close)
	return &rawSubscriber{conn: c, topics: topics}
}

// waitEvent reads until an event named name whose first argument is reqid.
func (s *rawSubscriber) waitEvent(e *Env, name, reqid string) broker.Message {
	GinkgoHelper()
	ctx, cancel := e.responseCtx()
	defer cancel()
	for {
		m, err := s.conn.Next(ctx)
		Expect(err).NotTo(HaveOccurred(), "subscriber %v never saw %s(%s)", s.topics, name, reqid)
		if m.Err != nil {
			continue
		}
		ev, err := m.Event()
		if err != nil || ev.Name != name || len(ev.Args) == 0 {
			continue
		}
		if r, _ := ev.Args[0].AsString(); r == reqid {
			return m
		}
	}
}

// expectNothing checks that nothing arrives within the consistency window.
func (s *rawSubscriber) expectNothing(e *Env) {
	GinkgoHelper()
	ctx, cancel := e.within(e.Cfg.Timeouts.Consistency)
	defer cancel()
	m, err := s.conn.Next(ctx)
	Expect(err).To(HaveOccurred(), "subscriber %v must not receive %s", s.topics, string(m.Raw))
}
