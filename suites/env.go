package suites

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive
	. "github.com/onsi/gomega"    //nolint:revive

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
	"github.com/zcc-harness/zcc/client"
	"github.com/zcc-harness/zcc/fakeagent"
)

// Env is one spec's world: its controller, its unique names, its clients
// and fake agents. Everything it starts is stopped by DeferCleanup, and on
// failure the fake agents' transcripts and the controller's log are
// attached to the spec report.
type Env struct {
	Ctx     context.Context
	Cfg     Config
	Profile *api.Profile
	Ctrl    Controller
	target  Target
	prefix  string

	mu      sync.Mutex
	client  *client.Client
	agents  []*fakeagent.Agent
	watches []*Watcher
	nreq    int
}

func newEnv(ctx SpecContext, r *registration, cfg Config, target Target, d specDef) *Env {
	GinkgoHelper()
	p, err := api.Lookup(cfg.Profile)
	if err != nil {
		infraError("profile", err)
	}
	e := &Env{
		Ctx:     ctx,
		Cfg:     cfg,
		Profile: p,
		target:  target,
		prefix:  fmt.Sprintf("z%d%ss%04d", GinkgoParallelProcess(), shardTag(), r.seq.Add(1)),
	}
	ctrl, err := target.Start(ctx, SpecInfo{Text: d.text, Prefix: e.prefix})
	if err != nil {
		infraError("start a controller on the "+target.Name()+" target", err)
	}
	e.Ctrl = ctrl
	DeferCleanup(func() {
		if err := ctrl.Release(); err != nil {
			fmt.Fprintf(GinkgoWriter, "release controller: %v\n", err)
		}
	})
	// Registered after the release, so it runs before it (LIFO): the
	// controller's log is complete and the agents' transcripts are final
	// by the time it reads them, since agents stop in their own cleanups
	// registered later still.
	DeferCleanup(e.attachOnFailure)
	return e
}

// shardTag keeps names unique across the processes of a sharded run.
func shardTag() string {
	if shard.total > 1 {
		return fmt.Sprintf("h%d", shard.index)
	}
	return ""
}

// attachOnFailure adds transcripts and the controller log to a failed spec.
func (e *Env) attachOnFailure() {
	if !CurrentSpecReport().Failed() {
		return
	}
	e.mu.Lock()
	agents := append([]*fakeagent.Agent(nil), e.agents...)
	e.mu.Unlock()
	for _, a := range agents {
		var b bytes.Buffer
		if err := a.Transcript().WriteJSONL(&b); err != nil {
			fmt.Fprintf(&b, "(transcript incomplete: %v)\n", err)
		}
		AddReportEntry("transcript "+a.Name(), b.String(), ReportEntryVisibilityFailureOrVerbose)
	}
	if logs := e.Ctrl.Logs(); logs != "" {
		AddReportEntry("controller log", logs, ReportEntryVisibilityFailureOrVerbose)
	}
}

// Name returns a name unique to this spec (and process): prefix-short.
// Spec code uses distinct single words ("a", "b", "late") so that no name
// is a prefix of another (Broker's topic prefixes would mix them up).
func (e *Env) Name(short string) string { return e.prefix + "-" + short }

// Reqid returns a fresh reqid that no other spec or run uses.
func (e *Env) Reqid(short string) string {
	e.mu.Lock()
	e.nreq++
	n := e.nreq
	e.mu.Unlock()
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	return fmt.Sprintf("%s-%s%d-%s", e.prefix, short, n, hex.EncodeToString(rnd[:]))
}

// within returns a context bounded by d, derived from the spec's.
func (e *Env) within(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(e.Ctx, d)
}

// responseCtx bounds a wait for a response that must come, including one
// that only comes when the controller's request times out.
func (e *Env) responseCtx() (context.Context, context.CancelFunc) {
	return e.within(e.Cfg.Timeouts.ResponseWait)
}

// Client returns the spec's default client, dialing it on first use.
func (e *Env) Client() *client.Client {
	GinkgoHelper()
	e.mu.Lock()
	c := e.client
	e.mu.Unlock()
	if c != nil {
		return c
	}
	c = e.NewClient()
	e.mu.Lock()
	e.client = c
	e.mu.Unlock()
	return c
}

