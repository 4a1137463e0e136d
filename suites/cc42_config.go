package suites

import (
	"context"
	"sort"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive
	. "github.com/onsi/gomega"    //nolint:revive

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
	"github.com/zcc-harness/zcc/fakeagent"
)

// Short names of the agent-side requests, as fake-agent behaviours name
// them (clustercontroller-v1.md §3.2).
const (
	evWelcome   = "agent_welcome_request"
	evSetConfig = "set_configuration_request"
)

var (
	silent = fakeagent.Do(fakeagent.ActionNever)
)

// configsReceived returns the configurations an agent was pushed, with the
// child reqids they came under.
func configsReceived(a *fakeagent.Agent) ([]api.Configuration, []string) {
	var cfgs []api.Configuration
	var ids []string
	for _, en := range a.Received(api.KindAgentSetConfigurationRequest) {
		if m, ok := en.Msg.(api.AgentSetConfigurationRequest); ok {
			cfgs = append(cfgs, m.Config)
			ids = append(ids, m.Reqid)
		}
	}
	return cfgs, ids
}

// waitReceived waits until the agent has received n messages of kind.
// (Transcript predicates run under the transcript's lock, so they must not
// call back into the agent; this compares sequence numbers instead.)
func waitReceived(ctx context.Context, a *fakeagent.Agent, kind api.EventKind, n int) error {
	for {
		got := a.Received(kind)
		if len(got) >= n {
			return nil
		}
		last := 0
		if len(got) > 0 {
			last = got[len(got)-1].Seq
		}
		_, err := a.WaitFor(ctx, func(en fakeagent.Entry) bool {
			return en.Dir == fakeagent.In && en.Kind == kind && en.Seq > last
		})
		if err != nil {
			return err
		}
	}
}

// waitConfigured waits until the agent has received n configurations.
func (e *Env) waitConfigured(a *fakeagent.Agent, n int) {
	GinkgoHelper()
	ctx, cancel := e.responseCtx()
	defer cancel()
	err := waitReceived(ctx, a, api.KindAgentSetConfigurationRequest, n)
	Expect(err).NotTo(HaveOccurred(), "agent %s received %d configurations, want %d", a.Name(), a.Count(api.KindAgentSetConfigurationRequest), n)
}

// expectNoConfigFor checks that the agent receives no configuration
// beyond the ones it already has during the consistency window.
func (e *Env) expectNoConfigFor(a *fakeagent.Agent, already int) {
	GinkgoHelper()
	ctx, cancel := e.within(e.Cfg.Timeouts.Consistency)
	defer cancel()
	_ = waitReceived(ctx, a, api.KindAgentSetConfigurationRequest, already+1)
	Expect(a.Count(api.KindAgentSetConfigurationRequest)).To(Equal(already), "agent %s must not receive a configuration now", a.Name())
}

// waitStandby waits for agent_standby_request("") at the agent.
func (e *Env) waitStandby(a *fakeagent.Agent) {
	GinkgoHelper()
	ctx, cancel := e.responseCtx()
	defer cancel()
	en, err := a.Transcript().WaitReceived(ctx, api.KindAgentStandbyRequest)
	Expect(err).NotTo(HaveOccurred(), "agent %s received no agent_standby_request", a.Name())
	m, _ := en.Msg.(api.AgentStandbyRequest)
	Expect(m.Reqid).To(Equal(""), "standby requests carry the empty reqid (§5.8)")
}

// instancesOf decodes get_instances data, sorted by name.
func (e *Env) instancesOf(res api.Result) []api.Instance {
	GinkgoHelper()
	Expect(res.Data.Kind()).To(Equal(broker.KindVector), "get_instances data must be a vector of Instance, got %s", res.Data)
	insts, err := e.Profile.DecodeInstances(res.Data)
	Expect(err).NotTo(HaveOccurred(), "get_instances data")
	sort.Slice(insts, func(i, j int) bool { return insts[i].Name < insts[j].Name })
	return insts
}

