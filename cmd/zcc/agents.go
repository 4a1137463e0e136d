package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/fakeagent"
)

func init() { subcommands = append(subcommands, newAgentsCmd) }

// agentsSettings are the `zcc agents` flags.
type agentsSettings struct {
	controller      string
	count           int
	name            string
	firstIndex      int
	profile         string
	seed            uint64
	behaviour       string
	failRate        float64
	delay           time.Duration
	silent          []string
	fail            []string
	apiVersion      []string
	on              []string
	hello           string
	helloInterval   time.Duration
	listenBasePort  int
	transcriptDir   string
	transcriptLimit int
	duration        time.Duration
	statusEvery     time.Duration
}

func newAgentsCmd() *cobra.Command {
	s := &agentsSettings{}
	cmd := &cobra.Command{
		Use:   "agents",
		Short: "Run a fleet of programmable fake agents against a controller",
		Long: `Run N fake cluster agents until interrupted (SIGINT/SIGTERM) or --duration.

By default each agent behaves as a real Zeek 4.2 agent: it dials the
controller, says hello on every connection and answers every request with
success. Behaviour flags make some or all of them misbehave. They apply in
the order listed, a later one overriding an earlier one for the same agent
and request:

  --behaviour FILE|JSON      a declarative behaviour for every agent, e.g.
                             {"on":{"set_configuration_request":{"action":"fail","probability":0.2}}}
  --delay D                  answer every request after D
  --fail-rate P              fail each set_configuration_request with probability P
  --on [AGENT:]EVENT=ACTION  any action for one request type, for one agent or all
                             (actions: ` + actionList() + `)
  --silent AGENT             never answer set_configuration_request
  --fail AGENT:NODE:ERROR    fail set_configuration_request naming NODE (empty: no node)
  --api-version [AGENT=]V    announce api_version V in the hello

Random choices are drawn per agent from --seed and the agent's name, so a
seed reproduces the same faults. With --listen-base-port the agents listen on
127.0.0.1 (agent i on PORT+i) and the controller dials them.

A status line (connected / welcomed / configs received / failures injected)
is printed at most once a second when it changes, and a summary at the end;
--transcript-dir writes one JSON-lines transcript per agent.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgents(cmd, s)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&s.controller, "controller", "", "controller address: host:port or a ws:// URL (default 127.0.0.1 at the profile's port: 2150 for cc42, 2149 for mgmt)")
	fl.IntVar(&s.count, "count", 1, "number of agents")
	fl.StringVar(&s.name, "name", fakeagent.DefaultNamePattern, "agent name pattern with one integer verb")
	fl.IntVar(&s.firstIndex, "first-index", 1, "index of the first agent")
	fl.StringVar(&s.profile, "profile", api.CC42.Name, "API profile")
	fl.Uint64Var(&s.seed, "seed", 0, "seed for random behaviours (default: random, printed)")
	fl.StringVar(&s.behaviour, "behaviour", "", "declarative behaviour for every agent: a JSON file, or JSON text")
	fl.Float64Var(&s.failRate, "fail-rate", 0, "probability that a set_configuration_request fails (0..1)")
	fl.DurationVar(&s.delay, "delay", 0, "delay before every answer")
	fl.StringArrayVar(&s.silent, "silent", nil, "agent that never answers set_configuration_request (repeatable, or comma-separated)")
	fl.StringArrayVar(&s.fail, "fail", nil, "AGENT:NODE:ERROR: agent that fails set_configuration_request (repeatable)")
	fl.StringArrayVar(&s.apiVersion, "api-version", nil, "[AGENT=]V: api_version announced in the hello (repeatable)")
	fl.StringArrayVar(&s.on, "on", nil, "[AGENT:]EVENT=ACTION: action for a request type (repeatable)")
	fl.StringVar(&s.hello, "hello", "", "hello policy: once (per connection), repeat (until welcomed) or none (default: once for cc42, repeat for mgmt)")
	fl.DurationVar(&s.helloInterval, "hello-interval", fakeagent.DefaultHelloInterval, "interval of repeated hellos")
	fl.IntVar(&s.listenBasePort, "listen-base-port", 0, "listen on 127.0.0.1 from this port instead of dialing the controller")
	fl.StringVar(&s.transcriptDir, "transcript-dir", "", "write each agent's transcript to DIR/<agent>.jsonl at the end")
	fl.IntVar(&s.transcriptLimit, "transcript-limit", 0, "keep only the newest N transcript entries per agent (0: all)")
	fl.DurationVar(&s.duration, "duration", 0, "stop after this long (default: run until interrupted)")
	fl.DurationVar(&s.statusEvery, "status-interval", time.Second, "how often the status line may be printed (at least 1s)")
	return cmd
}

func actionList() string {
	var as []string
	for _, a := range fakeagent.Actions() {
		as = append(as, string(a))
	}
	return strings.Join(as, ", ")
}

// usageErr ends the command with exit code 2.
func usageErr(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf("agents: "+format, args...)}
}

func runAgents(cmd *cobra.Command, s *agentsSettings) error {
	if !cmd.Flags().Changed("seed") {
		s.seed = rand.Uint64()
	}
	opts, err := s.fleetOptions()
	if err != nil {
		return err
	}
	fleet, err := fakeagent.NewFleet(opts)
	if err != nil {
		return usageErr("%v", err)
	}
	out := cmd.OutOrStdout()
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if s.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.duration)
		defer cancel()
	}
	// The agents live until Stop below, not until ctx ends, so that they
	// close their connections cleanly and in parallel.
	if err := fleet.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	fmt.Fprintf(out, "zcc agents: %d agents %s, profile %s, seed %d\n", fleet.Len(), describeNames(fleet.Names()), opts.Template.Profile.Name, s.seed)
	if s.listenBasePort != 0 {
		fmt.Fprintf(out, "listening; configure the instances as %s\n", describeInstances(fleet))
	} else {
		u, _ := fakeagent.ControllerURL(s.controller)
		fmt.Fprintf(out, "dialing %s\n", u)
	}
	start := time.Now()
	every := max(s.statusEvery, time.Second)
	tick := time.NewTicker(every)
	last := ""
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-tick.C:
			if line := fleet.Status().String(); line != last {
				fmt.Fprintf(out, "[%s] %s\n", time.Since(start).Round(time.Second), line)
				last = line
			}
		}
	}
	tick.Stop()
	// The summary describes the fleet as it ran, before it disconnects.
	st := fleet.Status()
	fleet.Stop()
	fmt.Fprintf(out, "summary after %s: %s\n", time.Since(start).Round(time.Millisecond), st)
	for _, p := range st.Problems {
		fmt.Fprintf(out, "  %s\n", p)
	}
	if s.transcriptDir != "" {
		if err := writeTranscripts(s.transcriptDir, fleet); err != nil {
			return err
		}
		fmt.Fprintf(out, "transcripts: %s (%d files)\n", s.transcriptDir, fleet.Len())
	}
	return nil
}

// fleetOptions turns the flags into fleet options, checking every value.
func (s *agentsSettings) fleetOptions() (fakeagent.FleetOptions, error) {
	var o fakeagent.FleetOptions
	profile, err := api.Lookup(s.profile)
	if err != nil {
		return o, usageErr("--profile: %v", err)
	}
	if s.count < 1 {
		return o, usageErr("--count must be at least 1, got %d", s.count)
	}
	if s.failRate < 0 || s.failRate > 1 {
		return o, usageErr("--fail-rate must be within 0..1, got %g", s.failRate)
	}
	if s.delay < 0 {
		return o, usageErr("--delay must not be negative, got %s", s.delay)
	}
	if s.controller == "" {
		s.controller = fmt.Sprintf("127.0.0.1:%d", profile.DefaultPort)
	}
	o = fakeagent.FleetOptions{Count: s.count, NamePattern: s.name, FirstIndex: s.firstIndex, ListenBasePort: s.listenBasePort}
	o.Template = fakeagent.Options{
		Profile:         profile,
		Seed:            s.seed,
		Hello:           fakeagent.HelloPolicy(s.hello),
		HelloInterval:   fakeagent.Duration(s.helloInterval),
		TranscriptLimit: s.transcriptLimit,
	}
	if s.listenBasePort != 0 {
		o.Template.Connect = fakeagent.ConnectListen
	} else {
		if _, err := fakeagent.ControllerURL(s.controller); err != nil {
			return o, usageErr("--controller: %v", err)
		}
		o.Template.Controller = s.controller
	}

	base, err := s.baseBehaviour()
	if err != nil {
		return o, err
	}
	perAgent := map[string]fakeagent.Behaviour{}
	versions := map[string]uint64{}
	var allVersion *uint64
	// Names are checked against the fleet once it is known: build the
	// name list the pattern gives.
	names, err := fleetNames(s.name, s.firstIndex, s.count)
	if err != nil {
		return o, err
	}
	known := map[string]bool{}
	for _, n := range names {
		known[n] = true
	}
	agentOf := func(flag, name string) error {
		if !known[name] {
			return usageErr("%s %s: no such agent (the fleet is %s)", flag, name, describeNames(names))
		}
		return nil
	}
	override := func(name, event string, r fakeagent.Rule) {
		b, ok := perAgent[name]
		if !ok {
			b = base
		}
		perAgent[name] = b.With(event, r)
	}
	for _, spec := range s.on {
		who, rest := "", spec
		if i := strings.Index(spec, ":"); i >= 0 && i < strings.Index(spec, "=") {
			who, rest = spec[:i], spec[i+1:]
		}
		event, action, ok := strings.Cut(rest, "=")
		if !ok || event == "" || action == "" {
			return o, usageErr("--on %q: want [AGENT:]EVENT=ACTION", spec)
		}
		r := fakeagent.Do(fakeagent.Action(action))
		if err := (fakeagent.Behaviour{}.With(event, r)).Validate(profile); err != nil {
			return o, usageErr("--on %q: %v", spec, err)
		}
		if who == "" || who == "*" {
			base = base.With(event, r)
			for n := range perAgent {
				perAgent[n] = perAgent[n].With(event, r)
			}
			continue
		}
		if err := agentOf("--on", who); err != nil {
			return o, err
		}
		override(who, event, r)
	}
	for _, list := range s.silent {
		for _, name := range strings.Split(list, ",") {
			name = strings.TrimSpace(name)
			if err := agentOf("--silent", name); err != nil {
				return o, err
			}
			override(name, "set_configuration_request", fakeagent.Do(fakeagent.ActionNever))
		}
	}
	for _, spec := range s.fail {
		parts := strings.SplitN(spec, ":", 3)
		if len(parts) != 3 || parts[0] == "" {
			return o, usageErr("--fail %q: want AGENT:NODE:ERROR (NODE may be empty for a failure without node)", spec)
		}
		if err := agentOf("--fail", parts[0]); err != nil {
			return o, err
		}
		r := fakeagent.Fail(parts[1], parts[2])
		if parts[1] == "" {
			r = fakeagent.Rule{Action: fakeagent.ActionFailNoNode, Error: parts[2]}
		}
		override(parts[0], "set_configuration_request", r)
	}
	for _, spec := range s.apiVersion {
		who, val, ok := strings.Cut(spec, "=")
		if !ok {
			who, val = "", spec
		}
		v, err := strconv.ParseUint(val, 10, 64)
		if err != nil {
			return o, usageErr("--api-version %q: %q is not a count", spec, val)
		}
		if who == "" || who == "*" {
			allVersion = &v
			continue
		}
		if err := agentOf("--api-version", who); err != nil {
			return o, err
		}
		versions[who] = v
	}
	o.Template.Behaviour = base
	o.Template.APIVersion = allVersion
	o.Customize = func(_ int, name string, ao *fakeagent.Options) {
		if b, ok := perAgent[name]; ok {
			ao.Behaviour = b
		}
		if v, ok := versions[name]; ok {
			ao.APIVersion = fakeagent.Uint64(v)
		}
	}
	return o, nil
}

// baseBehaviour is the behaviour every agent starts from: --behaviour,
// then --delay and --fail-rate.
func (s *agentsSettings) baseBehaviour() (fakeagent.Behaviour, error) {
	var b fakeagent.Behaviour
	if s.behaviour != "" {
		text := []byte(s.behaviour)
		src := "--behaviour"
		if !strings.HasPrefix(strings.TrimSpace(s.behaviour), "{") {
			var err error
			if text, err = os.ReadFile(s.behaviour); err != nil {
				return b, usageErr("--behaviour: %v", err)
			}
			src = s.behaviour
		}
		dec := json.NewDecoder(strings.NewReader(string(text)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&b); err != nil {
			return b, usageErr("%s: %v", src, err)
		}
	}
	if s.delay > 0 {
		b = b.With(fakeagent.AnyRequest, fakeagent.Delayed(s.delay))
	}
	if s.failRate > 0 {
		r := fakeagent.WithProbability(s.failRate, fakeagent.Rule{Action: fakeagent.ActionFail, Delay: fakeagent.Duration(s.delay)})
		if s.delay > 0 {
			r.Otherwise = &fakeagent.Rule{Action: fakeagent.ActionReply, Delay: fakeagent.Duration(s.delay)}
		}
		b = b.With("set_configuration_request", r)
	}
	return b, nil
}

func fleetNames(pattern string, first, count int) ([]string, error) {
	if first == 0 {
		first = 1
	}
	names := make([]string, count)
	for i := range names {
		names[i] = fmt.Sprintf(pattern, first+i)
		if strings.Contains(names[i], "%!") {
			return nil, usageErr("--name %q must hold exactly one integer verb such as %%03d", pattern)
		}
	}
	return names, nil
}

// describeNames renders a fleet's names briefly: "agent-001 … agent-100".
func describeNames(names []string) string {
	switch len(names) {
	case 0:
		return "(none)"
	case 1:
		return names[0]
	case 2:
		return names[0] + ", " + names[1]
	}
	return names[0] + " … " + names[len(names)-1]
}

// describeInstances renders the [instances] entries zeek-client needs for
// listening agents (the first few, for big fleets).
func describeInstances(f *fakeagent.Fleet) string {
	var parts []string
	for i, a := range f.Agents() {
		if i == 3 && f.Len() > 4 {
			parts = append(parts, "…")
			a = f.Agents()[f.Len()-1]
			parts = append(parts, fmt.Sprintf("%s = 127.0.0.1:%d", a.Name(), a.Port()))
			break
		}
		parts = append(parts, fmt.Sprintf("%s = 127.0.0.1:%d", a.Name(), a.Port()))
	}
	return strings.Join(parts, ", ")
}

func writeTranscripts(dir string, f *fakeagent.Fleet) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("transcript dir: %w", err)
	}
	var errs []error
	for _, a := range f.Agents() {
		path := filepath.Join(dir, a.Name()+".jsonl")
		if err := writeTranscript(path, a.Transcript()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func writeTranscript(path string, t *fakeagent.Transcript) (err error) {
	fh, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("transcript: %w", err)
	}
	defer func() {
		if cerr := fh.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("transcript %s: %w", path, cerr)
		}
	}()
	return t.WriteJSONL(fh)
}