// NewClient dials another client to the controller.
func (e *Env) NewClient() *client.Client {
	GinkgoHelper()
	return e.dialClient(client.Options{})
}

func (e *Env) dialClient(opts client.Options) *client.Client {
	GinkgoHelper()
	opts.Profile = e.Profile
	opts.RequestTimeout = e.Cfg.Timeouts.ResponseWait
	ctx, cancel := e.within(e.Cfg.Timeouts.Connect)
	defer cancel()
	c, err := client.Dial(ctx, e.Ctrl.URL(), opts)
	if err != nil {
		infraError("connect to the controller at "+e.Ctrl.URL(), err)
	}
	DeferCleanup(c.Close)
	e.recordIdentity(c.Ack())
	return c
}

// recordIdentity puts the target's identity (from the ack) into the spec
// report, where the suite report picks it up.
func (e *Env) recordIdentity(ack broker.Frame) {
	id := TargetIdentity{
		Mode:     e.target.Name(),
		Quirks:   e.Cfg.Target.Quirks,
		Endpoint: ack.Endpoint,
		Version:  ack.Version,
		Image:    e.Cfg.Target.Container.Image,
	}
	if e.target.Name() == TargetExternal {
		id.URL = e.Ctrl.URL()
	}
	b, _ := json.Marshal(id)
	AddReportEntry(entryTarget, string(b), ReportEntryVisibilityNever)
}

// Agent starts a fake agent named Name(short) that dials the controller
// (or listens, if a modifier says so) and returns it once started. It is
// stopped when the spec ends.
func (e *Env) Agent(short string, mods ...func(*fakeagent.Options)) *fakeagent.Agent {
	GinkgoHelper()
	opts := fakeagent.Options{
		Name:       e.Name(short),
		Profile:    e.Profile,
		Controller: e.Ctrl.URL(),
		Seed:       uint64(e.Cfg.Seed),
		Backoff:    fakeagent.Backoff{Initial: fakeagent.Duration(20 * time.Millisecond), Max: fakeagent.Duration(500 * time.Millisecond)},
	}
	for _, m := range mods {
		m(&opts)
	}
	a, err := fakeagent.New(opts)
	if err != nil {
		infraError("create fake agent "+opts.Name, err)
	}
	if err := a.Start(e.Ctx); err != nil {
		infraError("start fake agent "+opts.Name, err)
	}
	e.mu.Lock()
	e.agents = append(e.agents, a)
	e.mu.Unlock()
	DeferCleanup(a.Stop)
	return a
}

// Agent option modifiers.

// behaviour sets the agent's rule for one request (short event name).
func on(event string, r fakeagent.Rule) func(*fakeagent.Options) {
	return func(o *fakeagent.Options) { o.Behaviour = o.Behaviour.With(event, r) }
}

func apiVersion(v uint64) func(*fakeagent.Options) {
	return func(o *fakeagent.Options) { o.APIVersion = fakeagent.Uint64(v) }
}

func listening() func(*fakeagent.Options) {
	return func(o *fakeagent.Options) { o.Connect = fakeagent.ConnectListen }
}

func noReconnect() func(*fakeagent.Options) {
	return func(o *fakeagent.Options) { o.NoReconnect = true }
}

// WaitConnected waits until every agent is connected.
func (e *Env) WaitConnected(agents ...*fakeagent.Agent) {
	GinkgoHelper()
	ctx, cancel := e.within(e.Cfg.Timeouts.Hello)
	defer cancel()
	for _, a := range agents {
		if err := a.WaitConnected(ctx); err != nil {
			st := a.Status()
			infraError("fake agent "+a.Name()+" did not connect", fmt.Errorf("%w (last error: %s)", err, st.LastError))
		}
	}
}

// WaitWelcomed waits until every agent has been welcomed (and answered).
func (e *Env) WaitWelcomed(agents ...*fakeagent.Agent) {
	GinkgoHelper()
	ctx, cancel := e.within(e.Cfg.Timeouts.Hello)
	defer cancel()
	for _, a := range agents {
		Expect(a.WaitWelcomed(ctx)).To(Succeed(), "agent %s was not welcomed within %s", a.Name(), e.Cfg.Timeouts.Hello)
	}
}

