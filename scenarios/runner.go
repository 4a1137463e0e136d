package scenarios

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // the runner is spec code

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
	"github.com/zcc-harness/zcc/client"
	"github.com/zcc-harness/zcc/fakeagent"
	"github.com/zcc-harness/zcc/suites"
)

// run is one execution of a scenario inside a spec.
type run struct {
	s      *Scenario
	e      *suites.Env
	timing Timing
	step   int

	agents     map[string]*fakeagent.Agent // created so far, by short name
	behaviours map[string]Behaviour        // each agent's current behaviour
	clients    map[string]*client.Client
	watch      *suites.Watcher
	reqs       map[string]*sentRequest
	taken      map[string]int // responses consumed per kind and reqid
}

// sentRequest is a request a send step published.
type sentRequest struct {
	label     string
	request   string
	kind      api.EventKind
	respKind  api.EventKind
	reqid     string
	at        time.Time
	config    api.Configuration
	instances []string // set_configuration: short instance names
	deployed  bool     // get_configuration: of the deployed configuration
}

// Run executes the scenario as the body of a suite spec.
func (s *Scenario) Run(e *suites.Env) {
	if s.Quirks != QuirksAny && string(s.Quirks) != e.Cfg.Target.Quirks {
		Skip(fmt.Sprintf("scenario expects the %s quirk mode; the target declares %s", s.Quirks, e.Cfg.Target.Quirks))
	}
	if !s.Timeouts.ControllerAtLeast.IsZero() {
		e.EnsureControllerTimeout(s.Timeouts.ControllerAtLeast.Resolve(nil))
	}
	timing := TimingOf(e.Cfg.Timeouts)
	if e.Cfg.Profile == api.Mgmt.Name {
		// A Management controller's timeout may come later (0.6× to 1.5×
		// of timeout + sweep on a real Zeek 8.1).
		_, timing[TimingTimeoutLatest] = e.Cfg.Timeouts.MgmtTimeoutWindow()
	}
	r := &run{
		s: s, e: e, timing: timing,
		agents: map[string]*fakeagent.Agent{}, behaviours: map[string]Behaviour{},
		clients: map[string]*client.Client{}, reqs: map[string]*sentRequest{}, taken: map[string]int{},
	}
	for name, spec := range s.members {
		r.behaviours[name] = spec.Behaviour
	}
	// The watcher sees every response on the controller topic from the
	// start, so steps can count responses and wait for them after the fact.
	r.watch = e.Watch()
	var started []string
	for _, name := range s.order {
		if s.members[name].Late {
			continue
		}
		r.create(name)
		started = append(started, name)
	}
	r.waitHello(started, make([]int, len(started)))
	for i, st := range s.Steps {
		r.step = i
		r.do(st)
	}
}

// where names the current step for failure messages.
func (r *run) where() string {
	return fmt.Sprintf("steps[%d] (%s)", r.step, r.s.Where(r.step))
}

func (r *run) failf(format string, args ...any) {
	Fail(r.where()+": "+fmt.Sprintf(format, args...), 1)
}

func (r *run) harness(what string, err error) {
	suites.HarnessError(r.where()+": "+what, err)
}

func (r *run) resolve(d Duration, def Duration) time.Duration {
	return d.Or(def).Resolve(r.timing)
}

func (r *run) responseBound() Duration {
	return r.s.Timeouts.Response.Or(MustDuration(TimingResponseWait))
}

func (r *run) quiet() time.Duration {
	return r.s.Timeouts.Quiet.Or(MustDuration(TimingConsistency)).Resolve(r.timing)
}

// create starts the agent called name with its declared options.
func (r *run) create(name string) *fakeagent.Agent {
	spec := r.s.members[name]
	a := r.e.Agent(name, func(o *fakeagent.Options) {
		if spec.Connect != "" {
			o.Connect = spec.Connect
		}
		if spec.APIVersion != nil {
			o.APIVersion = fakeagent.Uint64(*spec.APIVersion)
		}
		if spec.Hello != "" {
			o.Hello = spec.Hello
		}
		if !spec.HelloInterval.IsZero() {
			o.HelloInterval = fakeagent.Duration(spec.HelloInterval.Resolve(r.timing))
		}
		if !spec.Backoff.Initial.IsZero() {
			o.Backoff.Initial = fakeagent.Duration(spec.Backoff.Initial.Resolve(r.timing))
		}
		if !spec.Backoff.Max.IsZero() {
			o.Backoff.Max = fakeagent.Duration(spec.Backoff.Max.Resolve(r.timing))
		}
		if spec.Seed != nil {
			o.Seed = *spec.Seed
		}
		o.NoReconnect = spec.NoReconnect
		o.ExactTopic = spec.ExactTopic
		o.Behaviour = r.behaviours[name].toFake(r.timing, r.e.Name)
	})
	r.agents[name] = a
	return a
}

