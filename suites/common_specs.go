package suites

import (
	"fmt"
	"io"
	"sync"

	"github.com/gorilla/websocket"
	. "github.com/onsi/ginkgo/v2" //nolint:revive
	. "github.com/onsi/gomega"    //nolint:revive

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/client"
)

// profileWire is what the specs both profiles share need to know of a
// profile's wire: its topics and the get_instances event names. The values
// are stated here from the protocol notes, not taken from api.Profile, so
// that a wrong constant there fails the suite.
type profileWire struct {
	profile              string
	controllerTopic      string // clients publish requests here; responses come back here
	agentTopicPrefix     string
	broadPrefix          string // a shorter prefix that also covers the controller topic
	getInstancesRequest  string
	getInstancesResponse string
}

var wires = []profileWire{
	{ // clustercontroller-v1.md §2.1, §3.1
		profile:              "cc42",
		controllerTopic:      "zeek/cluster-control/controller",
		agentTopicPrefix:     "zeek/cluster-control/agent",
		broadPrefix:          "zeek/cluster-control",
		getInstancesRequest:  "ClusterController::API::get_instances_request",
		getInstancesResponse: "ClusterController::API::get_instances_response",
	},
	{ // management-websocket.md §2.2, §2.4
		profile:              "mgmt",
		controllerTopic:      "zeek/management/controller",
		agentTopicPrefix:     "zeek/management/agent",
		broadPrefix:          "zeek/management",
		getInstancesRequest:  "Management::Controller::API::get_instances_request",
		getInstancesResponse: "Management::Controller::API::get_instances_response",
	},
}

// The transport and concurrency specs are the same for every profile
// (management-websocket.md §1); only the names above differ.
func init() {
	for _, w := range wires {
		registerCommonSpecs(w)
	}
}

