package suites

import (
	"strings"
	"time"

	"github.com/gorilla/websocket"
	. "github.com/onsi/ginkgo/v2" //nolint:revive
	. "github.com/onsi/gomega"    //nolint:revive

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
	"github.com/zcc-harness/zcc/client"
)

// Error-frame contexts of Zeek 8.1's WebSocket server, verbatim (O §1.4).
// The reference controller may add details after them, so specs check
// them as prefixes.
const (
	ctxBadJSON  = "failed to decode JSON object"
	ctxNoTopic  = "no topic in top-level JSON object"
	ctxBadEvent = "failed to create Zeek event"

	mgmtGetInstancesRequest  = mgmtAPI + "get_instances_request"
	mgmtGetInstancesResponse = mgmtAPI + "get_instances_response"
)

// waitEvents reads until an event of each name whose first argument is
// reqid has arrived, in whatever order.
func (s *rawSubscriber) waitEvents(e *Env, reqid string, names ...string) map[string]broker.Message {
	GinkgoHelper()
	ctx, cancel := e.responseCtx()
	defer cancel()
	got := map[string]broker.Message{}
	for len(got) < len(names) {
		m, err := s.conn.Next(ctx)
		Expect(err).NotTo(HaveOccurred(), "subscriber %v saw only %d of %v for %s", s.topics, len(got), names, reqid)
		if m.Err != nil {
			continue
		}
		ev, err := m.Event()
		if err != nil || len(ev.Args) == 0 || !contains(names, ev.Name) {
			continue
		}
		if r, _ := ev.Args[0].AsString(); r == reqid {
			got[ev.Name] = m
		}
	}
	return got
}

// expectAnswered checks that c still gets an answer to get_instances.
func (m *mgmtEnv) expectAnswered(c *client.Client, after string) {
	GinkgoHelper()
	ctx, cancel := m.responseCtx()
	defer cancel()
	reqid := m.Reqid("after")
	res, err := c.GetInstances(ctx, withReqid(reqid))
	Expect(err).NotTo(HaveOccurred(), "the same connection gets no answer after %s", after)
	Expect(res.Reqid).To(Equal(reqid))
}

// expectErrorFrameAfter writes raw on a fresh client and expects an error
// frame with code deserialization_failed and a context starting with
// ctxPrefix; the connection must stay usable.
func (m *mgmtEnv) expectErrorFrameAfter(raw []byte, ctxPrefix, what string) {
	GinkgoHelper()
	c := m.NewClient()
	ctx, cancel := m.responseCtx()
	defer cancel()
	Expect(c.Conn().WriteRaw(ctx, raw)).To(Succeed())
	f := m.nextErrorFrame(c.Errors(), what)
	expectErrorFrame(f, codeDeserializationFailed, ctxPrefix)
	m.expectAnswered(c, what)
}