// WaitSaidHello waits until each agent's hello has gone out on a live
// connection (the controller then knows it).
func (e *Env) WaitSaidHello(agents ...*fakeagent.Agent) {
	GinkgoHelper()
	ctx, cancel := e.within(e.Cfg.Timeouts.Hello)
	defer cancel()
	for _, a := range agents {
		_, err := a.WaitFor(ctx, func(en fakeagent.Entry) bool {
			return en.Dir == fakeagent.Out && en.Kind == api.KindNotifyAgentHello && en.Err == ""
		})
		if err != nil {
			infraError("fake agent "+a.Name()+" never said hello", err)
		}
	}
}

// Instances returns the agents as configuration instances.
func Instances(agents ...*fakeagent.Agent) []api.Instance {
	out := make([]api.Instance, len(agents))
	for i, a := range agents {
		out[i] = a.Instance()
	}
	return out
}

// connecting returns a configuration instance for an agent that dials.
func connecting(name string) api.Instance {
	return api.Instance{Name: name, Host: netip.IPv4Unspecified()}
}

// Config returns a configuration naming the agents, with one worker node
// per agent (named <agent>-w, on the agent's instance).
func (e *Env) Config(agents ...*fakeagent.Agent) api.Configuration {
	cfg := api.Configuration{ID: e.Reqid("cfg"), Instances: Instances(agents...)}
	for i, a := range agents {
		cfg.Nodes = append(cfg.Nodes, workerNode(a.Name()+"-w", a.Name(), uint16(47000+i)))
	}
	return cfg
}

func workerNode(name, instance string, port uint16) api.Node {
	return api.Node{
		Name:     name,
		Instance: instance,
		Port:     api.Some(broker.TCPPort(port)),
		Role:     api.ClusterRoleWorker,
		State:    api.StateRunning,
	}
}

// SetConfig sends set_configuration_request with reqid and waits for its
// response (which may be the controller's timeout).
func (e *Env) SetConfig(c *client.Client, cfg api.Configuration, reqid string) []api.Result {
	GinkgoHelper()
	ctx, cancel := e.responseCtx()
	defer cancel()
	res, err := c.SetConfiguration(ctx, cfg, client.WithReqid(reqid))
	Expect(err).NotTo(HaveOccurred(), "set_configuration_request %s: no response within %s", reqid, e.Cfg.Timeouts.ResponseWait)
	return res
}

// SetConfigAsync sends set_configuration_request and returns a channel
// that yields its outcome.
func (e *Env) SetConfigAsync(c *client.Client, cfg api.Configuration, reqid string) <-chan configOutcome {
	ch := make(chan configOutcome, 1)
	sent := time.Now()
	go func() {
		defer GinkgoRecover()
		ctx, cancel := e.responseCtx()
		defer cancel()
		res, err := c.SetConfiguration(ctx, cfg, client.WithReqid(reqid))
		ch <- configOutcome{results: res, err: err, after: time.Since(sent)}
	}()
	return ch
}

type configOutcome struct {
	results []api.Result
	err     error
	after   time.Duration
}

// await receives an async outcome within the response wait.
func (e *Env) await(ch <-chan configOutcome) configOutcome {
	GinkgoHelper()
	select {
	case o := <-ch:
		Expect(o.err).NotTo(HaveOccurred(), "no response to set_configuration_request")
		return o
	case <-e.Ctx.Done():
		Fail("spec ended while waiting for a response")
	}
	return configOutcome{}
}

// withReqid makes a client request use reqid.
var withReqid = client.WithReqid

// ExpectNoReply checks that err is a "no response" error.
func ExpectNoReply(err error, what string) {
	GinkgoHelper()
	Expect(err).To(HaveOccurred(), "%s: the controller answered, but must not", what)
	Expect(errors.Is(err, client.ErrNoResponse)).To(BeTrue(), "%s: want no response, got %v", what, err)
}

// --- expected values, stated from the protocol notes ------------------------

// timedOut is the controller's timeout Result (clustercontroller-v1.md
// §4.6, §5.10): Result(R, "", F, nil, "request timed out", nil).
func timedOut(reqid string) api.Result {
	return api.Result{Reqid: reqid, Instance: "", Success: false, Error: "request timed out"}
}