func registerCommonSpecs(w profileWire) {
	spec(w.profile, "transport", []string{"transport.ack"}, "answers the handshake with an ack carrying endpoint and version", func(e *Env) {
		rc, _, err := e.dialRaw(wirePath)
		if err != nil {
			infraError("dial", err)
		}
		Expect(rc.WriteMessage(websocket.TextMessage, []byte(`["`+w.controllerTopic+`"]`))).To(Succeed())
		// Zeek 8.1 pings before the ack; gorilla answers pings inside
		// ReadMessage, so the first text frame must be the ack.
		m, raw, err := rc.readJSON(e.Cfg.Timeouts.ResponseWait)
		Expect(err).NotTo(HaveOccurred(), "first frame after the handshake (%s)", raw)
		Expect(m).To(HaveKeyWithValue("type", "ack"), "the first frame must be the ack: %s", raw)
		Expect(m["endpoint"]).To(BeAssignableToTypeOf(""), "ack endpoint must be a string: %s", raw)
		Expect(m["version"]).To(BeAssignableToTypeOf(""), "ack version must be a string: %s", raw)
		Expect(m["endpoint"]).NotTo(BeEmpty())
		Expect(m["version"]).NotTo(BeEmpty())
	})

	spec(w.profile, "transport", []string{"transport.no-echo"}, "never sends a client its own published frames", func(e *Env) {
		watch := e.Watch()
		reqid := e.Reqid("echo")
		ctx, cancel := e.responseCtx()
		defer cancel()
		Expect(watch.client.Publish(ctx, api.GetInstancesRequest{Reqid: reqid})).To(Succeed())
		_, err := watch.WaitMatching(ctx, api.KindGetInstancesResponse, reqid, 1)
		Expect(err).NotTo(HaveOccurred(), "no get_instances_response for %s", reqid)
		// Frames are delivered in order; give stragglers the consistency window.
		wctx, wcancel := e.within(e.Cfg.Timeouts.Consistency)
		defer wcancel()
		_, _ = watch.WaitMatching(wctx, api.KindGetInstancesRequest, reqid, 1)
		Expect(watch.Matching(api.KindGetInstancesRequest, reqid)).To(BeEmpty(), "the client received its own request back")
	})

	spec(w.profile, "transport", []string{"transport.prefix-routing", "transport.response-topic"}, "routes frames by topic prefix to every other subscriber and answers on the controller topic", func(e *Env) {
		broad := e.rawSubscriber([]string{w.broadPrefix})
		exact := e.rawSubscriber([]string{w.controllerTopic})
		other := e.rawSubscriber([]string{w.agentTopicPrefix + "/" + e.Name("nobody")})
		reqid := e.Reqid("route")
		ctx, cancel := e.responseCtx()
		defer cancel()
		_, err := e.Client().GetInstances(ctx, withReqid(reqid))
		Expect(err).NotTo(HaveOccurred())
		for _, s := range []*rawSubscriber{broad, exact} {
			// The controller may answer before the hub has passed the
			// request on to this subscriber: take them in any order.
			got := s.waitEvents(e, reqid, w.getInstancesRequest, w.getInstancesResponse)
			Expect(got[w.getInstancesRequest].Topic).To(Equal(w.controllerTopic), "another client's request reaches subscriber %v", s.topics)
			Expect(got[w.getInstancesResponse].Topic).To(Equal(w.controllerTopic), "responses are published on %s", w.controllerTopic)
		}
		other.expectNothing(e)
	})

	spec(w.profile, "transport", []string{"transport.bad-handshake"}, "rejects a bad handshake with deserialization_failed, and a new connection works", func(e *Env) {
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

	spec(w.profile, "transport", []string{"transport.wrong-path"}, "refuses a WebSocket on another path with a message naming /v1/messages/json", func(e *Env) {
		rc, resp, err := e.dialRaw("/wrong/path")
		if err != nil {
			// Refused at the HTTP level (Broker <= 8.0 style): the body names the path.
			Expect(resp).NotTo(BeNil(), "dial failed without an HTTP response: %v", err)
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			Expect(resp.StatusCode).To(BeNumerically(">=", 400))
			Expect(string(body)).To(ContainSubstring(wirePath))
			return
		}
		// Zeek 8.1: the upgrade succeeds, then invalid_uri and close 1008,
		// without waiting for a first frame.
		m, raw, err := rc.readJSON(e.Cfg.Timeouts.ResponseWait)
		Expect(err).NotTo(HaveOccurred(), "upgrade on a wrong path accepted, but no error frame followed")
		Expect(m).To(HaveKeyWithValue("type", "error"), raw)
		Expect(m["context"]).To(ContainSubstring(wirePath), raw)
		_, _, err = rc.readJSON(e.Cfg.Timeouts.ResponseWait)
		Expect(err).To(HaveOccurred(), "the connection must be closed after the error frame")
	})

	spec(w.profile, "get_instances", []string{"concurrency.reqid-isolation"}, "lets two clients find their own responses by reqid", func(e *Env) {
		c1, c2 := e.NewClient(), e.NewClient()
		watch := e.Watch()
		reqids := []string{e.Reqid("one"), e.Reqid("two")}
		var wg sync.WaitGroup
		results := make([]api.Result, 2)
		errs := make([]error, 2)
		for i, c := range []*client.Client{c1, c2} {
			wg.Add(1)
			go func() {
				defer GinkgoRecover()
				defer wg.Done()
				ctx, cancel := e.responseCtx()
				defer cancel()
				results[i], errs[i] = c.GetInstances(ctx, withReqid(reqids[i]))
			}()
		}
		wg.Wait()
		for i := range reqids {
			Expect(errs[i]).NotTo(HaveOccurred())
			Expect(results[i].Reqid).To(Equal(reqids[i]))
			ctx, cancel := e.responseCtx()
			_, err := watch.WaitMatching(ctx, api.KindGetInstancesResponse, reqids[i], 1)
			cancel()
			Expect(err).NotTo(HaveOccurred(), "responses reach every client on the controller topic; %s missing", reqids[i])
		}
	})

	spec(w.profile, "get_instances", []string{"concurrency.many-requests"}, "answers 50 concurrent get_instances", func(e *Env) {
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