// waitHello waits until each named agent that dials and says hello has
// sent a hello after its transcript entry seqs[i].
func (r *run) waitHello(names []string, seqs []int) {
	ctx, cancel := context.WithTimeout(r.e.Ctx, r.resolve(r.s.Timeouts.Hello, MustDuration(TimingHello)))
	defer cancel()
	for i, name := range names {
		spec, a := r.s.members[name], r.agents[name]
		if spec.Connect == fakeagent.ConnectListen || spec.Hello == fakeagent.HelloNone {
			continue
		}
		after := seqs[i]
		_, err := a.WaitFor(ctx, func(en fakeagent.Entry) bool {
			return en.Seq > after && en.Dir == fakeagent.Out && en.Kind == api.KindNotifyAgentHello && en.Err == ""
		})
		if err != nil {
			r.harness("fake agent "+a.Name()+" never said hello", fmt.Errorf("%w (last error: %s)", err, a.Status().LastError))
		}
	}
}

func (r *run) client(name string) *client.Client {
	if name == "" || name == "main" {
		return r.e.Client()
	}
	if c, ok := r.clients[name]; ok {
		return c
	}
	c := r.e.NewClient()
	r.clients[name] = c
	return c
}

func (r *run) do(st Step) {
	switch {
	case st.Send != nil:
		r.send(st.Send)
	case st.ExpectResponse != nil:
		r.expectResponse(st.ExpectResponse.ExpectResponse, &st.ExpectResponse.ResponseExpect)
	case st.ExpectNoResponse != nil:
		r.expectNoResponse(st.ExpectNoResponse)
	case st.ExpectReceived != nil:
		r.agentEvent(st.ExpectReceived.ExpectReceived, &st.ExpectReceived.AgentEventExpect, fakeagent.In, agentReceives)
	case st.ExpectSent != nil:
		r.agentEvent(st.ExpectSent.ExpectSent, &st.ExpectSent.AgentEventExpect, fakeagent.Out, agentSends)
	case st.Kill != nil:
		for _, m := range r.s.groups[st.Kill.Kill] {
			r.agents[m].Kill()
		}
	case st.Stop != nil:
		for _, m := range r.s.groups[st.Stop.Stop] {
			r.agents[m].Stop()
		}
	case st.Restart != nil:
		r.restart(st.Restart.Restart, true)
	case st.Start != nil:
		r.restart(st.Start.Start, false)
	case st.Pause != nil:
		t := time.NewTimer(st.Pause.Pause.Resolve(r.timing))
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.e.Ctx.Done():
			r.failf("the spec ended during the pause")
		}
	case st.SayHello != nil:
		for _, m := range r.s.groups[st.SayHello.SayHello] {
			a := r.agents[m]
			var err error
			if v := st.SayHello.APIVersion; v != nil {
				err = a.SendHelloVersion(r.e.Ctx, *v)
			} else {
				err = a.SendHello(r.e.Ctx)
			}
			if err != nil {
				r.harness("agent "+a.Name()+" could not say hello", err)
			}
		}
	case st.SetBehaviour != nil:
		for _, m := range r.s.groups[st.SetBehaviour.SetBehaviour] {
			r.behaviours[m] = st.SetBehaviour.Behaviour
			if a := r.agents[m]; a != nil {
				if err := a.SetBehaviour(st.SetBehaviour.Behaviour.toFake(r.timing, r.e.Name)); err != nil {
					r.harness("set the behaviour of "+a.Name(), err)
				}
			}
		}
	}
}

// restart starts agents again (restart: stopping them first), or for the
// first time if they are late, and waits for their new hellos.
func (r *run) restart(ref string, stopFirst bool) {
	names := r.s.groups[ref]
	var seqs []int
	for _, m := range names {
		a := r.agents[m]
		if a == nil {
			r.create(m)
			seqs = append(seqs, 0)
			continue
		}
		seq := a.Transcript().Len()
		var err error
		if stopFirst {
			err = a.Restart(r.e.Ctx)
		} else {
			err = a.Start(r.e.Ctx)
		}
		if err != nil {
			r.harness("restart fake agent "+a.Name(), err)
		}
		seqs = append(seqs, seq)
	}
	r.waitHello(names, seqs)
}

