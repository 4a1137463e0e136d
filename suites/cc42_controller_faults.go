package suites

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive
	. "github.com/onsi/gomega"    //nolint:revive

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/client"
	"github.com/zcc-harness/zcc/fakeagent"
)

// Faults that only a controller in its own process can suffer: restarted,
// paused, killed. They need a target whose controllers implement
// FaultInjector (the container target); elsewhere they are Skipped.
func init() {
	const cc42 = "cc42"
	const pairGI, pairSC = "get_instances", "set_configuration"

	spec(cc42, pairSC, []string{"fault.controller-restart"}, "closes the client's connection when restarted with a set_configuration pending, then accepts a new one", func(e *Env) {
		f := e.faults()
		a := e.Agent("a", on(evSetConfig, silent))
		e.WaitSaidHello(a)
		c := e.Client()
		r1 := e.Reqid("sc")
		pending := e.SetConfigAsync(c, e.Config(a), r1)
		// The push to a is what makes r1 pending: the controller now
		// waits for an answer that never comes.
		e.waitConfigured(a, 1)
		e.fault("restart", f.Restart)

		var o configOutcome
		select {
		case o = <-pending:
		case <-e.Ctx.Done():
			Fail("spec ended while waiting for the pending request to end")
		}
		if o.err == nil {
			// The controller's own timeout won the race against the
			// restart: the fault was not applied to a pending request.
			infraError("restart the controller while a request is pending",
				fmt.Errorf("the request was answered after %s, before the restart took effect (%s); raise timeouts.controller_request (now %s)",
					o.after.Round(time.Millisecond), resultsText(o.results), e.Cfg.Timeouts.ControllerRequest))
		}
		Expect(errors.Is(o.err, client.ErrDisconnected)).To(BeTrue(), "the restart must close the client's connection; the pending request ended with %v", o.err)
		e.expectClosed(c)

		// The agent comes back on its own; from now on it answers.
		Expect(a.SetBehaviour(fakeagent.Behaviour{})).To(Succeed())
		e.waitReconnected(a, 1)
		c2 := e.NewClient()
		ctx, cancel := e.responseCtx()
		_, err := c2.GetInstances(ctx, withReqid(e.Reqid("gi")))
		cancel()
		Expect(err).NotTo(HaveOccurred(), "the restarted controller must answer get_instances")
		r2 := e.Reqid("after")
		res := e.SetConfig(c2, e.Config(a), r2)
		for _, r := range res {
			Expect(r.Error).NotTo(ContainSubstring("still pending"), "the restarted controller kept the request from before the restart: %s", resultText(r))
		}
		ExpectResults(res, agentSuccess(r2, a.Name()))
	}, labels("fault:controller-restart"), NeedsControllerFaults(), fresh())

	spec(cc42, pairGI, []string{"fault.controller-pause"}, "leaves a request unanswered while paused and works again once unpaused", func(e *Env) {
		f := e.faults()
		a := e.Agent("a")
		e.WaitSaidHello(a)
		c := e.Client()
		// Answered first, so the silence below is the pause's doing.
		e.getInstances()
		e.fault("pause", f.Pause)
		// Wait as long as it takes a live controller to time out a
		// request, far longer than a get_instances answer needs.
		_, latest := e.Cfg.Timeouts.TimeoutWindow()
		ctx, cancel := e.within(latest)
		_, err := c.GetInstances(ctx, withReqid(e.Reqid("paused")))
		cancel()
		ExpectNoReply(err, "get_instances_request to a paused controller")
		e.fault("unpause", f.Unpause)

		// The same connection is answered again, and agents are still
		// configured.
		e.getInstances()
		r := e.Reqid("sc")
		ExpectResults(e.SetConfig(c, e.Config(a), r), agentSuccess(r, a.Name()))
	}, labels("fault:controller-pause"), NeedsControllerFaults(), fresh())

	spec(cc42, pairSC, []string{"fault.controller-kill"}, "lets agents notice a killed controller, reconnect when it starts again and be welcomed after a new configuration", func(e *Env) {
		f := e.faults()
		a, b := e.Agent("a"), e.Agent("b")
		e.WaitSaidHello(a, b)
		r1 := e.Reqid("sc")
		ExpectResults(e.SetConfig(e.Client(), e.Config(a, b), r1), agentSuccess(r1, a.Name()), agentSuccess(r1, b.Name()))
		e.WaitWelcomed(a, b)
		conns := map[*fakeagent.Agent]int{a: a.Status().Connections, b: b.Status().Connections}

		e.fault("kill", f.Kill)
		for _, ag := range []*fakeagent.Agent{a, b} {
			ctx, cancel := e.within(e.Cfg.Timeouts.Hello)
			st, err := ag.WaitStatus(ctx, func(s fakeagent.Status) bool { return !s.Connected })
			cancel()
			Expect(err).NotTo(HaveOccurred(), "agent %s did not notice the killed controller (status %+v)", ag.Name(), st)
		}

		e.fault("start", f.Start)
		for _, ag := range []*fakeagent.Agent{a, b} {
			e.waitReconnected(ag, conns[ag])
		}
		welcomes := map[*fakeagent.Agent]int{a: a.Count(api.KindAgentWelcomeRequest), b: b.Count(api.KindAgentWelcomeRequest)}
		r2 := e.Reqid("again")
		ExpectResults(e.SetConfig(e.NewClient(), e.Config(a, b), r2), agentSuccess(r2, a.Name()), agentSuccess(r2, b.Name()))
		e.WaitWelcomed(a, b)
		for _, ag := range []*fakeagent.Agent{a, b} {
			Expect(ag.Count(api.KindAgentWelcomeRequest)).To(BeNumerically(">", welcomes[ag]), "agent %s was not welcomed again after the new configuration", ag.Name())
		}
	}, labels("fault:controller-kill"), NeedsControllerFaults(), fresh())
}