func expectInstances(got []api.Instance, want ...api.Instance) {
	GinkgoHelper()
	sort.Slice(want, func(i, j int) bool { return want[i].Name < want[j].Name })
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].Equal(want[i])
	}
	Expect(ok).To(BeTrue(), "instances differ:\ngot  %v\nwant %v", got, want)
}

// getInstances asks for the instances with a fresh reqid and checks the
// Result's envelope (§5.9: reqid echoed, instance "", success, error "",
// node unset).
func (e *Env) getInstances() []api.Instance {
	GinkgoHelper()
	ctx, cancel := e.responseCtx()
	defer cancel()
	reqid := e.Reqid("gi")
	res, err := e.Client().GetInstances(ctx, withReqid(reqid))
	Expect(err).NotTo(HaveOccurred(), "get_instances_request")
	data := res.Data
	res.Data = broker.None()
	ExpectResult(res, api.Result{Reqid: reqid, Success: true})
	res.Data = data
	return e.instancesOf(res)
}

func init() {
	const cc42 = "cc42"
	const pairGI, pairSC = "get_instances", "set_configuration"

	// --- get_instances (§5.9) ---

	spec(cc42, pairGI, []string{"get-instances.no-config"}, "answers get_instances before any configuration with an empty vector", func(e *Env) {
		ctx, cancel := e.responseCtx()
		defer cancel()
		reqid := e.Reqid("gi")
		res, err := e.Client().GetInstances(ctx, withReqid(reqid))
		Expect(err).NotTo(HaveOccurred())
		ExpectResult(res, api.Result{Reqid: reqid, Instance: "", Success: true, Data: broker.Vector(), Error: ""})
	}, fresh())

	spec(cc42, pairGI, []string{"get-instances.after-config"}, "lists the instances of the last accepted configuration as sent", func(e *Env) {
		a, b := e.Agent("a"), e.Agent("b")
		e.WaitSaidHello(a, b)
		cfg := e.Config(a, b)
		reqid := e.Reqid("sc")
		ExpectResults(e.SetConfig(e.Client(), cfg, reqid), agentSuccess(reqid, a.Name()), agentSuccess(reqid, b.Name()))
		expectInstances(e.getInstances(), connecting(a.Name()), connecting(b.Name()))
	})

	spec(cc42, pairGI, []string{"get-instances.after-drop", "set-config.drop-standby"}, "drops an instance a reconfiguration removes, and sends it standby", func(e *Env) {
		a, b := e.Agent("a"), e.Agent("b")
		e.WaitSaidHello(a, b)
		r1 := e.Reqid("sc")
		ExpectResults(e.SetConfig(e.Client(), e.Config(a, b), r1), agentSuccess(r1, a.Name()), agentSuccess(r1, b.Name()))
		r2 := e.Reqid("sc")
		ExpectResults(e.SetConfig(e.Client(), e.Config(a), r2), agentSuccess(r2, a.Name()))
		e.waitStandby(b)
		expectInstances(e.getInstances(), connecting(a.Name()))
	})

	spec(cc42, pairGI, []string{"get-instances.never-blocked"}, "answers get_instances at once while a set_configuration is pending", func(e *Env) {
		a := e.Agent("a", on(evSetConfig, silent))
		e.WaitSaidHello(a)
		reqid := e.Reqid("sc")
		pending := e.SetConfigAsync(e.Client(), e.Config(a), reqid)
		e.waitConfigured(a, 1)
		start := time.Now()
		expectInstances(e.getInstances(), connecting(a.Name()))
		Expect(time.Since(start)).To(BeNumerically("<", e.Cfg.Timeouts.ControllerRequest), "get_instances waited for the pending request")
		Expect(pending).NotTo(Receive(), "the set_configuration must still be pending")
		ExpectResults(e.await(pending).results, timedOut(reqid))
	}, labels("timeout"))

	// --- set_configuration (§5.6, §5.7, §5.10) ---

	spec(cc42, pairSC, []string{"set-config.all-succeed", "set-config.full-config-each-agent"}, "sends every ready agent the whole configuration and answers one success Result per agent", func(e *Env) {
		a, b, c := e.Agent("a"), e.Agent("b"), e.Agent("c")
		e.WaitSaidHello(a, b, c)
		cfg := e.Config(a, b, c)
		reqid := e.Reqid("sc")
		ExpectResults(e.SetConfig(e.Client(), cfg, reqid),
			agentSuccess(reqid, a.Name()), agentSuccess(reqid, b.Name()), agentSuccess(reqid, c.Name()))
		children := map[string]bool{}
		for _, ag := range []*fakeagent.Agent{a, b, c} {
			cfgs, ids := configsReceived(ag)
			Expect(cfgs).To(HaveLen(1), "agent %s configurations", ag.Name())
			Expect(cfgs[0].Equal(cfg)).To(BeTrue(), "agent %s got\n%v\nwant the whole configuration\n%v", ag.Name(), cfgs[0], cfg)
			Expect(ids[0]).NotTo(Equal(reqid), "agents get child reqids, not the client's")
			Expect(children).NotTo(HaveKey(ids[0]), "child reqids must differ between agents")
			children[ids[0]] = true
		}
	})

	spec(cc42, pairSC, []string{"set-config.one-fails"}, "reports a failing agent as node <n> failed: <e> and the others as successes", func(e *Env) {
		a := e.Agent("a")
		b := e.Agent("b", on(evSetConfig, fakeagent.Fail("worker-b1", "cannot bind port")))
		c := e.Agent("c")
		e.WaitSaidHello(a, b, c)
		reqid := e.Reqid("sc")
		ExpectResults(e.SetConfig(e.Client(), e.Config(a, b, c), reqid),
			agentSuccess(reqid, a.Name()),
			agentFailure(reqid, b.Name(), "worker-b1", "cannot bind port"),
			agentSuccess(reqid, c.Name()))
	}, labels("fault:agent-fails"))

	spec(cc42, pairSC, []string{"set-config.several-fail"}, "reports each of several failing agents with its own node and error", func(e *Env) {
		a := e.Agent("a", on(evSetConfig, fakeagent.Fail("manager", "script error")))
		b := e.Agent("b", on(evSetConfig, fakeagent.Fail("worker-2", "interface eth9 missing")))
		c := e.Agent("c")
		e.WaitSaidHello(a, b, c)
		reqid := e.Reqid("sc")
		ExpectResults(e.SetConfig(e.Client(), e.Config(a, b, c), reqid),
			agentFailure(reqid, a.Name(), "manager", "script error"),
			agentFailure(reqid, b.Name(), "worker-2", "interface eth9 missing"),
			agentSuccess(reqid, c.Name()))
	}, labels("fault:agent-fails"))

	spec(cc42, pairSC, []string{"set-config.agent-silent"}, "answers exactly one timeout Result when an agent never answers", func(e *Env) {
		a := e.Agent("a")
		b := e.Agent("b", on(evSetConfig, silent))
		e.WaitSaidHello(a, b)
		w := e.Watch()
		reqid := e.Reqid("sc")
		out := e.await(e.SetConfigAsync(e.Client(), e.Config(a, b), reqid))
		ExpectResults(out.results, timedOut(reqid))
		earliest, latest := e.Cfg.Timeouts.TimeoutWindow()
		Expect(out.after).To(BeNumerically(">=", earliest-5*time.Millisecond), "answered before the request timeout")
		Expect(out.after).To(BeNumerically("<=", latest), "timeout Result later than timeout + sweep")
		e.expectExactlyOne(w, api.KindSetConfigurationResponse, reqid)
	}, labels("timeout", "fault:agent-silent"))

	spec(cc42, pairSC, []string{"set-config.all-silent"}, "answers exactly one timeout Result when no agent answers", func(e *Env) {
		a := e.Agent("a", on(evSetConfig, silent))
		b := e.Agent("b", on(evSetConfig, silent))
		e.WaitSaidHello(a, b)
		w := e.Watch()
		reqid := e.Reqid("sc")
		ExpectResults(e.SetConfig(e.Client(), e.Config(a, b), reqid), timedOut(reqid))
		e.expectExactlyOne(w, api.KindSetConfigurationResponse, reqid)
	}, labels("timeout", "fault:agent-silent"))

	spec(cc42, pairSC, []string{"set-config.agent-disconnects"}, "still answers exactly once when an agent drops its connection mid-request", func(e *Env) {
		a := e.Agent("a")
		b := e.Agent("b", on(evSetConfig, fakeagent.Do(fakeagent.ActionResetBefore)), noReconnect())
		e.WaitSaidHello(a, b)
		w := e.Watch()
		reqid := e.Reqid("sc")
		res := e.SetConfig(e.Client(), e.Config(a, b), reqid)
		Expect(res).NotTo(BeEmpty())
		for _, r := range res {
			Expect(r.Reqid).To(Equal(reqid))
		}
		e.expectExactlyOne(w, api.KindSetConfigurationResponse, reqid)
	}, labels("fault:agent-disconnects"))

	spec(cc42, pairSC, []string{"set-config.pending-gate"}, "rejects a second set_configuration at once while one is pending, and never pushes it", func(e *Env) {
		a := e.Agent("a", on(evSetConfig, silent))
		e.WaitSaidHello(a)
		r1 := e.Reqid("first")
		first := e.SetConfigAsync(e.Client(), e.Config(a), r1)
		e.waitConfigured(a, 1)
		r2 := e.Reqid("second")
		start := time.Now()
		ExpectResults(e.SetConfig(e.NewClient(), e.Config(a), r2), stillPending(r2, r1))
		Expect(time.Since(start)).To(BeNumerically("<", e.Cfg.Timeouts.ControllerRequest), "the rejection must be immediate")
		ExpectResults(e.await(first).results, timedOut(r1))
		e.expectNoConfigFor(a, 1)
	}, labels("timeout"))

	spec(cc42, pairSC, []string{"set-config.pending-clears"}, "accepts the next set_configuration after a response and after a timeout", func(e *Env) {
		a := e.Agent("a", on(evSetConfig, fakeagent.Sequence(fakeagent.Do(fakeagent.ActionReply).Times(1), silent.Times(1))))
		e.WaitSaidHello(a)
		r1 := e.Reqid("ok")
		ExpectResults(e.SetConfig(e.Client(), e.Config(a), r1), agentSuccess(r1, a.Name()))
		r2 := e.Reqid("silent")
		ExpectResults(e.SetConfig(e.Client(), e.Config(a), r2), timedOut(r2))
		r3 := e.Reqid("again")
		ExpectResults(e.SetConfig(e.Client(), e.Config(a), r3), agentSuccess(r3, a.Name()))
	}, labels("timeout"))

	spec(cc42, pairSC, []string{"set-config.welcome-failure-standby"}, "sends standby and no configuration to an agent whose welcome fails", func(e *Env) {
		a := e.Agent("a", on(evWelcome, fakeagent.Fail("", "not today")))
		e.WaitSaidHello(a)
		reqid := e.Reqid("sc")
		pending := e.SetConfigAsync(e.Client(), e.Config(a), reqid)
		e.waitStandby(a)
		ExpectResults(e.await(pending).results, timedOut(reqid))
		Expect(a.Count(api.KindAgentSetConfigurationRequest)).To(Equal(0), "an agent whose welcome failed must not be configured")
	}, labels("timeout", "fault:welcome-fails"))

	spec(cc42, pairSC, []string{"set-config.welcome-foreign-standby"}, "sends standby to the instance a welcome response names when it is not configured", func(e *Env) {
		foreign := e.Name("a") + "-elsewhere" // shares a's topic prefix, so a sees the standby
		a := e.Agent("a", on(evWelcome, fakeagent.Rule{Action: fakeagent.ActionOtherInstance, Instance: foreign}))
		e.WaitSaidHello(a)
		sub := e.rawSubscriber([]string{cc42AgentTopicPrefix + "/" + foreign})
		reqid := e.Reqid("sc")
		pending := e.SetConfigAsync(e.Client(), e.Config(a), reqid)
		m := sub.waitEvent(e, "ClusterAgent::API::agent_standby_request", "")
		Expect(m.Topic).To(Equal(cc42AgentTopicPrefix+"/"+foreign), "standby goes to the topic of the instance the result names")
		ExpectResults(e.await(pending).results, timedOut(reqid))
		Expect(a.Count(api.KindAgentSetConfigurationRequest)).To(Equal(0))
	}, labels("timeout", "fault:welcome-foreign"))

	spec(cc42, pairSC, []string{"set-config.late-agent", "agents-ready.no-push-before-all"}, "configures no agent before every configured agent is welcomed, then all of them", func(e *Env) {
		a := e.Agent("a")
		e.WaitSaidHello(a)
		late := e.Name("late")
		cfg := e.Config(a)
		cfg.Instances = append(cfg.Instances, connecting(late))
		cfg.Nodes = append(cfg.Nodes, workerNode(late+"-w", late, 47100))
		reqid := e.Reqid("sc")
		pending := e.SetConfigAsync(e.Client(), cfg, reqid)
		e.WaitWelcomed(a)
		// The late agent joins while the request is pending (well before
		// the controller's timeout); the transcripts then show the order.
		l := e.Agent("late")
		out := e.await(pending)
		ExpectResults(out.results, agentSuccess(reqid, a.Name()), agentSuccess(reqid, late))
		// The late agent's welcome request is recorded on arrival, before
		// it answers; a conforming controller configures a only after
		// that answer.
		welcomes := l.Received(api.KindAgentWelcomeRequest)
		Expect(welcomes).NotTo(BeEmpty())
		configs := a.Received(api.KindAgentSetConfigurationRequest)
		Expect(configs).To(HaveLen(1))
		Expect(configs[0].Time.Before(welcomes[0].Time)).To(BeFalse(), "agent %s was configured at %s, before %s was even welcomed at %s",
			a.Name(), configs[0].Time.Format("15:04:05.000000"), late, welcomes[0].Time.Format("15:04:05.000000"))
	})

	spec(cc42, pairSC, []string{"set-config.stale-reply-ignored"}, "ignores agent replies with unknown or old reqids", func(e *Env) {
		var once sync.Once
		var a *fakeagent.Agent
		a = e.Agent("a", func(o *fakeagent.Options) {
			o.Hook = func(c fakeagent.Call) (fakeagent.Rule, bool) {
				if c.Kind == api.KindAgentSetConfigurationRequest {
					once.Do(func() {
						// Before the real answer: a reply to an id nobody issued
						// and a failure naming the client's own reqid.
						ctx := e.Ctx
						_ = a.Send(ctx, api.AgentSetConfigurationResponse{Reqid: "zcc-unknown-" + e.prefix, Result: api.Result{Reqid: "zcc-unknown", Instance: a.Name(), Success: false, Error: "bogus", Node: api.Some("n")}})
						_ = a.Send(ctx, api.AgentWelcomeResponse{Reqid: "zcc-stale-" + e.prefix, Result: api.Result{Reqid: "x", Instance: a.Name(), Success: true}})
					})
				}
				return fakeagent.Rule{}, false
			}
		})
		e.WaitSaidHello(a)
		reqid := e.Reqid("sc")
		ExpectResults(e.SetConfig(e.Client(), e.Config(a), reqid), agentSuccess(reqid, a.Name()))
		// An old child id after the request completed changes nothing either.
		_, ids := configsReceived(a)
		Expect(a.Send(e.Ctx, api.AgentSetConfigurationResponse{Reqid: ids[0], Result: api.Result{Reqid: ids[0], Instance: a.Name(), Success: false, Error: "late", Node: api.Some("n")}})).To(Succeed())
		r2 := e.Reqid("sc")
		ExpectResults(e.SetConfig(e.Client(), e.Config(a), r2), agentSuccess(r2, a.Name()))
	}, labels("fault:stale-reqid"))

	spec(cc42, pairSC, []string{"set-config.duplicate-reply"}, "answers exactly once when an agent replies twice", func(e *Env) {
		a := e.Agent("a", on(evSetConfig, fakeagent.Do(fakeagent.ActionTwice)))
		b := e.Agent("b")
		e.WaitSaidHello(a, b)
		w := e.Watch()
		reqid := e.Reqid("sc")
		ExpectResults(e.SetConfig(e.Client(), e.Config(a, b), reqid), agentSuccess(reqid, a.Name()), agentSuccess(reqid, b.Name()))
		e.expectExactlyOne(w, api.KindSetConfigurationResponse, reqid)
	}, labels("fault:duplicate-reply"))

	spec(cc42, pairSC, []string{"set-config.no-validation"}, "accepts a configuration whose node names an undeclared instance", func(e *Env) {
		a := e.Agent("a")
		e.WaitSaidHello(a)
		cfg := e.Config(a)
		cfg.Nodes = append(cfg.Nodes, workerNode(e.Name("orphan-w"), e.Name("undeclared"), 47200))
		reqid := e.Reqid("sc")
		ExpectResults(e.SetConfig(e.Client(), cfg, reqid), agentSuccess(reqid, a.Name()))
		cfgs, _ := configsReceived(a)
		Expect(cfgs).To(HaveLen(1))
		Expect(cfgs[0].Equal(cfg)).To(BeTrue(), "the agent got the configuration unchanged")
	})

	spec(cc42, pairSC, []string{"set-config.listening-agent"}, "dials an agent whose instance has a listen port and configures it", func(e *Env) {
		a := e.Agent("a", listening())
		inst := a.Instance()
		Expect(inst.ListenPort.Set).To(BeTrue())
		reqid := e.Reqid("sc")
		cfg := e.Config(a)
		ExpectResults(e.SetConfig(e.Client(), cfg, reqid), agentSuccess(reqid, a.Name()))
		expectInstances(e.getInstances(), inst)
	})

	// --- agents ready and hello (§5.2–§5.5) ---

	spec(cc42, pairSC, []string{"agents-ready.event"}, "raises notify_agents_ready exactly when the ready set equals the configured set", func(e *Env) {
		obs := e.Ctrl.(Observable).AgentsReady()
		a := e.Agent("a")
		e.WaitSaidHello(a)
		late := e.Name("late")
		cfg := e.Config(a)
		cfg.Instances = append(cfg.Instances, connecting(late))
		reqid := e.Reqid("sc")
		pending := e.SetConfigAsync(e.Client(), cfg, reqid)
		e.WaitWelcomed(a)
		Consistently(obs, e.Cfg.Timeouts.Consistency).ShouldNot(Receive(), "notify_agents_ready before every configured agent is ready")
		l := e.Agent("late")
		var ev api.NotifyAgentsReady
		Eventually(obs, e.Cfg.Timeouts.ResponseWait).Should(Receive(&ev), "no notify_agents_ready after the last agent was welcomed")
		got := append([]string(nil), ev.Instances...)
		sort.Strings(got)
		want := []string{a.Name(), l.Name()}
		sort.Strings(want)
		Expect(got).To(Equal(want))
		ExpectResults(e.await(pending).results, agentSuccess(reqid, a.Name()), agentSuccess(reqid, l.Name()))
		Consistently(obs, e.Cfg.Timeouts.Consistency).ShouldNot(Receive(), "notify_agents_ready fired again")
	}, observer())

	spec(cc42, pairSC, []string{"hello.welcome-when-configured"}, "welcomes a configured instance when its hello arrives", func(e *Env) {
		name := e.Name("a")
		reqid := e.Reqid("sc")
		cfg := api.Configuration{ID: e.Reqid("cfg"), Instances: []api.Instance{connecting(name)}, Nodes: []api.Node{workerNode(name+"-w", name, 47001)}}
		pending := e.SetConfigAsync(e.Client(), cfg, reqid)
		a := e.Agent("a")
		ctx, cancel := e.responseCtx()
		defer cancel()
		_, err := a.Transcript().WaitReceived(ctx, api.KindAgentWelcomeRequest)
		Expect(err).NotTo(HaveOccurred(), "no agent_welcome_request after the hello of a configured instance")
		ExpectResults(e.await(pending).results, agentSuccess(reqid, a.Name()))
	})

	spec(cc42, pairSC, []string{"hello.unconfigured-known"}, "remembers an unconfigured agent's hello and welcomes it once a configuration names it", func(e *Env) {
		a := e.Agent("a")
		e.WaitSaidHello(a)
		ctx, cancel := e.within(e.Cfg.Timeouts.Consistency)
		_, _ = a.Transcript().WaitReceived(ctx, api.KindAgentWelcomeRequest)
		cancel()
		Expect(a.Count(api.KindAgentWelcomeRequest)).To(Equal(0), "an unconfigured instance must not be welcomed")
		reqid := e.Reqid("sc")
		ExpectResults(e.SetConfig(e.Client(), e.Config(a), reqid), agentSuccess(reqid, a.Name()))
		Expect(a.Sent(api.KindNotifyAgentHello)).To(HaveLen(1), "welcomed without a second hello")
	})

	spec(cc42, pairSC, []string{"hello.wrong-version"}, "never welcomes an agent with another api_version, and drops it if configured", func(e *Env) {
		v2 := e.Agent("v2", apiVersion(2))
		e.WaitSaidHello(v2)
		reqid := e.Reqid("sc")
		ExpectResults(e.SetConfig(e.Client(), e.Config(v2), reqid), timedOut(reqid))
		Expect(v2.Count(api.KindAgentWelcomeRequest)).To(Equal(0), "an agent announcing api_version 2 was welcomed")
		Expect(v2.Count(api.KindAgentSetConfigurationRequest)).To(Equal(0))

		a := e.Agent("a")
		e.WaitSaidHello(a)
		r2 := e.Reqid("sc")
		ExpectResults(e.SetConfig(e.Client(), e.Config(a), r2), agentSuccess(r2, a.Name()))
		Expect(a.SendHelloVersion(e.Ctx, 7)).To(Succeed())
		e.waitStandby(a)
		expectInstances(e.getInstances())
	}, labels("timeout", "fault:api-version"))
}

// expectExactlyOne checks that exactly one response of kind with reqid
// reaches a watching client, watching for the consistency window after it.
func (e *Env) expectExactlyOne(w *Watcher, kind api.EventKind, reqid string) {
	GinkgoHelper()
	ctx, cancel := e.responseCtx()
	_, err := w.WaitMatching(ctx, kind, reqid, 1)
	cancel()
	Expect(err).NotTo(HaveOccurred(), "no response %s seen by a watching client", reqid)
	ctx, cancel = e.within(e.Cfg.Timeouts.Consistency)
	defer cancel()
	_, _ = w.WaitMatching(ctx, kind, reqid, 2)
	Expect(w.Matching(kind, reqid)).To(HaveLen(1), "want exactly one response for %s", reqid)
}