// --- requests and responses ---------------------------------------------

func (r *run) send(st *SendStep) {
	label := st.As
	if label == "" {
		label = st.Send
	}
	reqid := r.e.Reqid(label)
	if st.ReqidOf != "" {
		reqid = r.reqs[st.ReqidOf].reqid
	}
	req := &sentRequest{label: label, request: st.Send, reqid: reqid}
	var msg api.Message
	switch st.Send {
	case "get_instances":
		msg = api.GetInstancesRequest{Reqid: reqid}
	case "set_configuration":
		req.config, req.instances = r.configuration(st)
		msg = api.SetConfigurationRequest{Reqid: reqid, Config: req.config}
	case "test_timeout":
		msg = api.TestTimeoutRequest{Reqid: reqid, WithState: st.WithState}
	case "stage_configuration":
		req.config, req.instances = r.configuration(st)
		msg = api.StageConfigurationRequest{Reqid: reqid, Config: req.config}
	case "get_configuration":
		req.deployed = st.Deployed
		msg = api.GetConfigurationRequest{Reqid: reqid, Deployed: st.Deployed}
	case "deploy":
		msg = api.DeployRequest{Reqid: reqid}
	case "get_nodes":
		msg = api.GetNodesRequest{Reqid: reqid}
	case "get_id_value":
		msg = api.GetIDValueRequest{Reqid: reqid, ID: st.ID, Nodes: st.Nodes}
	case "restart":
		msg = api.RestartRequest{Reqid: reqid, Nodes: st.Nodes}
	default:
		r.failf("cannot send %q", st.Send)
	}
	req.kind = msg.Kind()
	req.respKind, _ = client.ResponseKind(req.kind)
	c := r.client(st.Client)
	req.at = time.Now()
	if err := c.Publish(r.e.Ctx, msg); err != nil {
		r.harness("send "+st.Send+"_request", err)
	}
	r.reqs[label] = req
	if st.Expect != nil {
		r.expectResponse(label, st.Expect)
	}
}

// instance builds the configuration instance for a name: an agent that
// listens is configured where it listens; anything else connects, unless
// the scenario gives host or port.
func (r *run) instance(short, host string, port *int) api.Instance {
	in := api.Instance{Name: r.e.Name(short), Host: netip.IPv4Unspecified()}
	if a := r.agents[short]; a != nil && r.s.members[short].Connect == fakeagent.ConnectListen {
		in = a.Instance()
	}
	if host != "" {
		in.Host = netip.MustParseAddr(host) // checked at load time
	}
	if port != nil {
		in.ListenPort = api.Some(broker.TCPPort(uint16(*port)))
	}
	return in
}