// stillPending is the pending gate's Result (§5.6 step 3).
func stillPending(reqid, pending string) api.Result {
	return api.Result{Reqid: reqid, Success: false, Error: "request " + pending + " still pending"}
}

// agentSuccess is one agent's aggregated success Result (§5.7 step 6).
func agentSuccess(reqid, instance string) api.Result {
	return api.Result{Reqid: reqid, Instance: instance, Success: true}
}

// agentFailure is one agent's aggregated failure Result (§5.7 step 6):
// error "node <n> failed: <e>".
func agentFailure(reqid, instance, node, errText string) api.Result {
	return api.Result{Reqid: reqid, Instance: instance, Success: false, Error: "node " + node + " failed: " + errText}
}

// resultText renders every field of a Result for failure messages.
func resultText(r api.Result) string {
	data := "nil"
	if !r.Data.IsNone() {
		data = r.Data.String()
	}
	return fmt.Sprintf("Result(reqid=%q, instance=%q, success=%v, data=%s, error=%q, node=%s)",
		r.Reqid, r.Instance, r.Success, data, r.Error, optText(r.Node))
}

func optText(o api.Opt[string]) string {
	if v, ok := o.Get(); ok {
		return fmt.Sprintf("%q", v)
	}
	return "nil"
}

func resultsText(rs []api.Result) string {
	if len(rs) == 0 {
		return "[] (no Results)"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = resultText(r)
	}
	return "[\n  " + strings.Join(parts, ",\n  ") + "\n]"
}

// ExpectResults checks that got holds exactly want, in any order (the
// controller sends one Result per agent in its table order, which the
// notes leave unspecified).
func ExpectResults(got []api.Result, want ...api.Result) {
	GinkgoHelper()
	sortResults := func(rs []api.Result) []api.Result {
		out := append([]api.Result(nil), rs...)
		sort.SliceStable(out, func(i, j int) bool { return resultText(out[i]) < resultText(out[j]) })
		return out
	}
	g, w := sortResults(got), sortResults(want)
	ok := len(g) == len(w)
	for i := 0; ok && i < len(g); i++ {
		ok = g[i].Equal(w[i])
	}
	Expect(ok).To(BeTrue(), "Results differ:\ngot  %s\nwant %s", resultsText(got), resultsText(want))
}

// ExpectResult checks one Result.
func ExpectResult(got, want api.Result) {
	GinkgoHelper()
	Expect(got.Equal(want)).To(BeTrue(), "Result differs:\ngot  %s\nwant %s", resultText(got), resultText(want))
}

// Watcher records every message a client sees on the controller topic, so
// specs can count responses ("exactly one") and see other clients'
// traffic.
type Watcher struct {
	mu     sync.Mutex
	msgs   []client.Received
	notify chan struct{}
	client *client.Client
}

// Watch dials a client that only observes.
func (e *Env) Watch() *Watcher {
	GinkgoHelper()
	w := &Watcher{notify: make(chan struct{})}
	w.client = e.dialClient(client.Options{Observe: w.observe})
	e.mu.Lock()
	e.watches = append(e.watches, w)
	e.mu.Unlock()
	return w
}

func (w *Watcher) observe(r client.Received) {
	w.mu.Lock()
	w.msgs = append(w.msgs, r)
	close(w.notify)
	w.notify = make(chan struct{})
	w.mu.Unlock()
}

// Matching returns the messages of kind carrying reqid.
func (w *Watcher) Matching(kind api.EventKind, reqid string) []client.Received {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []client.Received
	for _, m := range w.msgs {
		if m.Msg == nil || m.Msg.Kind() != kind {
			continue
		}
		if r, _ := api.ReqidOf(m.Msg); r == reqid {
			out = append(out, m)
		}
	}
	return out
}

// All returns every message seen so far.
func (w *Watcher) All() []client.Received {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]client.Received(nil), w.msgs...)
}

// WaitMatching waits until at least n messages of kind with reqid arrived.
func (w *Watcher) WaitMatching(ctx context.Context, kind api.EventKind, reqid string, n int) ([]client.Received, error) {
	for {
		w.mu.Lock()
		ch := w.notify
		w.mu.Unlock()
		if got := w.Matching(kind, reqid); len(got) >= n {
			return got, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return w.Matching(kind, reqid), ctx.Err()
		}
	}
}