func init() {
	spec(profileMgmt, pairTransport, []string{"transport.data-before-ack"}, "answers a request sent right behind the subscription, after the ack", func(e *Env) {
		rc, _, err := e.dialRaw(wirePath)
		if err != nil {
			infraError("dial", err)
		}
		reqid := e.Reqid("early")
		frame, err := broker.EventFrame(mgmtControllerTopic, broker.NewEvent(mgmtGetInstancesRequest, broker.String(reqid))).Encode()
		Expect(err).NotTo(HaveOccurred())
		Expect(rc.WriteMessage(websocket.TextMessage, []byte(`["`+mgmtControllerTopic+`"]`))).To(Succeed())
		Expect(rc.WriteMessage(websocket.TextMessage, frame)).To(Succeed())
		first, raw, err := rc.readJSON(e.Cfg.Timeouts.ResponseWait)
		Expect(err).NotTo(HaveOccurred())
		Expect(first).To(HaveKeyWithValue("type", "ack"), "the ack comes first: %s", raw)
		deadline := time.Now().Add(e.Cfg.Timeouts.ResponseWait)
		for {
			_, raw, err := rc.readJSON(time.Until(deadline))
			Expect(err).NotTo(HaveOccurred(), "no response to the request sent before the ack")
			f, err := broker.DecodeFrame([]byte(raw))
			if err != nil || f.Type != broker.FrameDataMessage {
				continue
			}
			ev, err := broker.EventFromValue(f.Data)
			if err != nil || ev.Name != mgmtGetInstancesResponse {
				continue
			}
			if r, _ := ev.Args[0].AsString(); r == reqid {
				return
			}
		}
	})

	spec(profileMgmt, pairTransport, []string{"transport.empty-subscription"}, "acknowledges an empty subscription and handles its requests without delivering responses to it", func(e *Env) {
		w := e.Watch()
		rc, _, err := e.dialRaw(wirePath)
		if err != nil {
			infraError("dial", err)
		}
		Expect(rc.WriteMessage(websocket.TextMessage, []byte(`[]`))).To(Succeed())
		m, raw, err := rc.readJSON(e.Cfg.Timeouts.ResponseWait)
		Expect(err).NotTo(HaveOccurred())
		Expect(m).To(HaveKeyWithValue("type", "ack"), "[] is a valid subscription: %s", raw)
		reqid := e.Reqid("unsub")
		frame, err := broker.EventFrame(mgmtControllerTopic, broker.NewEvent(mgmtGetInstancesRequest, broker.String(reqid))).Encode()
		Expect(err).NotTo(HaveOccurred())
		Expect(rc.WriteMessage(websocket.TextMessage, frame)).To(Succeed())
		ctx, cancel := e.responseCtx()
		_, err = w.WaitMatching(ctx, api.KindGetInstancesResponse, reqid, 1)
		cancel()
		Expect(err).NotTo(HaveOccurred(), "the request of an unsubscribed client was not handled (no response on the controller topic)")
		got, raw, err := rc.readJSON(e.Cfg.Timeouts.Consistency)
		Expect(err).To(HaveOccurred(), "a client subscribed to nothing received %v (%s)", got, raw)
	})

	spec(profileMgmt, pairTransport, []string{"transport.malformed-frame"}, "answers truncated JSON with failed to decode JSON object and keeps the connection", func(e *Env) {
		mgmtOf(e).expectErrorFrameAfter([]byte(`{"type":"data-message",`), ctxBadJSON, "a truncated JSON frame")
	})

	spec(profileMgmt, pairTransport, []string{"transport.no-topic"}, "answers a data message without topic with no topic in top-level JSON object", func(e *Env) {
		ev := broker.NewEvent(mgmtGetInstancesRequest, broker.String(e.Reqid("notopic")))
		frame, err := broker.EventFrame(mgmtControllerTopic, ev).Encode()
		Expect(err).NotTo(HaveOccurred())
		noTopic := strings.Replace(string(frame), `"topic":"`+mgmtControllerTopic+`",`, "", 1)
		Expect(noTopic).NotTo(Equal(string(frame)), "harness: the encoded frame has no topic key to drop: %s", frame)
		mgmtOf(e).expectErrorFrameAfter([]byte(noTopic), ctxNoTopic, "a data message without topic")
	})

	spec(profileMgmt, pairTransport, []string{"transport.not-an-event"}, "answers a data message that is not an event with failed to create Zeek event", func(e *Env) {
		raw := `{"type":"data-message","topic":"` + mgmtControllerTopic + `","@data-type":"string","data":"hello"}`
		mgmtOf(e).expectErrorFrameAfter([]byte(raw), ctxBadEvent, "a string payload")
	})

	spec(profileMgmt, pairTransport, []string{"transport.unknown-event"}, "answers an undeclared event with failed to create Zeek event and keeps the connection", func(e *Env) {
		ev := broker.NewEvent(mgmtAPI+"test_noop_request", broker.String(e.Reqid("noop")))
		frame, err := broker.EventFrame(mgmtControllerTopic, ev).Encode()
		Expect(err).NotTo(HaveOccurred())
		mgmtOf(e).expectErrorFrameAfter(frame, ctxBadEvent, "test_noop_request")
	})

	spec(profileMgmt, pairTransport, []string{"transport.wrong-args"}, "answers wrong argument types and counts with failed to create Zeek event and no response", func(e *Env) {
		m := mgmtOf(e)
		c := m.NewClient()
		ctx, cancel := m.responseCtx()
		defer cancel()
		reqid := m.Reqid("bad")
		for _, ev := range []broker.Event{
			broker.NewEvent(mgmtGetInstancesRequest, broker.Count(1)),
			broker.NewEvent(mgmtGetInstancesRequest),
			broker.NewEvent(mgmtGetInstancesRequest, broker.String(reqid), broker.String("extra")),
			broker.NewEvent(mgmtAPI+"get_configuration_request", broker.String(reqid), broker.String("yes")),
			broker.NewEvent(mgmtAPI+"deploy_request", broker.String(reqid), broker.Bool(true)),
		} {
			Expect(c.Conn().Publish(ctx, mgmtControllerTopic, ev)).To(Succeed())
			f := m.nextErrorFrame(c.Errors(), ev.String())
			expectErrorFrame(f, codeDeserializationFailed, ctxBadEvent)
		}
		qctx, qcancel := m.within(m.Cfg.Timeouts.Consistency)
		defer qcancel()
		for _, k := range []api.EventKind{api.KindGetInstancesResponse, api.KindGetConfigurationResponse, api.KindDeployResponse} {
			_, _ = m.w.WaitMatching(qctx, k, reqid, 1)
			Expect(m.w.Matching(k, reqid)).To(BeEmpty(), "a request with bad arguments was answered")
		}
		m.expectAnswered(c, "bad arguments")
	})

}