// configuration builds the configuration a send step sends, with every
// instance name mapped to this run's names.
func (r *run) configuration(st *SendStep) (api.Configuration, []string) {
	if st.Config == nil {
		ini := r.s.iniConfigs[r.step]
		cfg := api.Configuration{ID: r.e.Reqid("cfg")}
		var names []string
		for _, in := range ini.Instances {
			mapped := in
			mapped.Name = r.e.Name(in.Name)
			if a := r.agents[in.Name]; a != nil && r.s.members[in.Name].Connect == fakeagent.ConnectListen {
				mapped = a.Instance()
			}
			cfg.Instances = append(cfg.Instances, mapped)
			names = append(names, in.Name)
		}
		for _, n := range ini.Nodes {
			n.Instance = r.e.Name(n.Instance)
			cfg.Nodes = append(cfg.Nodes, n)
		}
		return cfg, names
	}
	spec := st.Config
	cfg := api.Configuration{ID: spec.ID}
	if cfg.ID == "" {
		cfg.ID = r.e.Reqid("cfg")
	}
	var names []string
	for _, ref := range spec.Instances {
		if ref.bare {
			for _, m := range r.s.groups[ref.Name] {
				cfg.Instances = append(cfg.Instances, r.instance(m, "", nil))
				names = append(names, m)
			}
			continue
		}
		cfg.Instances = append(cfg.Instances, r.instance(ref.Name, ref.Host, ref.Port))
		names = append(names, ref.Name)
	}
	if spec.Nodes == nil {
		for i, name := range names {
			n := api.Node{Name: name + "-worker", Instance: r.e.Name(name), Role: api.ClusterRoleWorker, State: api.StateRunning}
			if r.e.Profile == api.CC42 {
				n.Port = api.Some(broker.TCPPort(uint16(47000 + i)))
			}
			cfg.Nodes = append(cfg.Nodes, n)
		}
		return cfg, names
	}
	for _, n := range spec.Nodes {
		node := api.Node{Name: n.Name, Instance: r.e.Name(n.Instance), Role: api.ClusterRoleWorker, State: api.StateRunning, Env: n.Env}
		if n.Role != "" {
			node.Role, _ = api.ParseClusterRole(n.Role)
		}
		if n.State != "" {
			node.State, _ = api.ParseState(n.State)
		}
		if n.Port != 0 {
			node.Port = api.Some(broker.TCPPort(uint16(n.Port)))
		}
		if n.Interface != "" {
			node.Interface = api.Some(n.Interface)
		}
		if n.CPUAffinity != nil {
			node.CPUAffinity = api.Some(*n.CPUAffinity)
		}
		if n.Scripts != nil {
			node.Scripts = api.Some(n.Scripts)
		}
		if n.Options != nil {
			var opts []api.Option
			for k, v := range n.Options {
				opts = append(opts, api.Option{Name: k, Value: v})
			}
			sort.Slice(opts, func(i, j int) bool { return opts[i].Name < opts[j].Name })
			node.Options = api.Some(opts)
		}
		cfg.Nodes = append(cfg.Nodes, node)
	}
	return cfg, names
}

// resultsOf returns a response's Results and, for the responses with one
// Result (get_instances, get_configuration), its data.
func resultsOf(m api.Message) ([]api.Result, broker.Value) {
	switch v := m.(type) {
	case api.GetInstancesResponse:
		return []api.Result{v.Result}, v.Result.Data
	case api.GetConfigurationResponse:
		return []api.Result{v.Result}, v.Result.Data
	case api.SetConfigurationResponse:
		return v.Results, broker.None()
	case api.TestTimeoutResponse:
		return []api.Result{v.Result}, broker.None()
	case api.StageConfigurationResponse:
		return v.Results, broker.None()
	case api.DeployResponse:
		return v.Results, broker.None()
	case api.GetNodesResponse:
		return v.Results, broker.None()
	case api.GetIDValueResponse:
		return v.Results, broker.None()
	case api.RestartResponse:
		return v.Results, broker.None()
	}
	return nil, broker.None()
}

func (r *run) takeKey(req *sentRequest) string {
	return fmt.Sprintf("%d|%s", req.respKind, req.reqid)
}

// expectResponse waits for the next response to a request not yet taken
// by another step, and checks it.
func (r *run) expectResponse(label string, ex *ResponseExpect) {
	req := r.reqs[label]
	within := r.resolve(ex.Within, r.responseBound())
	ctx, cancel := context.WithDeadline(r.e.Ctx, req.at.Add(within))
	n := r.taken[r.takeKey(req)]
	got, _ := r.watch.WaitMatching(ctx, req.respKind, req.reqid, n+1)
	cancel()
	what := fmt.Sprintf("%s to %s (reqid %s)", r.e.Profile.ShortName(req.respKind), label, req.reqid)
	if len(got) <= n {
		if r.e.Ctx.Err() != nil {
			r.failf("the spec ended while waiting for the %s", what)
		}
		r.failf("no %s within %s (%s)", what, ex.Within.Or(r.responseBound()), within)
	}
	r.taken[r.takeKey(req)] = n + 1
	resp := got[n]
	after := resp.At.Sub(req.at)
	if after > within {
		r.failf("the %s arrived after %s, later than within %s (%s)", what, after.Round(time.Millisecond), ex.Within.Or(r.responseBound()), within)
	}
	if !ex.NotBefore.IsZero() {
		if nb := ex.NotBefore.Resolve(r.timing); after < nb {
			r.failf("the %s arrived after %s, earlier than not_before %s (%s)", what, after.Round(time.Millisecond), ex.NotBefore, nb)
		}
	}
	results, data := resultsOf(resp.Msg)
	r.checkResults(what, req, results, data, ex)
	if ex.Responses > 0 {
		ctx, cancel := context.WithTimeout(r.e.Ctx, r.quiet())
		_, _ = r.watch.WaitMatching(ctx, req.respKind, req.reqid, ex.Responses+1)
		cancel()
		if seen := r.watch.Matching(req.respKind, req.reqid); len(seen) != ex.Responses {
			r.failf("%d responses with reqid %s reached a watching client, want %d", len(seen), req.reqid, ex.Responses)
		}
	}
}

