package scenarios

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/fakeagent"
	"github.com/zcc-harness/zcc/suites/catalog"
	"github.com/zcc-harness/zcc/zeekini"
)

var (
	scenarioNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	shortNameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
	labelRE        = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:-]*$`)
	placeholderRE  = regexp.MustCompile(`\{[^{}]*\}`)
	integerVerbRE  = regexp.MustCompile(`%[0-9]*d`)
)

// sendable maps the requests scenarios can send to their event kinds; a
// profile offers those it supports.
var sendable = map[string]api.EventKind{
	"get_instances":       api.KindGetInstancesRequest,
	"set_configuration":   api.KindSetConfigurationRequest,
	"test_timeout":        api.KindTestTimeoutRequest,
	"stage_configuration": api.KindStageConfigurationRequest,
	"get_configuration":   api.KindGetConfigurationRequest,
	"deploy":              api.KindDeployRequest,
	"get_nodes":           api.KindGetNodesRequest,
	"get_id_value":        api.KindGetIDValueRequest,
	"restart":             api.KindRestartRequest,
}

// takesConfig are the requests that carry a configuration.
var takesConfig = map[string]bool{"set_configuration": true, "stage_configuration": true}

// immediate are the requests a controller answers at once, without
// asking agents, so they never time out.
var immediate = map[string]bool{"get_instances": true, "stage_configuration": true, "get_configuration": true}

// waitsForAgents are the requests whose answer waits for agents, so the
// controller's request timeout bounds them.
var waitsForAgents = map[string]bool{"set_configuration": true, "deploy": true, "get_nodes": true, "get_id_value": true, "restart": true}

// Events an agent receives and sends, by the kinds expect_received and
// expect_sent accept (a profile supports a subset).
var (
	agentReceives = []api.EventKind{
		api.KindAgentWelcomeRequest, api.KindAgentStandbyRequest, api.KindAgentSetConfigurationRequest,
		api.KindAgentDeployRequest, api.KindAgentGetNodesRequest, api.KindAgentNodeDispatchRequest, api.KindAgentRestartRequest,
	}
	agentSends = []api.EventKind{
		api.KindNotifyAgentHello, api.KindAgentWelcomeResponse, api.KindAgentStandbyResponse,
		api.KindAgentSetConfigurationResponse, api.KindNotifyChange, api.KindNotifyError, api.KindNotifyLog,
		api.KindAgentDeployResponse, api.KindAgentGetNodesResponse, api.KindAgentNodeDispatchResponse, api.KindAgentRestartResponse,
	}
)

// eventKind finds the kind of an agent event by short name.
func eventKind(p *api.Profile, kinds []api.EventKind, short string) (api.EventKind, []string) {
	var names []string
	for _, k := range kinds {
		if !p.Supports(k) {
			continue
		}
		if p.ShortName(k) == short {
			return k, nil
		}
		names = append(names, p.ShortName(k))
	}
	sort.Strings(names)
	return api.KindInvalid, names
}

// agentInfo is one declared agent (a group's member counts as one).
type agentInfo struct {
	name   string // short name
	spec   *Agent
	decl   string // path of its declaration, agents[i]
	listen bool
}

// requestInfo is what the checks know about a labelled request.
type requestInfo struct {
	label     string
	request   string
	step      int
	shared    bool     // its reqid is shared with another request (reqid_of)
	instances []string // set_configuration: short names of its instances
}

// checker validates a decoded scenario beyond its shape.
type checker struct {
	s       *Scenario
	sink    *errorSink
	fsys    fs.FS
	dir     string
	profile *api.Profile

	agents  map[string]*agentInfo
	order   []string            // agent names in declaration order
	groups  map[string][]string // group (or agent) name → member names
	labels  map[string]*requestInfo
	current map[string]Behaviour // each agent's behaviour as the steps go
	refs    []referenceTiming    // the reference timings, as this scenario sees them
	waits   map[string][]wait    // per request label, the fixed waits of the steps since it was sent
}

// wait is a step that takes at least d (a pause, a window watched for
// something not to happen).
type wait struct {
	d    Duration
	step string
}

// at is the position to report for a path: the value there, or else the
// nearest enclosing one that was written.
func (c *checker) at(p string) Pos {
	for {
		if pos, ok := c.s.pos[p]; ok {
			return pos
		}
		if pos, ok := c.s.keyPos[p]; ok {
			return pos
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			return Pos{1, 1}
		}
		p = p[:i]
	}
}

// written reports whether the file has a key at path.
func (c *checker) written(p string) bool {
	_, ok := c.s.keyPos[p]
	return ok
}

// atKey prefers the key's position (for problems with the key itself).
func (c *checker) atKey(p string) Pos {
	if pos, ok := c.s.keyPos[p]; ok {
		return pos
	}
	return c.at(p)
}

func (c *checker) errf(p, format string, args ...any) {
	c.sink.add(c.at(p), p, format, args...)
}

func validate(s *Scenario, sink *errorSink, fsys fs.FS, dir string) {
	c := &checker{
		s: s, sink: sink, fsys: fsys, dir: dir,
		agents: map[string]*agentInfo{}, groups: map[string][]string{},
		labels: map[string]*requestInfo{}, current: map[string]Behaviour{},
		refs: referenceTimings, waits: map[string][]wait{},
	}
	c.header()
	c.declareAgents()
	c.steps()
	s.members = map[string]*Agent{}
	for name, info := range c.agents {
		s.members[name] = info.spec
	}
	s.groups, s.order = c.groups, c.order
}

func (c *checker) header() {
	s := c.s
	if s.Name != "" && (!scenarioNameRE.MatchString(s.Name) || len(s.Name) > 80) {
		c.errf("name", "%q: want lower-case letters, digits and -, starting with a letter or digit (at most 80)", s.Name)
	}
	if _, ok := s.pos["description"]; ok && strings.TrimSpace(s.Description) == "" {
		c.errf("description", "must not be empty")
	}
	if s.Profile != "" {
		p, err := api.Lookup(s.Profile)
		if err != nil {
			c.errf("profile", "unknown profile %q (known: %s)", s.Profile, strings.Join(api.ProfileNames(), ", "))
		}
		c.profile = p
	}
	if s.Pair != "" && !regexp.MustCompile(`^[a-z_]+$`).MatchString(s.Pair) {
		c.errf("pair", "%q: want a request/response pair such as set_configuration", s.Pair)
	}
	for i, l := range s.Labels {
		p := fmt.Sprintf("labels[%d]", i)
		switch {
		case !labelRE.MatchString(l) || strings.HasSuffix(l, ":"):
			c.errf(p, "%q is not a Ginkgo label (letters, digits, _ . : -; no spaces, & | ! , ( ) /)", l)
		case l == "scenario" || strings.HasPrefix(l, "scenario:") || strings.HasPrefix(l, "pair:") || strings.HasPrefix(l, "behavior:") || strings.HasPrefix(l, "profile:"):
			c.errf(p, "%q is set by the runner (scenario, scenario:<name>, pair:, behavior: from covers, profile:)", l)
		}
	}
	c.covers()
	if s.Quirks == "" {
		s.Quirks = QuirksAny
	}
	for _, f := range []struct {
		p string
		d Duration
	}{{"timeouts.response", s.Timeouts.Response}, {"timeouts.hello", s.Timeouts.Hello}, {"timeouts.quiet", s.Timeouts.Quiet}, {"timeouts.controller_at_least", s.Timeouts.ControllerAtLeast}} {
		c.positive(f.p, f.d)
	}
	if s.Timeouts.ControllerAtLeast.Relative() {
		c.errf("timeouts.controller_at_least", "%s: give an absolute duration (it sets the controller_timeout the other durations are relative to)", s.Timeouts.ControllerAtLeast)
	}
	c.refs = scenarioTimings(s)
}

// scenarioTimings are the reference timings as the scenario will see
// them: with the controller timeout it asks for, where that is longer.
func scenarioTimings(s *Scenario) []referenceTiming {
	out := make([]referenceTiming, len(referenceTimings))
	for i, ref := range referenceTimings {
		out[i] = ref
		least := s.Timeouts.ControllerAtLeast.Resolve(ref.timing)
		if s.Timeouts.ControllerAtLeast.Relative() || least <= ref.timing[TimingControllerTimeout] {
			continue
		}
		t := Timing{}
		for k, v := range ref.timing {
			t[k] = v
		}
		grow := least - t[TimingControllerTimeout]
		t[TimingControllerTimeout] += grow
		t[TimingTimeoutLatest] += grow
		t[TimingResponseWait] += grow
		out[i].timing = t
	}
	return out
}

func (c *checker) covers() {
	s := c.s
	if _, given := s.pos["covers"]; given && len(s.Covers) == 0 {
		c.errf("covers", "name at least one behaviour ID")
	}
	if c.profile == nil || len(s.Covers) == 0 {
		return
	}
	cat, err := catalog.Load(c.profile.Name)
	if err != nil {
		c.errf("profile", "%v", err)
		return
	}
	known := map[string]catalog.Behavior{}
	var ids []string
	for _, b := range cat {
		known[b.ID] = b
		ids = append(ids, b.ID)
	}
	seen := map[string]bool{}
	for i, id := range s.Covers {
		p := fmt.Sprintf("covers[%d]", i)
		b, ok := known[id]
		switch {
		case !ok:
			hint := suggest(id, ids)
			if !strings.HasPrefix(hint, "did you mean") {
				hint = "see suites/catalog/behaviors-" + c.profile.Name + ".md"
			}
			c.errf(p, "%q is not in the %s behaviour catalogue (%s)", id, c.profile.Name, hint)
		case seen[id]:
			c.errf(p, "%q is listed twice", id)
		case b.Quirk && (s.Quirks == "" || s.Quirks == QuirksAny):
			c.errf(p, "%s behaves differently per quirk mode: declare quirks: zeek42 or quirks: fixed", id)
		}
		seen[id] = true
	}
}

// positive checks that a duration, if given, is longer than zero under
// every reference timing.
func (c *checker) positive(p string, d Duration) {
	if d.IsZero() {
		return
	}
	for _, ref := range c.refs {
		if d.Resolve(ref.timing) <= 0 {
			c.errf(p, "%s must be longer than zero", d)
			return
		}
	}
}

func (c *checker) declareAgents() {
	declared := map[string]string{} // name → path declaring it
	declare := func(name, p string) bool {
		if prev, dup := declared[name]; dup {
			c.errf(p, "%q is already declared by %s", name, prev)
			return false
		}
		declared[name] = p
		return true
	}
	for i := range c.s.Agents {
		a := &c.s.Agents[i]
		p := fmt.Sprintf("agents[%d]", i)
		if a.Name != "" && !shortNameRE.MatchString(a.Name) {
			c.errf(p+".name", "%q: want letters, digits, _ and -, starting with a letter or digit", a.Name)
			continue
		}
		var members []string
		switch {
		case a.Count == 0 && a.Pattern != "":
			c.errf(p+".pattern", "a pattern names a group's agents: give count too")
			continue
		case a.Count == 0:
			if a.Name == "" {
				c.sink.addKeyed(c.at(p), p+".name", p, "an agent needs a name (or count, for a group)")
				continue
			}
			members = []string{a.Name}
		case a.Count < 0 || a.Count > 1000:
			c.errf(p+".count", "want 1 to 1000 agents, got %d", a.Count)
			continue
		default:
			pattern := a.Pattern
			if pattern == "" {
				if a.Name == "" {
					c.sink.addKeyed(c.at(p), p+".name", p, "a group needs a name or a pattern")
					continue
				}
				pattern = a.Name + fmt.Sprintf("%%0%dd", len(fmt.Sprint(a.Count)))
			}
			if strings.Count(strings.ReplaceAll(pattern, "%%", ""), "%") != 1 || len(integerVerbRE.FindAllString(pattern, -1)) != 1 {
				c.errf(p+".pattern", "%q: want exactly one integer verb such as %%d or %%03d", pattern)
				continue
			}
			for n := 1; n <= a.Count; n++ {
				members = append(members, fmt.Sprintf(pattern, n))
			}
			if !shortNameRE.MatchString(members[0]) {
				c.errf(p+".pattern", "%q makes names such as %q: want letters, digits, _ and -", pattern, members[0])
				continue
			}
		}
		if a.Late && a.Connect == fakeagent.ConnectListen {
			c.errf(p+".late", "a listening agent cannot be late: configurations need its port from the start")
		}
		if !a.HelloInterval.IsZero() && a.Hello != fakeagent.HelloRepeat {
			c.errf(p+".hello_interval", "only hello: repeat repeats hellos")
		}
		c.positive(p+".hello_interval", a.HelloInterval)
		c.positive(p+".backoff.initial", a.Backoff.Initial)
		c.positive(p+".backoff.max", a.Backoff.Max)
		c.behaviour(p+".behaviour", a.Behaviour)
		if a.Count > 0 && a.Name != "" {
			if !declare(a.Name, p) {
				continue
			}
			c.groups[a.Name] = members
		}
		for _, m := range members {
			namePath := p + ".name"
			if a.Count > 0 {
				namePath = p + ".count"
			}
			if !declare(m, namePath) {
				continue
			}
			c.agents[m] = &agentInfo{name: m, spec: a, decl: p, listen: a.Connect == fakeagent.ConnectListen}
			c.groups[m] = []string{m}
			c.order = append(c.order, m)
			c.current[m] = a.Behaviour
		}
	}
	// Broker subscriptions are topic prefixes: an agent whose name is a
	// prefix of another's would get that agent's requests too (§12.1).
	for i, a := range c.order {
		for _, b := range c.order[:i] {
			if strings.HasPrefix(a, b) || strings.HasPrefix(b, a) {
				info := c.agents[a]
				c.errf(info.decl+".name", "agent names %q and %q: one is a prefix of the other, so Broker's prefix subscriptions would deliver one's requests to the other (spec §12.1); rename one", b, a)
			}
		}
	}
}

// behaviour checks a behaviour with the fake agent's own validation and
// maps its errors back to positions.
func (c *checker) behaviour(p string, b Behaviour) {
	if c.profile == nil || len(b.On) == 0 {
		return
	}
	fb := b.toFake(c.refs[0].timing, func(s string) string { return s })
	for k, r := range b.On {
		if r.Instance != "" && !shortNameRE.MatchString(r.Instance) {
			c.errf(p+".on."+k+".instance", "%q: want letters, digits, _ and -", r.Instance)
		}
	}
	for _, err := range flatten(fb.Validate(c.profile)) {
		rel, msg, ok := strings.Cut(err.Error(), ": ")
		if !ok {
			c.errf(p, "%s", err)
			continue
		}
		full := p + "." + rel
		if alt := strings.TrimSuffix(full, ".stdout") + ".stderr"; strings.HasSuffix(full, ".stdout") && !c.written(full) && c.written(alt) {
			full = alt // the fake agent names both outputs by the first
		}
		pos := c.at(full)
		if strings.Count(rel, ".") == 1 && strings.HasPrefix(rel, "on.") {
			pos = c.atKey(full) // the event key itself is wrong
		}
		c.sink.add(pos, full, "%s", msg)
	}
}

func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// members resolves an agent or group reference.
func (c *checker) members(p, ref string) ([]string, bool) {
	m, ok := c.groups[ref]
	if !ok {
		if ref == "" {
			c.errf(p, "name an agent or a group")
		} else {
			c.errf(p, "no agent or group %q is declared (%s)", ref, suggest(ref, c.order))
		}
	}
	return m, ok
}

func (c *checker) steps() {
	s := c.s
	if _, given := s.pos["steps"]; given && len(s.Steps) == 0 {
		c.errf("steps", "a scenario needs at least one step")
	}
	running := map[string]bool{}
	started := map[string]bool{}
	for _, name := range c.order {
		running[name] = !c.agents[name].spec.Late
		started[name] = running[name]
	}
	lastChange := map[string]string{}
	quiet := s.Timeouts.Quiet.Or(MustDuration(TimingConsistency))
	for i, st := range s.Steps {
		p := fmt.Sprintf("steps[%d]", i)
		switch {
		case st.Pause != nil:
			c.waited(p, st.Pause.Pause)
		case st.ExpectNoResponse != nil:
			c.waited(p, st.ExpectNoResponse.For.Or(quiet))
		case st.ExpectReceived != nil && st.ExpectReceived.Count != nil:
			c.waited(p, st.ExpectReceived.For.Or(quiet))
		case st.ExpectSent != nil && st.ExpectSent.Count != nil:
			c.waited(p, st.ExpectSent.For.Or(quiet))
		}
		switch {
		case st.Send != nil:
			c.send(p, i, st.Send)
		case st.ExpectResponse != nil:
			if req := c.label(p+".expect_response", st.ExpectResponse.ExpectResponse); req != nil {
				c.expect(p, req, &st.ExpectResponse.ResponseExpect)
				c.outlived(p, req, &st.ExpectResponse.ResponseExpect)
			}
		case st.ExpectNoResponse != nil:
			c.label(p+".expect_no_response", st.ExpectNoResponse.ExpectNoResponse)
			c.positive(p+".for", st.ExpectNoResponse.For)
		case st.ExpectReceived != nil:
			c.agentEvent(p, "expect_received", st.ExpectReceived.ExpectReceived, &st.ExpectReceived.AgentEventExpect, agentReceives, started)
		case st.ExpectSent != nil:
			c.agentEvent(p, "expect_sent", st.ExpectSent.ExpectSent, &st.ExpectSent.AgentEventExpect, agentSends, started)
		case st.Kill != nil, st.Stop != nil, st.Restart != nil, st.Start != nil, st.SayHello != nil:
			kind, ref := stepAgentAction(st)
			ms, ok := c.members(p+"."+kind, ref)
			if !ok {
				continue
			}
			for _, m := range ms {
				why := "it is late and not started yet"
				if w, ok := lastChange[m]; ok {
					why = "it was stopped by " + w
				}
				switch {
				case kind == "start" && running[m]:
					c.errf(p+"."+kind, "agent %q is already running at this step", m)
				case kind != "start" && !running[m]:
					c.errf(p+"."+kind, "agent %q is not running at this step (%s)", m, why)
				}
				switch kind {
				case "start":
					running[m], started[m] = true, true
				case "kill", "stop":
					running[m] = false
					lastChange[m] = p
				}
			}
		case st.Pause != nil:
			c.positive(p+".pause", st.Pause.Pause)
		case st.SetBehaviour != nil:
			ms, ok := c.members(p+".set_behaviour", st.SetBehaviour.SetBehaviour)
			c.behaviour(p+".behaviour", st.SetBehaviour.Behaviour)
			if ok {
				for _, m := range ms {
					c.current[m] = st.SetBehaviour.Behaviour
				}
			}
		}
	}
}

// waited records a fixed wait against every request sent so far.
func (c *checker) waited(p string, d Duration) {
	for label := range c.labels {
		c.waits[label] = append(c.waits[label], wait{d: d, step: p})
	}
}

// outlived reports an expectation of a real answer to a configuration
// whose steps since sending it wait at least the controller's request
// timeout: by the time the step looks, the controller has timed it out.
func (c *checker) outlived(p string, req *requestInfo, ex *ResponseExpect) {
	if !waitsForAgents[req.request] || ex.expectsTimeout() {
		return
	}
	ws := c.waits[req.label]
	if len(ws) == 0 {
		return
	}
	for _, ref := range c.refs {
		var sum time.Duration
		var parts []string
		for _, w := range ws {
			sum += w.d.Resolve(ref.timing)
			parts = append(parts, fmt.Sprintf("%s %s", w.step, w.d))
		}
		if timeout := ref.timing[TimingControllerTimeout]; sum >= timeout {
			c.errf(p, "the steps since %s was sent wait at least %s %s (%s), as long as the controller's request timeout (%s): it will have timed out; shorten those waits or set timeouts.controller_at_least", req.label, sum, ref.label, strings.Join(parts, ", "), timeout)
			return
		}
	}
}

// stepAgentAction returns the kind and agent reference of an agent step.
func stepAgentAction(st Step) (string, string) {
	switch {
	case st.Kill != nil:
		return "kill", st.Kill.Kill
	case st.Stop != nil:
		return "stop", st.Stop.Stop
	case st.Restart != nil:
		return "restart", st.Restart.Restart
	case st.Start != nil:
		return "start", st.Start.Start
	case st.SayHello != nil:
		return "say_hello", st.SayHello.SayHello
	}
	return "", ""
}

// label resolves a reference to an earlier request.
func (c *checker) label(p, label string) *requestInfo {
	req, ok := c.labels[label]
	if !ok {
		var known []string
		for l := range c.labels {
			known = append(known, l)
		}
		hint := "no request was sent before this step"
		if len(known) > 0 {
			hint = suggest(label, known)
		}
		c.errf(p, "no request labelled %q is sent before this step (%s)", label, hint)
		return nil
	}
	return req
}

func (c *checker) send(p string, i int, st *SendStep) {
	label := st.As
	if label == "" {
		label = st.Send
	}
	kind, ok := sendable[st.Send]
	if ok && c.profile != nil && !c.profile.Supports(kind) {
		ok = false
	}
	if !ok && st.Send != "" {
		var names []string
		for n, k := range sendable {
			if c.profile == nil || c.profile.Supports(k) {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		c.errf(p+".send", "scenarios cannot send %q (profile %s: %s)", st.Send, c.s.Profile, strings.Join(names, ", "))
	}
	if st.As != "" && !shortNameRE.MatchString(st.As) {
		c.errf(p+".as", "%q: want letters, digits, _ and -", st.As)
	}
	if prev, dup := c.labels[label]; dup {
		where := p + ".as"
		if st.As == "" {
			where = p + ".send"
		}
		c.errf(where, "the label %q already names the request of steps[%d]; give this one its own with as:", label, prev.step)
	}
	if st.Client != "" && !shortNameRE.MatchString(st.Client) {
		c.errf(p+".client", "%q: want letters, digits, _ and -", st.Client)
	}
	req := &requestInfo{label: label, request: st.Send, step: i}
	if st.ReqidOf != "" {
		if other := c.label(p+".reqid_of", st.ReqidOf); other != nil {
			other.shared, req.shared = true, true
		}
	}
	switch {
	case takesConfig[st.Send] && st.Config == nil && st.ConfigFile == "":
		c.sink.addKeyed(c.at(p), p+".config", p, "%s needs a config or a config_file", st.Send)
	case st.Config != nil && st.ConfigFile != "":
		c.errf(p+".config_file", "give config or config_file, not both")
	case st.Config != nil && !takesConfig[st.Send]:
		c.errf(p+".config", "only %s a configuration", c.configRequests())
	case st.ConfigFile != "" && !takesConfig[st.Send]:
		c.errf(p+".config_file", "only %s a configuration", c.configRequests())
	case st.Config != nil:
		req.instances = c.config(p+".config", st.Config)
	case st.ConfigFile != "":
		req.instances = c.configFile(p+".config_file", i, st.ConfigFile)
	}
	if st.WithState && st.Send != "test_timeout" {
		c.errf(p+".with_state", "only test_timeout takes with_state")
	}
	if st.Deployed && st.Send != "get_configuration" {
		c.errf(p+".deployed", "only get_configuration takes deployed")
	}
	switch {
	case st.Send == "get_id_value" && st.ID == "":
		c.sink.addKeyed(c.at(p), p+".id", p, "get_id_value needs the id of a script identifier")
	case st.ID != "" && st.Send != "get_id_value":
		c.errf(p+".id", "only get_id_value takes an id")
	}
	if st.Nodes != nil && st.Send != "get_id_value" && st.Send != "restart" {
		c.errf(p+".nodes", "only get_id_value and restart take nodes")
	}
	for j, n := range st.Nodes {
		if n == "" {
			c.errf(fmt.Sprintf("%s.nodes[%d]", p, j), "a node name must not be empty")
		}
	}
	if _, dup := c.labels[label]; !dup {
		c.labels[label] = req
	}
	if st.Expect != nil {
		c.expect(p+".expect", req, st.Expect)
	}
}

// configRequests names the requests of the scenario's profile that take a
// configuration, for messages: "set_configuration takes".
func (c *checker) configRequests() string {
	var names []string
	for n := range takesConfig {
		if c.profile == nil || c.profile.Supports(sendable[n]) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) == 1 {
		return names[0] + " takes"
	}
	return strings.Join(names, " and ") + " take"
}

// config checks an inline configuration and returns its instance names.
func (c *checker) config(p string, cfg *ConfigSpec) []string {
	var names []string
	listed := map[string]bool{}
	for j, ref := range cfg.Instances {
		ip := fmt.Sprintf("%s.instances[%d]", p, j)
		got := c.instanceRef(ip, ref)
		for _, n := range got {
			if listed[n] {
				c.errf(ip, "instance %q is listed twice", n)
			}
			listed[n] = true
		}
		names = append(names, got...)
	}
	nodeNames := map[string]bool{}
	for j, n := range cfg.Nodes {
		np := fmt.Sprintf("%s.nodes[%d]", p, j)
		if nodeNames[n.Name] && n.Name != "" {
			c.errf(np+".name", "node %q is listed twice", n.Name)
		}
		nodeNames[n.Name] = true
		if n.Instance != "" && !listed[n.Instance] && !cfg.AllowUnknownInstances {
			c.errf(np+".instance", "%q is not among this configuration's instances (set allow_unknown_instances: true to send it anyway)", n.Instance)
		}
		if n.Instance != "" && !shortNameRE.MatchString(n.Instance) {
			c.errf(np+".instance", "%q: want letters, digits, _ and -", n.Instance)
		}
		if n.Role != "" {
			if _, err := api.ParseClusterRole(n.Role); err != nil {
				c.errf(np+".role", "unknown role %q (want manager, logger, proxy, worker or none)", n.Role)
			}
		}
		if n.State != "" {
			if _, err := api.ParseState(n.State); err != nil {
				c.errf(np+".state", "unknown state %q (want running, stopped, failed, crashed or unknown)", n.State)
			}
		}
		switch {
		case n.Port < 0 || n.Port > 65535:
			c.errf(np+".port", "%d is not a port", n.Port)
		case n.Port == 0 && c.profile == api.CC42:
			c.sink.addKeyed(c.at(np), np+".port", np, "cc42 nodes need a port")
		}
	}
	return names
}

// instanceRef checks one instance entry and returns the instance names it
// stands for (a group stands for its members).
func (c *checker) instanceRef(p string, ref InstanceRef) []string {
	if ref.bare {
		ms, ok := c.members(p, ref.Name)
		if !ok {
			return nil
		}
		return ms
	}
	if ref.Name != "" && !shortNameRE.MatchString(ref.Name) {
		c.errf(p+".name", "%q: want letters, digits, _ and -", ref.Name)
	}
	if ref.Host != "" {
		if _, err := netip.ParseAddr(ref.Host); err != nil {
			c.errf(p+".host", "%q is not an IP address", ref.Host)
		}
	}
	if ref.Port != nil && (*ref.Port < 1 || *ref.Port > 65535) {
		c.errf(p+".port", "%d is not a port", *ref.Port)
	}
	if _, isGroup := c.groups[ref.Name]; isGroup && len(c.groups[ref.Name]) > 1 {
		c.errf(p+".name", "%q is a group; explicit connectivity is for one instance", ref.Name)
	}
	return []string{ref.Name}
}

// configFile parses a zeek-client INI file beside the scenario.
func (c *checker) configFile(p string, step int, file string) []string {
	if c.profile == nil {
		return nil
	}
	if c.fsys == nil {
		c.errf(p, "cannot read %s: no directory to read it from", file)
		return nil
	}
	if path.IsAbs(file) || strings.Contains(file, "..") {
		c.errf(p, "%q: give a path inside the scenario's directory", file)
		return nil
	}
	display := path.Join(path.Dir(c.s.file), file)
	f, err := c.fsys.Open(path.Join(c.dir, file))
	if err != nil {
		c.errf(p, "cannot read %s: %v", display, errors.Unwrap(err))
		return nil
	}
	defer f.Close()
	dialect, err := zeekini.DialectFor(c.profile)
	if err != nil {
		c.errf(p, "%v", err)
		return nil
	}
	cfg, err := zeekini.ParseOptions(display, f, zeekini.Options{Dialect: dialect})
	if err != nil {
		var list zeekini.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				c.sink.errs = append(c.sink.errs, &Error{File: e.File, Pos: Pos{e.Line, 1}, Msg: e.Msg})
			}
		} else {
			c.errf(p, "%v", err)
		}
		return nil
	}
	if c.s.iniConfigs == nil {
		c.s.iniConfigs = map[int]api.Configuration{}
	}
	c.s.iniConfigs[step] = cfg
	var names []string
	for _, in := range cfg.Instances {
		if !shortNameRE.MatchString(in.Name) {
			c.errf(p, "%s: instance %q: want letters, digits, _ and -", display, in.Name)
		}
		names = append(names, in.Name)
	}
	return names
}

// expect checks a response expectation against the request it is about.
func (c *checker) expect(p string, req *requestInfo, ex *ResponseExpect) {
	c.positive(p+".within", ex.Within)
	c.positive(p+".not_before", ex.NotBefore)
	within := ex.Within.Or(c.responseBound())
	withinPath := p + ".within"
	if ex.Within.IsZero() {
		withinPath = p
	}
	if !ex.NotBefore.IsZero() {
		for _, ref := range c.refs {
			if nb, w := ex.NotBefore.Resolve(ref.timing), within.Resolve(ref.timing); nb >= w {
				c.errf(p+".not_before", "not_before %s (%s %s) leaves no time before within %s (%s): nothing can arrive in between", ex.NotBefore, nb, ref.label, within, w)
				break
			}
		}
	}
	if ex.TimedOut {
		if immediate[req.request] {
			c.errf(p+".timed_out", "%s is answered at once; it never times out", req.request)
		}
		for _, k := range []struct {
			key   string
			given bool
		}{
			{"success", ex.Success != nil}, {"error", ex.Error != nil}, {"error_matches", ex.ErrorMatches != ""},
			{"count", ex.Count != nil}, {"results", ex.Results != nil}, {"from_agents", ex.FromAgents},
		} {
			if k.given {
				c.errf(p+"."+k.key, "timed_out already says what the response holds; drop %s", k.key)
			}
		}
	}
	if ex.expectsTimeout() {
		for _, ref := range c.refs {
			w, latest := within.Resolve(ref.timing), ref.timing[TimingTimeoutLatest]
			if w < latest {
				c.errf(withinPath, "waits %s for a timeout Result (%s %s), but the controller may send it as late as timeout_latest (%s): wait at least timeout_latest", within, w, ref.label, latest)
				break
			}
		}
	}
	if ex.Error != nil && ex.ErrorMatches != "" {
		c.errf(p+".error_matches", "give error or error_matches, not both")
	}
	if ex.Error != nil {
		c.placeholders(p+".error", *ex.Error, req)
	}
	if ex.ErrorMatches != "" {
		c.pattern(p+".error_matches", ex.ErrorMatches, req)
	}
	if ex.Count != nil && *ex.Count < 0 {
		c.errf(p+".count", "must not be negative")
	}
	if ex.Count != nil && ex.Results != nil && *ex.Count != len(ex.Results) {
		c.errf(p+".count", "count %d contradicts the %d results listed", *ex.Count, len(ex.Results))
	}
	for j, r := range ex.Results {
		rp := fmt.Sprintf("%s.results[%d]", p, j)
		if r.Instance != nil && *r.Instance != "" {
			if _, ok := c.agents[*r.Instance]; !ok {
				c.errf(rp+".instance", "no agent %q is declared (%s); use \"\" for a Result of the controller's own", *r.Instance, suggest(*r.Instance, c.order))
			}
		}
		if r.Error != nil && r.ErrorMatches != "" {
			c.errf(rp+".error_matches", "give error or error_matches, not both")
		}
		if r.Error != nil {
			c.placeholders(rp+".error", *r.Error, req)
		}
		if r.ErrorMatches != "" {
			c.pattern(rp+".error_matches", r.ErrorMatches, req)
		}
		if r.Data != nil {
			c.placeholders(rp+".data", *r.Data, req)
		}
	}
	if ex.InOrder && ex.Results == nil {
		c.errf(p+".in_order", "in_order says the results entries come in order: list them")
	}
	if ex.ConfigOf != "" {
		if req.request != "get_configuration" {
			c.errf(p+".config_of", "only get_configuration responses carry a configuration")
		} else if src := c.label(p+".config_of", ex.ConfigOf); src != nil && src.request != "stage_configuration" {
			c.errf(p+".config_of", "%q is a %s request, not stage_configuration", ex.ConfigOf, src.request)
		}
	}
	if ex.Ports != nil && req.request != "get_configuration" {
		c.errf(p+".ports", "only get_configuration responses carry a configuration")
	}
	for node, port := range ex.Ports {
		if port < 0 || port > 65535 {
			c.errf(p+".ports."+node, "%d is not a port (0 means none)", port)
		}
	}
	if ex.FromAgents && req.request != "set_configuration" {
		c.errf(p+".from_agents", "only set_configuration responses carry the agents' answers")
	}
	if ex.FromAgents && ex.Results != nil {
		c.errf(p+".results", "from_agents already says what the Results are; drop results")
	}
	if ex.Instances != nil {
		if req.request != "get_instances" {
			c.errf(p+".instances", "only get_instances responses list instances")
		}
		for j, ref := range ex.Instances {
			c.instanceRef(fmt.Sprintf("%s.instances[%d]", p, j), ref)
		}
	}
	if ex.Responses < 0 {
		c.errf(p+".responses", "must not be negative")
	}
	if ex.Responses > 0 && req.shared {
		c.errf(p+".responses", "the request shares its reqid with another (reqid_of), so responses cannot be counted per request")
	}
	c.agentDelays(p, withinPath, within, req, ex)
}

// agentDelays finds agents expected to succeed whose configured delay
// makes that impossible: they answer after the controller gave up, or
// after the step stopped waiting.
func (c *checker) agentDelays(p, withinPath string, within Duration, req *requestInfo, ex *ResponseExpect) {
	if req.request != "set_configuration" {
		return
	}
	var succeed []string
	switch {
	case ex.Success != nil && *ex.Success:
		succeed = req.instances
	default:
		for _, r := range ex.Results {
			if r.Instance != nil && r.Success != nil && *r.Success {
				succeed = append(succeed, *r.Instance)
			}
		}
	}
	for _, name := range succeed {
		if _, ok := c.agents[name]; !ok {
			continue
		}
		delay, ok := c.current[name].plainDelay("set_configuration_request")
		if !ok {
			continue
		}
		for _, ref := range c.refs {
			d, timeout, w := delay.Resolve(ref.timing), ref.timing[TimingControllerTimeout], within.Resolve(ref.timing)
			if d >= timeout {
				c.errf(p, "agent %s answers after %s (%s %s), but the controller gives up after controller_timeout (%s): its success cannot be seen; make the delay relative, e.g. 0.5x controller_timeout", name, delay, d, ref.label, timeout)
				break
			}
			if d >= w {
				c.errf(withinPath, "agent %s answers after %s (%s %s), after this step stops waiting (%s)", name, delay, d, ref.label, w)
				break
			}
		}
	}
}

func (c *checker) responseBound() Duration {
	return c.s.Timeouts.Response.Or(MustDuration(TimingResponseWait))
}

// placeholders checks the {…} references in an expected error text.
func (c *checker) placeholders(p, text string, req *requestInfo) {
	for _, ph := range placeholderRE.FindAllString(text, -1) {
		kind, arg, _ := strings.Cut(strings.Trim(ph, "{}"), ":")
		switch {
		case kind == "reqid" && arg == "":
		case kind == "reqid":
			if _, ok := c.labels[arg]; !ok && arg != req.label {
				c.sink.addKeyed(c.at(p), p+ph, p, "%s: no request labelled %q is sent before this step", ph, arg)
			}
		case kind == "agent":
			if _, ok := c.agents[arg]; !ok {
				c.sink.addKeyed(c.at(p), p+ph, p, "%s: no agent %q is declared", ph, arg)
			}
		case kind == "config":
			src, ok := c.labels[arg]
			if arg == req.label {
				src, ok = req, true
			}
			switch {
			case !ok:
				c.sink.addKeyed(c.at(p), p+ph, p, "%s: no request labelled %q is sent before this step", ph, arg)
			case !takesConfig[src.request]:
				c.sink.addKeyed(c.at(p), p+ph, p, "%s: %q is a %s request, which sends no configuration", ph, arg, src.request)
			}
		default:
			c.sink.addKeyed(c.at(p), p+ph, p, "unknown placeholder %s (want {reqid}, {reqid:<label>}, {agent:<name>} or {config:<label>})", ph)
		}
	}
}

// pattern checks an error_matches regular expression.
func (c *checker) pattern(p, expr string, req *requestInfo) {
	c.placeholders(p, expr, req)
	if _, err := regexp.Compile(placeholderRE.ReplaceAllString(expr, "x")); err != nil {
		c.errf(p, "not a regular expression: %v", err)
	}
}

func (c *checker) agentEvent(p, kindKey, ref string, ex *AgentEventExpect, kinds []api.EventKind, started map[string]bool) {
	ms, ok := c.members(p+"."+kindKey, ref)
	if c.profile != nil && ex.Event != "" {
		if k, known := eventKind(c.profile, kinds, ex.Event); k == api.KindInvalid {
			dir := "receives"
			if kindKey == "expect_sent" {
				dir = "sends"
			}
			c.errf(p+".event", "%q is not an event an agent %s (%s)", ex.Event, dir, suggest(ex.Event, known))
		}
	}
	if ex.Count != nil && *ex.Count < 0 {
		c.errf(p+".count", "must not be negative")
	}
	if ex.AtLeast < 0 {
		c.errf(p+".at_least", "must not be negative")
	}
	if ex.Count != nil && ex.AtLeast != 0 {
		c.errf(p+".at_least", "give count (exactly) or at_least, not both")
	}
	if !ex.For.IsZero() && ex.Count == nil {
		c.errf(p+".for", "for watches that no more arrive: it needs a count")
	}
	c.positive(p+".within", ex.Within)
	if ex.ConfigOf != "" {
		want := map[string]string{"set_configuration_request": "set_configuration", "deploy_request": "stage_configuration"}[ex.Event]
		if kindKey != "expect_received" || want == "" {
			c.errf(p+".config_of", "only a received set_configuration_request or deploy_request carries a configuration")
		} else if req := c.label(p+".config_of", ex.ConfigOf); req != nil && req.request != want {
			c.errf(p+".config_of", "%q is a %s request, not %s", ex.ConfigOf, req.request, want)
		}
	}
	if ok && (ex.Count == nil || *ex.Count > 0) {
		for _, m := range ms {
			if !started[m] {
				c.errf(p+"."+kindKey, "agent %q has not been started at this step, so it cannot have %s anything", m, map[string]string{"expect_received": "received", "expect_sent": "sent"}[kindKey])
				break
			}
		}
	}
}

// timedOutText is the error of the controller's timeout Result.
const timedOutText = "request timed out"

// expectsTimeout reports whether the expectation waits for the
// controller's timeout: timed_out, every Result's error, or one listed
// Result's error is the timeout text.
func (ex *ResponseExpect) expectsTimeout() bool {
	if ex.TimedOut || (ex.Error != nil && *ex.Error == timedOutText) {
		return true
	}
	for _, r := range ex.Results {
		if r.Error != nil && *r.Error == timedOutText && r.Instance != nil && *r.Instance == "" {
			return true
		}
	}
	return false
}
