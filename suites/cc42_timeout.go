package suites

import (
	"net/netip"
	"time"

	. "github.com/onsi/gomega" //nolint:revive

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/fakeagent"
)

func init() {
	const cc42 = "cc42"
	const pairTT, pairSC = "test_timeout", "set_configuration"

	// --- test_timeout (§5.11) ---

	spec(cc42, pairTT, []string{"test-timeout.stateless"}, "never answers test_timeout without state", func(e *Env) {
		// Watch past the moment a stateful request would have timed out.
		t := e.Cfg.Timeouts
		ctx, cancel := e.within(t.ControllerRequest + t.ExpirySweep + t.Consistency)
		defer cancel()
		_, err := e.Client().TestTimeout(ctx, false, withReqid(e.Reqid("tt")))
		ExpectNoReply(err, "test_timeout_request(R, F)")
	}, labels("timeout"))

	spec(cc42, pairTT, []string{"test-timeout.stateful", "test-timeout.window"}, "answers a stateful test_timeout with the timeout Result between timeout and timeout + sweep", func(e *Env) {
		reqid := e.Reqid("tt")
		ctx, cancel := e.responseCtx()
		defer cancel()
		start := time.Now()
		res, err := e.Client().TestTimeout(ctx, true, withReqid(reqid))
		elapsed := time.Since(start)
		Expect(err).NotTo(HaveOccurred(), "no test_timeout_response")
		ExpectResult(res, timedOut(reqid))
		earliest, latest := e.Cfg.Timeouts.TimeoutWindow()
		Expect(elapsed).To(BeNumerically(">=", earliest-5*time.Millisecond), "the timeout Result came before the request timeout (%s)", earliest)
		Expect(elapsed).To(BeNumerically("<=", latest), "the timeout Result came after timeout + sweep + slack (%s)", latest)
	}, labels("timeout"))

	// --- concurrency (§5.13) ---

	// --- quirks of Zeek 4.2 (§12.2): the expectation follows the declared mode ---

	spec(cc42, pairSC, []string{"quirk.zero-instances"}, "handles a configuration without instances as the declared quirk mode says", func(e *Env) {
		reqid := e.Reqid("zero")
		out := e.await(e.SetConfigAsync(e.Client(), e.emptyConfig(), reqid))
		if e.zeek42() {
			ExpectResults(out.results, timedOut(reqid))
			return
		}
		ExpectResults(out.results)
		Expect(out.after).To(BeNumerically("<", e.Cfg.Timeouts.ControllerRequest), "fixed mode answers at once")
	}, labels("quirk"))

	spec(cc42, pairSC, []string{"quirk.duplicate-welcome"}, "handles duplicate welcome responses as the declared quirk mode says", func(e *Env) {
		// Two welcome requests outstanding at once, answered back to back:
		// the agent holds the first until the second arrives, then answers
		// both. No timing is involved.
		var first *api.AgentWelcomeRequest
		var a *fakeagent.Agent
		a = e.Agent("a", func(o *fakeagent.Options) {
			o.Hook = func(c fakeagent.Call) (fakeagent.Rule, bool) {
				w, ok := c.Msg.(api.AgentWelcomeRequest)
				if !ok {
					return fakeagent.Rule{}, false
				}
				if c.N == 1 {
					first = &w
					return fakeagent.Do(fakeagent.ActionNever), true
				}
				if c.N == 2 && first != nil {
					_ = a.Send(e.Ctx, api.AgentWelcomeResponse{Reqid: first.Reqid, Result: api.Result{Reqid: first.Reqid, Instance: a.Name(), Success: true}})
				}
				return fakeagent.Rule{}, false
			}
		})
		e.WaitSaidHello(a)
		reqid := e.Reqid("sc")
		pending := e.SetConfigAsync(e.Client(), e.Config(a), reqid)
		ctx, cancel := e.responseCtx()
		_, err := a.Transcript().WaitReceived(ctx, api.KindAgentWelcomeRequest)
		cancel()
		Expect(err).NotTo(HaveOccurred())
		Expect(a.SendHello(e.Ctx)).To(Succeed()) // a second hello: the instance is configured but not ready
		out := e.await(pending)
		if e.zeek42() {
			ExpectResults(out.results, agentSuccess(reqid, a.Name()), agentSuccess(reqid, a.Name()))
			Expect(a.Count(api.KindAgentSetConfigurationRequest)).To(Equal(2), "zeek42 pushes the configuration once per welcome response")
			return
		}
		ExpectResults(out.results, agentSuccess(reqid, a.Name()))
		e.expectNoConfigFor(a, 1)
	}, labels("quirk", "fault:duplicate-hello"))

	spec(cc42, pairSC, []string{"quirk.connectivity-change"}, "handles an instance whose host changes as the declared quirk mode says", func(e *Env) {
		a := e.Agent("a")
		e.WaitSaidHello(a)
		r1 := e.Reqid("sc")
		ExpectResults(e.SetConfig(e.Client(), e.Config(a), r1), agentSuccess(r1, a.Name()))
		moved := e.Config(a)
		moved.Instances[0].Host = mustAddr("127.0.0.2")
		r2 := e.Reqid("moved")
		res := e.SetConfig(e.Client(), moved, r2)
		e.waitStandby(a)
		if e.zeek42() {
			ExpectResults(res, timedOut(r2))
			expectInstances(e.getInstances())
			return
		}
		ExpectResults(res, agentSuccess(r2, a.Name()))
		expectInstances(e.getInstances(), moved.Instances[0])
	}, labels("quirk"))

	spec(cc42, pairSC, []string{"quirk.failure-without-node"}, "handles an agent failure without node as the declared quirk mode says", func(e *Env) {
		a := e.Agent("a", on(evSetConfig, fakeagent.Rule{Action: fakeagent.ActionFailNoNode, Error: "crashed"}))
		e.WaitSaidHello(a)
		reqid := e.Reqid("sc")
		res := e.SetConfig(e.Client(), e.Config(a), reqid)
		if e.zeek42() {
			ExpectResults(res, timedOut(reqid))
			return
		}
		ExpectResults(res, api.Result{Reqid: reqid, Instance: a.Name(), Success: false, Error: "node ? failed: crashed"})
	}, labels("quirk", "fault:agent-fails"))

	spec(cc42, pairSC, []string{"quirk.duplicate-reqid"}, "handles a set_configuration reusing the pending reqid as the declared quirk mode says", func(e *Env) {
		a := e.Agent("a", on(evSetConfig, silent))
		e.WaitSaidHello(a)
		w := e.Watch()
		c := e.Client()
		r1 := e.Reqid("dup")
		Expect(c.Publish(e.Ctx, api.SetConfigurationRequest{Reqid: r1, Config: e.Config(a)})).To(Succeed())
		e.waitConfigured(a, 1)
		Expect(c.Publish(e.Ctx, api.SetConfigurationRequest{Reqid: r1, Config: e.Config(a)})).To(Succeed())
		ctx, cancel := e.responseCtx()
		got, err := w.WaitMatching(ctx, api.KindSetConfigurationResponse, r1, 1)
		cancel()
		Expect(err).NotTo(HaveOccurred(), "no answer to the duplicate reqid")
		first, _ := got[0].Msg.(api.SetConfigurationResponse)
		ExpectResults(first.Results, stillPending(r1, r1))
		Expect(a.SetBehaviour(fakeagent.Behaviour{})).To(Succeed()) // from now on a answers
		if e.zeek42() {
			// The shared state is gone: R1 never completes or expires, and
			// every later request is rejected.
			_, latest := e.Cfg.Timeouts.TimeoutWindow()
			ctx, cancel := e.within(latest + e.Cfg.Timeouts.Consistency)
			_, _ = w.WaitMatching(ctx, api.KindSetConfigurationResponse, r1, 2)
			cancel()
			Expect(w.Matching(api.KindSetConfigurationResponse, r1)).To(HaveLen(1), "zeek42 never answers the original request")
			r2 := e.Reqid("later")
			ExpectResults(e.SetConfig(c, e.Config(a), r2), stillPending(r2, r1))
			return
		}
		ctx, cancel = e.responseCtx()
		got, err = w.WaitMatching(ctx, api.KindSetConfigurationResponse, r1, 2)
		cancel()
		Expect(err).NotTo(HaveOccurred(), "the original request must still time out")
		second, _ := got[1].Msg.(api.SetConfigurationResponse)
		ExpectResults(second.Results, timedOut(r1))
		r2 := e.Reqid("later")
		ExpectResults(e.SetConfig(c, e.Config(a), r2), agentSuccess(r2, a.Name()))
	}, labels("quirk", "timeout"), fresh())

	spec(cc42, pairSC, []string{"quirk.peer-loss"}, "handles an agent that vanishes mid-request as the declared quirk mode says", func(e *Env) {
		a := e.Agent("a", on(evSetConfig, silent), noReconnect())
		e.WaitSaidHello(a)
		reqid := e.Reqid("sc")
		pending := e.SetConfigAsync(e.Client(), e.Config(a), reqid)
		e.waitConfigured(a, 1)
		killed := time.Now()
		a.Kill()
		out := e.await(pending)
		if e.zeek42() {
			ExpectResults(out.results, timedOut(reqid))
			return
		}
		ExpectResults(out.results, api.Result{Reqid: reqid, Instance: a.Name(), Success: false, Error: "agent " + a.Name() + " disconnected"})
		Expect(time.Since(killed)).To(BeNumerically("<", e.Cfg.Timeouts.ControllerRequest), "fixed mode answers as soon as the agent is gone")
	}, labels("quirk", "fault:agent-disconnects"))
}

// zeek42 reports whether the target declares Zeek 4.2's quirks.
func (e *Env) zeek42() bool { return e.Cfg.Target.Quirks == QuirksZeek42 }

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func (e *Env) emptyConfig() api.Configuration { return api.Configuration{ID: e.Reqid("cfg")} }