// expand replaces placeholders with this run's values.
func (r *run) expand(text string, req *sentRequest, quote bool) string {
	return placeholderRE.ReplaceAllStringFunc(text, func(ph string) string {
		kind, arg, _ := strings.Cut(strings.Trim(ph, "{}"), ":")
		var v string
		switch kind {
		case "reqid":
			v = req.reqid
			if arg != "" {
				v = r.reqs[arg].reqid
			}
		case "agent":
			v = r.e.Name(arg)
		case "config":
			v = req.config.ID
			if arg != req.label {
				v = r.reqs[arg].config.ID
			}
		}
		if quote {
			return regexp.QuoteMeta(v)
		}
		return v
	})
}

// errorOK checks an error text against error / error_matches.
func (r *run) errorOK(got string, exact *string, pattern string, success *bool, req *sentRequest) bool {
	switch {
	case exact != nil:
		return got == r.expand(*exact, req, false)
	case pattern != "":
		return regexp.MustCompile(r.expand(pattern, req, true)).MatchString(got)
	case success != nil && *success:
		return got == ""
	}
	return true
}

func (r *run) checkResults(what string, req *sentRequest, results []api.Result, data broker.Value, ex *ResponseExpect) {
	got := suites.ResultsString(results)
	if r.e.Profile == api.CC42 {
		for _, res := range results {
			if res.Reqid != req.reqid {
				r.failf("every Result of the %s must carry its reqid, got %s", what, got)
			}
		}
	}
	if ex.TimedOut {
		want := api.Result{Reqid: req.reqid, Success: false, Error: "request timed out"}
		if len(results) != 1 || !results[0].Equal(want) {
			r.failf("the %s must be the controller's timeout, exactly %s; got %s", what, suites.ResultString(want), got)
		}
		return
	}
	if ex.Count != nil && len(results) != *ex.Count {
		r.failf("the %s has %d Results, want %d: %s", what, len(results), *ex.Count, got)
	}
	for _, res := range results {
		if ex.Success != nil && res.Success != *ex.Success {
			r.failf("every Result of the %s must have success %v: %s", what, *ex.Success, got)
		}
		if !r.errorOK(res.Error, ex.Error, ex.ErrorMatches, ex.Success, req) {
			r.failf("error text %q of the %s does not match the expectation (%s): %s", res.Error, what, describeErrorExpect(ex.Error, ex.ErrorMatches, ex.Success), got)
		}
	}
	if ex.Results != nil {
		r.matchResults(what, req, results, ex.Results, ex.InOrder)
	}
	if ex.FromAgents {
		r.fromAgents(what, req, results)
	}
	if ex.Instances != nil {
		r.checkInstances(what, data, ex.Instances)
	}
	if ex.ConfigOf != "" || ex.Ports != nil {
		r.checkConfiguration(what, req, data, ex)
	}
}

// checkConfiguration checks a get_configuration Result's configuration:
// the one a stage request sent (exactly when staged, by id, instance
// names and nodes when deployed, since the controller fills in hosts and
// ports) and the Broker ports of named nodes.
func (r *run) checkConfiguration(what string, req *sentRequest, data broker.Value, ex *ResponseExpect) {
	got, err := r.e.Profile.DecodeConfiguration(data)
	if err != nil {
		r.failf("the data of the %s is not a configuration: %v", what, err)
	}
	if ex.ConfigOf != "" {
		want := r.reqs[ex.ConfigOf].config
		if !req.deployed {
			if !got.Equal(want) {
				r.failf("the %s holds another configuration than %s sent, or not exactly as sent\ngot  %v\nwant %v", what, ex.ConfigOf, got, want)
			}
		} else if got.ID != want.ID || !sameStrings(instanceNames(got), instanceNames(want)) || !sameStrings(nodeNames(got), nodeNames(want)) {
			r.failf("the %s is not the configuration %s sent (id, instances, nodes)\ngot  %v\nwant %v", what, ex.ConfigOf, got, want)
		}
	}
	for name, port := range ex.Ports {
		var node *api.Node
		for i := range got.Nodes {
			if got.Nodes[i].Name == name {
				node = &got.Nodes[i]
			}
		}
		if node == nil {
			r.failf("the configuration in the %s has no node %q", what, name)
		}
		p, set := node.Port.Get()
		switch {
		case port == 0 && set:
			r.failf("node %s in the %s has port %s, want none", name, what, p)
		case port != 0 && (!set || p != broker.TCPPort(uint16(port))):
			r.failf("node %s in the %s has port %s, want %d/tcp", name, what, node.Port, port)
		}
	}
}

