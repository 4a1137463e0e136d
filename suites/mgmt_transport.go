package suites

import (
	"fmt"
	"io"
	"strings"
	"sync"
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
	spec(profileMgmt, pairTransport, []string{"transport.ack"}, "answers the handshake with an ack carrying endpoint and version", func(e *Env) {
		rc, _, err := e.dialRaw(wirePath)
		if err != nil {
			infraError("dial", err)
		}
		Expect(rc.WriteMessage(websocket.TextMessage, []byte(`["`+mgmtControllerTopic+`"]`))).To(Succeed())
		// Zeek 8.1 pings before the ack (O §1.2); gorilla answers pings
		// inside ReadMessage, so the first text frame must be the ack.
		m, raw, err := rc.readJSON(e.Cfg.Timeouts.ResponseWait)
		Expect(err).NotTo(HaveOccurred(), "first frame after the handshake (%s)", raw)
		Expect(m).To(HaveKeyWithValue("type", "ack"), "the first frame must be the ack: %s", raw)
		Expect(m["endpoint"]).To(BeAssignableToTypeOf(""), "ack endpoint must be a string: %s", raw)
		Expect(m["version"]).To(BeAssignableToTypeOf(""), "ack version must be a string: %s", raw)
		Expect(m["endpoint"]).NotTo(BeEmpty())
		Expect(m["version"]).NotTo(BeEmpty())
	})

	spec(profileMgmt, pairTransport, []string{"transport.no-echo"}, "never sends a client its own published frames", func(e *Env) {
		w := e.Watch()
		reqid := e.Reqid("echo")
		ctx, cancel := e.responseCtx()
		defer cancel()
		Expect(w.client.Publish(ctx, api.GetInstancesRequest{Reqid: reqid})).To(Succeed())
		_, err := w.WaitMatching(ctx, api.KindGetInstancesResponse, reqid, 1)
		Expect(err).NotTo(HaveOccurred(), "no get_instances_response for %s", reqid)
		wctx, wcancel := e.within(e.Cfg.Timeouts.Consistency)
		defer wcancel()
		_, _ = w.WaitMatching(wctx, api.KindGetInstancesRequest, reqid, 1)
		Expect(w.Matching(api.KindGetInstancesRequest, reqid)).To(BeEmpty(), "the client received its own request back")
	})

	spec(profileMgmt, pairTransport, []string{"transport.prefix-routing", "transport.response-topic"}, "routes frames by topic prefix to every other subscriber and answers on zeek/management/controller", func(e *Env) {
		broad := e.rawSubscriber([]string{"zeek/management"})
		exact := e.rawSubscriber([]string{mgmtControllerTopic})
		other := e.rawSubscriber([]string{mgmtAgentTopicPrefix + "/" + e.Name("nobody")})
		reqid := e.Reqid("route")
		ctx, cancel := e.responseCtx()
		defer cancel()
		_, err := e.Client().GetInstances(ctx, withReqid(reqid))
		Expect(err).NotTo(HaveOccurred())
		for _, s := range []*rawSubscriber{broad, exact} {
			// The controller may answer before the hub has passed the
			// request on to this subscriber: take them in any order.
			got := s.waitEvents(e, reqid, mgmtGetInstancesRequest, mgmtGetInstancesResponse)
			Expect(got[mgmtGetInstancesRequest].Topic).To(Equal(mgmtControllerTopic), "another client's request reaches subscriber %v", s.topics)
			Expect(got[mgmtGetInstancesResponse].Topic).To(Equal(mgmtControllerTopic), "responses are published on %s", mgmtControllerTopic)
		}
		other.expectNothing(e)
	})

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

	spec(profileMgmt, pairTransport, []string{"transport.bad-handshake"}, "rejects a bad handshake with deserialization_failed, and a new connection works", func(e *Env) {
		for _, c := range []struct{ first, ctx string }{
			{`{"foo":1}`, ctxNotAnArray},
			{`[1]`, ctxSubscriptionNotString},
		} {
			rc, _, err := e.dialRaw(wirePath)
			if err != nil {
				infraError("dial", err)
			}
			Expect(rc.WriteMessage(websocket.TextMessage, []byte(c.first))).To(Succeed())
			m, raw, err := rc.readJSON(e.Cfg.Timeouts.ResponseWait)
			Expect(err).NotTo(HaveOccurred(), "no error frame after the handshake %s", c.first)
			Expect(m).To(HaveKeyWithValue("type", "error"), "after handshake %s: %s", c.first, raw)
			Expect(m).To(HaveKeyWithValue("code", codeDeserializationFailed), "after handshake %s: %s", c.first, raw)
			Expect(m["context"]).To(HavePrefix(c.ctx), "after handshake %s: %s", c.first, raw)
		}
		e.expectServing()
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

	spec(profileMgmt, pairTransport, []string{"transport.wrong-path"}, "refuses a WebSocket on another path with a message naming /v1/messages/json", func(e *Env) {
		rc, resp, err := e.dialRaw("/wrong/path")
		if err != nil {
			Expect(resp).NotTo(BeNil(), "dial failed without an HTTP response: %v", err)
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			Expect(resp.StatusCode).To(BeNumerically(">=", 400))
			Expect(string(body)).To(ContainSubstring(wirePath))
			return
		}
		// Zeek 8.1: the upgrade succeeds, then invalid_uri and close 1008,
		// without waiting for a first frame (O §1.2).
		m, raw, err := rc.readJSON(e.Cfg.Timeouts.ResponseWait)
		Expect(err).NotTo(HaveOccurred(), "upgrade on a wrong path accepted, but no error frame followed")
		Expect(m).To(HaveKeyWithValue("type", "error"), raw)
		Expect(m["context"]).To(ContainSubstring(wirePath), raw)
		_, _, err = rc.readJSON(e.Cfg.Timeouts.ResponseWait)
		Expect(err).To(HaveOccurred(), "the connection must be closed after the error frame")
	})

	// --- concurrency (M §1.7) ---

	spec(profileMgmt, pairGetInstances, []string{"concurrency.reqid-isolation"}, "lets two clients find their own responses by reqid", func(e *Env) {
		c1, c2 := e.NewClient(), e.NewClient()
		w := e.Watch()
		r1, r2 := e.Reqid("one"), e.Reqid("two")
		var wg sync.WaitGroup
		results := make([]api.Result, 2)
		errs := make([]error, 2)
		for i, c := range []struct {
			r  string
			cl *client.Client
		}{{r1, c1}, {r2, c2}} {
			wg.Add(1)
			go func() {
				defer GinkgoRecover()
				defer wg.Done()
				ctx, cancel := e.responseCtx()
				defer cancel()
				results[i], errs[i] = c.cl.GetInstances(ctx, withReqid(c.r))
			}()
		}
		wg.Wait()
		Expect(errs[0]).NotTo(HaveOccurred())
		Expect(errs[1]).NotTo(HaveOccurred())
		Expect(results[0].Reqid).To(Equal(r1))
		Expect(results[1].Reqid).To(Equal(r2))
		for _, r := range []string{r1, r2} {
			ctx, cancel := e.responseCtx()
			_, err := w.WaitMatching(ctx, api.KindGetInstancesResponse, r, 1)
			cancel()
			Expect(err).NotTo(HaveOccurred(), "responses reach every client on the controller topic; %s missing", r)
		}
	})

	spec(profileMgmt, pairGetInstances, []string{"concurrency.many-requests"}, "answers 50 concurrent get_instances", func(e *Env) {
		clients := []*client.Client{e.NewClient(), e.NewClient(), e.NewClient()}
		const n = 50
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer GinkgoRecover()
				defer wg.Done()
				ctx, cancel := e.responseCtx()
				defer cancel()
				reqid := e.Reqid(fmt.Sprintf("m%02d-", i))
				res, err := clients[i%len(clients)].GetInstances(ctx, withReqid(reqid))
				if err == nil && res.Reqid != reqid {
					err = fmt.Errorf("request %s answered with reqid %s", reqid, res.Reqid)
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			Expect(err).NotTo(HaveOccurred())
		}
	}, labels("load"))
}