// faults returns the controller's fault injector.
func (e *Env) faults() FaultInjector {
	GinkgoHelper()
	f, ok := e.Ctrl.(FaultInjector)
	if !ok {
		infraError("controller faults", fmt.Errorf("the %s target claims faults, but its controller (%T) does not implement FaultInjector", e.target.Name(), e.Ctrl))
	}
	return f
}

// fault applies one controller fault. Operations that bring the controller
// back (restart, start) include its readiness, so they get the connect
// bound on top of the usual response wait. A fault that cannot be applied
// is a harness Error, not a conformance Fail.
func (e *Env) fault(what string, op func(context.Context) error) {
	GinkgoHelper()
	ctx, cancel := e.within(e.Cfg.Timeouts.Connect + e.Cfg.Timeouts.ResponseWait)
	defer cancel()
	start := time.Now()
	if err := op(ctx); err != nil {
		infraError(what+" the controller", err)
	}
	fmt.Fprintf(GinkgoWriter, "controller fault %s applied in %s\n", what, time.Since(start).Round(time.Millisecond))
}

// expectClosed checks that the client's connection is gone.
func (e *Env) expectClosed(c *client.Client) {
	GinkgoHelper()
	select {
	case <-c.Done():
	case <-e.Ctx.Done():
		Fail("spec ended while waiting for the client's connection to close")
	}
}

// waitReconnected waits until the agent has a connection beyond the first
// `before` ones and has said hello on it.
func (e *Env) waitReconnected(a *fakeagent.Agent, before int) {
	GinkgoHelper()
	ctx, cancel := e.within(e.Cfg.Timeouts.Connect + e.Cfg.Timeouts.Hello)
	defer cancel()
	st, err := a.WaitStatus(ctx, func(s fakeagent.Status) bool { return s.Connected && s.Connections > before })
	Expect(err).NotTo(HaveOccurred(), "agent %s did not reconnect to the controller (status %+v)", a.Name(), st)
	_, err = a.WaitFor(ctx, func(en fakeagent.Entry) bool {
		return en.Dir == fakeagent.Out && en.Kind == api.KindNotifyAgentHello && en.Err == "" && en.Conn > before
	})
	Expect(err).NotTo(HaveOccurred(), "agent %s reconnected but said no hello (last error %q)", a.Name(), strings.TrimSpace(a.Status().LastError))
}