func instanceNames(c api.Configuration) []string {
	out := make([]string, len(c.Instances))
	for i, in := range c.Instances {
		out[i] = in.Name
	}
	return out
}

func nodeNames(c api.Configuration) []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Name
	}
	return out
}

// sameStrings compares as sets.
func sameStrings(a, b []string) bool {
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}

func describeErrorExpect(exact *string, pattern string, success *bool) string {
	switch {
	case exact != nil:
		return fmt.Sprintf("error %q", *exact)
	case pattern != "":
		return fmt.Sprintf("error_matches %q", pattern)
	case success != nil && *success:
		return "success with an empty error"
	}
	return "any"
}

// matchResults finds a one-to-one assignment of Results to expected
// entries (Kuhn's augmenting paths; entries may overlap, so greedy is not
// enough).
func (r *run) matchResults(what string, req *sentRequest, results []api.Result, want []ResultExpect, inOrder bool) {
	fits := func(x ResultExpect, res api.Result) bool {
		if x.Instance != nil {
			inst := ""
			if *x.Instance != "" {
				inst = r.e.Name(*x.Instance)
			}
			if res.Instance != inst {
				return false
			}
		}
		if x.Success != nil && res.Success != *x.Success {
			return false
		}
		if x.Node != nil {
			n, ok := res.Node.Get()
			if *x.Node == "" && ok || *x.Node != "" && (!ok || n != *x.Node) {
				return false
			}
		}
		if x.Data != nil {
			if d, ok := res.Data.AsString(); !ok || d != r.expand(*x.Data, req, false) {
				return false
			}
		}
		return r.errorOK(res.Error, x.Error, x.ErrorMatches, x.Success, req)
	}
	if inOrder {
		ok := len(results) == len(want)
		for i := 0; ok && i < len(want); i++ {
			ok = fits(want[i], results[i])
		}
		if !ok {
			r.failf("the Results of the %s do not match in order\ngot  %s\nwant (in this order) [\n  %s\n]", what, suites.ResultsString(results), r.describeResults(want, req))
		}
		return
	}
	owner := make([]int, len(results)) // result → entry index + 1
	var try func(i int, seen []bool) bool
	try = func(i int, seen []bool) bool {
		for j, res := range results {
			if seen[j] || !fits(want[i], res) {
				continue
			}
			seen[j] = true
			if owner[j] == 0 || try(owner[j]-1, seen) {
				owner[j] = i + 1
				return true
			}
		}
		return false
	}
	matched := 0
	for i := range want {
		if try(i, make([]bool, len(results))) {
			matched++
		}
	}
	if matched != len(want) || len(results) != len(want) {
		r.failf("the Results of the %s do not match\ngot  %s\nwant (in any order) [\n  %s\n]", what, suites.ResultsString(results), r.describeResults(want, req))
	}
}

func (r *run) describeResults(want []ResultExpect, req *sentRequest) string {
	var ws []string
	for _, x := range want {
		ws = append(ws, r.describeResult(x, req))
	}
	return strings.Join(ws, ",\n  ")
}

func (r *run) describeResult(x ResultExpect, req *sentRequest) string {
	var parts []string
	if x.Instance != nil {
		inst := ""
		if *x.Instance != "" {
			inst = r.e.Name(*x.Instance)
		}
		parts = append(parts, fmt.Sprintf("instance=%q", inst))
	}
	if x.Success != nil {
		parts = append(parts, fmt.Sprintf("success=%v", *x.Success))
	}
	switch {
	case x.Error != nil:
		parts = append(parts, fmt.Sprintf("error=%q", r.expand(*x.Error, req, false)))
	case x.ErrorMatches != "":
		parts = append(parts, fmt.Sprintf("error=~%q", r.expand(x.ErrorMatches, req, false)))
	case x.Success != nil && *x.Success:
		parts = append(parts, `error=""`)
	}
	switch {
	case x.Node != nil && *x.Node == "":
		parts = append(parts, "node=nil")
	case x.Node != nil:
		parts = append(parts, fmt.Sprintf("node=%q", *x.Node))
	}
	if x.Data != nil {
		parts = append(parts, fmt.Sprintf("data=%q", r.expand(*x.Data, req, false)))
	}
	return "Result(" + strings.Join(parts, ", ") + ")"
}

// fromAgents derives the expected Results from what each configured agent
// answered to the configuration pushes it received for this request.
func (r *run) fromAgents(what string, req *sentRequest, results []api.Result) {
	var want []api.Result
	for _, name := range req.instances {
		a := r.agents[name]
		if a == nil {
			continue
		}
		for _, in := range a.Received(api.KindAgentSetConfigurationRequest) {
			push, ok := in.Msg.(api.AgentSetConfigurationRequest)
			if !ok || in.Time.Before(req.at) {
				continue
			}
			// The agent records its answer after sending it, so the
			// controller may have answered the client first.
			ctx, cancel := context.WithTimeout(r.e.Ctx, r.quiet())
			en, err := a.WaitFor(ctx, func(en fakeagent.Entry) bool {
				m, ok := en.Msg.(api.AgentSetConfigurationResponse)
				return ok && en.Dir == fakeagent.Out && en.Err == "" && m.Reqid == push.Reqid
			})
			cancel()
			if err != nil {
				r.failf("agent %s never answered configuration push %s, so from_agents has nothing to compare", a.Name(), push.Reqid)
			}
			ans := en.Msg.(api.AgentSetConfigurationResponse).Result
			res := api.Result{Reqid: req.reqid, Instance: ans.Instance, Success: ans.Success}
			if !ans.Success {
				node, ok := ans.Node.Get()
				if !ok {
					node = "?"
				}
				res.Error = "node " + node + " failed: " + ans.Error
			}
			want = append(want, res)
		}
	}
	key := func(rs []api.Result) []string {
		out := make([]string, len(rs))
		for i, x := range rs {
			out[i] = suites.ResultString(x)
		}
		sort.Strings(out)
		return out
	}
	g, w := key(results), key(want)
	same := len(g) == len(w)
	for i := 0; same && i < len(g); i++ {
		same = g[i] == w[i]
	}
	if !same {
		r.failf("the Results of the %s do not say what the agents answered\ngot  %s\nwant %s", what, suites.ResultsString(results), suites.ResultsString(want))
	}
}

func (r *run) checkInstances(what string, data broker.Value, want []InstanceRef) {
	if data.Kind() != broker.KindVector {
		r.failf("the data of the %s must be a vector of Instance, got %s", what, data)
	}
	got, err := r.e.Profile.DecodeInstances(data)
	if err != nil {
		r.failf("the data of the %s: %v", what, err)
	}
	var exp []api.Instance
	for _, ref := range want {
		if ref.bare {
			for _, m := range r.s.groups[ref.Name] {
				exp = append(exp, r.instance(m, "", nil))
			}
			continue
		}
		exp = append(exp, r.instance(ref.Name, ref.Host, ref.Port))
	}
	byName := func(list []api.Instance) {
		sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	}
	byName(got)
	byName(exp)
	same := len(got) == len(exp)
	for i := 0; same && i < len(got); i++ {
		same = got[i].Equal(exp[i])
	}
	if !same {
		r.failf("the instances in the %s differ\ngot  %v\nwant %v", what, instancesText(got), instancesText(exp))
	}
}

func instancesText(list []api.Instance) string {
	parts := make([]string, len(list))
	for i, in := range list {
		parts[i] = fmt.Sprintf("%s@%s:%s", in.Name, in.Host, in.ListenPort)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func (r *run) expectNoResponse(st *ExpectNoResponseStep) {
	req := r.reqs[st.ExpectNoResponse]
	window := r.resolve(st.For, r.s.Timeouts.Quiet.Or(MustDuration(TimingConsistency)))
	ctx, cancel := context.WithTimeout(r.e.Ctx, window)
	defer cancel()
	n := r.taken[r.takeKey(req)]
	got, _ := r.watch.WaitMatching(ctx, req.respKind, req.reqid, n+1)
	if len(got) > n {
		results, _ := resultsOf(got[n].Msg)
		r.failf("%s must get no response, but got one after %s: %s", st.ExpectNoResponse, got[n].At.Sub(req.at).Round(time.Millisecond), suites.ResultsString(results))
	}
}

// --- agent observations ----------------------------------------------------

// entries returns an agent's transcript entries of kind in direction dir
// (outgoing ones only when they went out).
func entries(a *fakeagent.Agent, dir fakeagent.Direction, kind api.EventKind) []fakeagent.Entry {
	if dir == fakeagent.In {
		return a.Received(kind)
	}
	var out []fakeagent.Entry
	for _, en := range a.Sent(kind) {
		if en.Err == "" {
			out = append(out, en)
		}
	}
	return out
}

// waitCount waits until the agent has at least n entries of kind in dir.
// (Transcript predicates run under its lock, so they compare sequence
// numbers instead of calling back into the agent.)
func waitCount(ctx context.Context, a *fakeagent.Agent, dir fakeagent.Direction, kind api.EventKind, n int) int {
	for {
		got := entries(a, dir, kind)
		if len(got) >= n {
			return len(got)
		}
		last := a.Transcript().Len()
		_, err := a.WaitFor(ctx, func(en fakeagent.Entry) bool {
			return en.Seq > last && en.Dir == dir && en.Kind == kind
		})
		if err != nil {
			return len(entries(a, dir, kind))
		}
	}
}

func (r *run) agentEvent(ref string, ex *AgentEventExpect, dir fakeagent.Direction, kinds []api.EventKind) {
	kind, _ := eventKind(r.e.Profile, kinds, ex.Event)
	verb := map[fakeagent.Direction]string{fakeagent.In: "received", fakeagent.Out: "sent"}[dir]
	members := r.s.groups[ref]
	within := r.resolve(ex.Within, r.responseBound())
	want := max(ex.AtLeast, 1)
	if ex.Count != nil {
		want = *ex.Count
	}
	ctx, cancel := context.WithTimeout(r.e.Ctx, within)
	for _, m := range members {
		a := r.agents[m]
		if a == nil || want == 0 {
			continue
		}
		if got := waitCount(ctx, a, dir, kind, want); got < want {
			cancel()
			r.failf("agent %s %s %d %s within %s, want %s%d", a.Name(), verb, got, ex.Event, within, map[bool]string{true: "", false: "at least "}[ex.Count != nil], want)
		}
	}
	cancel()
	if ex.Count != nil {
		// Watch once for all members: a later arrival at any of them
		// shows up in its count.
		ctx, cancel := context.WithTimeout(r.e.Ctx, r.resolve(ex.For, r.s.Timeouts.Quiet.Or(MustDuration(TimingConsistency))))
		for _, m := range members {
			if a := r.agents[m]; a != nil {
				waitCount(ctx, a, dir, kind, want+1)
			}
		}
		cancel()
	}
	for _, m := range members {
		a := r.agents[m]
		var got []fakeagent.Entry
		if a != nil {
			got = entries(a, dir, kind)
		}
		if ex.Count != nil && len(got) != want {
			r.failf("agent %s %s %d %s, want exactly %d", r.e.Name(m), verb, len(got), ex.Event, want)
		}
		for _, en := range got {
			if ex.Reqid != nil {
				if id, _ := en.Reqid(); id != *ex.Reqid {
					r.failf("agent %s %s %s with reqid %q, want %q", a.Name(), verb, ex.Event, id, *ex.Reqid)
				}
			}
			if ex.ConfigOf != "" {
				req := r.reqs[ex.ConfigOf]
				if en.Time.Before(req.at) {
					continue
				}
				switch push := en.Msg.(type) {
				case api.AgentSetConfigurationRequest:
					if !push.Config.Equal(req.config) {
						r.failf("agent %s received a configuration that is not the one %s sent\ngot  %v\nwant %v", a.Name(), ex.ConfigOf, push.Config, req.config)
					}
				case api.AgentDeployRequest:
					// The controller fills in hosts and ports: compare what it
					// must keep.
					if push.Config.ID != req.config.ID || !sameStrings(nodeNames(push.Config), nodeNames(req.config)) {
						r.failf("agent %s was deployed another configuration than %s staged\ngot  %v\nwant %v", a.Name(), ex.ConfigOf, push.Config, req.config)
					}
				}
			}
		}
	}
}
