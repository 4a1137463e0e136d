// Package suites is zcc's conformance suite for Zeek cluster controllers:
// Ginkgo specs that drive every request/response pair of the controller API,
// including timeouts and partial agent failures, against a Target — the
// reference controller in-process, a controller in a container, or any
// controller at a WebSocket URL.
//
// It is a library first, in the manner of kubernetes-csi/csi-test's sanity
// package: Register adds the specs to the caller's Ginkgo tree (callable
// more than once, with different configs), and Run owns RunSpecs for the
// one-call case. Fake agents always run in the test process and connect to
// the target; every spec uses its own instance names and reqids, takes its
// SpecContext, cleans up with DeferCleanup and attaches fake-agent
// transcripts and controller logs when it fails.
//
// The specs state the expected wire values (error texts, event kinds,
// result shapes) themselves, from the protocol notes; they never import
// them from the reference controller, so a wrong constant there fails the
// suite instead of agreeing with it.
package suites

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL reads best dot-imported
	"github.com/onsi/ginkgo/v2/types"
	"github.com/onsi/gomega"

	"github.com/zcc-harness/zcc/suites/catalog"
)

// specDef is one spec of the suite, registered at init through the private
// list below so that Register never calls Ginkgo's global Describe by
// accident.
type specDef struct {
	text      string
	profile   string   // "cc42"
	pair      string   // request/response pair, or "transport"
	behaviors []string // catalogue IDs
	labels    []string // fault:*, timeout, quirk, …
	needs     needs
	body      func(e *Env)
}

// needs are what a spec requires of the target; a target lacking one gets
// the spec Skipped with the reason.
type needs struct {
	fresh    bool // its own controller: the spec observes or breaks global state
	observer bool // in-process observation (notify_agents_ready, state)
	faults   bool // controller-level faults (restart, pause, kill)
}

var registry []specDef

func spec(profile, pair string, behaviors []string, text string, body func(e *Env), opts ...SpecOption) {
	DefineSpec(profile, pair, behaviors, text, body, opts...)
}

// DefineSpec adds a spec to the suite. Call it from an init function
// (before Register runs): packages such as scenarios add their specs this
// way. pair is the request/response pair the spec exercises ("get_instances",
// "set_configuration", …, or "transport"); behaviors are catalogue IDs.
func DefineSpec(profile, pair string, behaviors []string, text string, body func(e *Env), opts ...SpecOption) {
	d := specDef{text: text, profile: profile, pair: pair, behaviors: behaviors, body: body}
	for _, o := range opts {
		o(&d)
	}
	registry = append(registry, d)
}

// SpecOption adds labels or requirements to a spec.
type SpecOption func(*specDef)

// WithLabels adds Ginkgo labels (fault:<kind>, timeout, quirk, …).
func WithLabels(ls ...string) SpecOption {
	return func(d *specDef) { d.labels = append(d.labels, ls...) }
}

// NeedsFresh marks a spec that needs a controller of its own.
func NeedsFresh() SpecOption { return func(d *specDef) { d.needs.fresh = true } }

// NeedsObserver marks a spec that observes the controller in-process.
func NeedsObserver() SpecOption { return func(d *specDef) { d.needs.observer = true } }

// NeedsControllerFaults marks a spec that restarts, pauses or kills the
// controller.
func NeedsControllerFaults() SpecOption { return func(d *specDef) { d.needs.faults = true } }

func labels(ls ...string) SpecOption { return WithLabels(ls...) }
func fresh() SpecOption              { return NeedsFresh() }
func observer() SpecOption           { return NeedsObserver() }

// registration is one Register call: its config and its target.
type registration struct {
	name    string
	cfgFn   func() Config
	cfgOnce sync.Once
	once    sync.Once
	cfg     Config
	target  Target
	err     error
	seq     atomic.Int64
	failed  atomic.Bool // a spec of this registration failed (for FailFast)
}

// config returns the registration's config, calling cfgFn once.
func (r *registration) config() Config {
	r.cfgOnce.Do(func() { r.cfg = r.cfgFn() })
	return r.cfg
}

func (r *registration) setup() (Config, Target, error) {
	r.once.Do(func() {
		r.cfg = r.config()
		if r.err = r.cfg.Validate(); r.err != nil {
			return
		}
		r.target, r.err = NewTarget(r.cfg)
	})
	return r.cfg, r.target, r.err
}

var registrations struct {
	sync.Mutex
	names map[string]bool
}

// Register adds the conformance specs to the caller's Ginkgo tree. cfgFn
// is called once, when the first spec runs, so flags parsed by the test
// binary are seen. Register may be called more than once with different
// configs; each call's specs sit under "zcc conformance [name]" and get
// their own report (name is the config's profile and target unless given
// with RegisterNamed).
func Register(cfgFn func() Config) bool {
	return RegisterNamed("", cfgFn)
}

// RegisterNamed is Register with an explicit name, used to tell several
// registrations apart in spec texts and report file names.
func RegisterNamed(name string, cfgFn func() Config) bool {
	registrations.Lock()
	if registrations.names == nil {
		registrations.names = map[string]bool{}
	}
	if registrations.names[name] {
		registrations.Unlock()
		panic(fmt.Sprintf("suites: Register called twice with the name %q", name))
	}
	registrations.names[name] = true
	registrations.Unlock()

	reg := &registration{name: name, cfgFn: cfgFn}
	title := "zcc conformance"
	if name != "" {
		title += " [" + name + "]"
	}
	Describe(title, func() {
		if shard.total > 1 && ShardProgress != nil {
			// The parent of a sharded run shows progress from all shards
			// on one line: one character per finished spec.
			ReportAfterEach(func(sr types.SpecReport) {
				sym := "•"
				switch {
				case sr.State == types.SpecStateSkipped:
					sym = "S"
				case sr.State.Is(types.SpecStateFailureStates):
					sym = "F"
				}
				fmt.Fprint(ShardProgress, sym)
			})
		}
		// Ginkgo builds the tree inside RunSpecs, after flags are parsed,
		// so the config is known here: a run holds only its profile's
		// specs, and another profile's never show up as skips.
		profile := reg.config().Profile
		for i, d := range registry {
			if shard.total > 1 && i%shard.total != shard.index {
				continue
			}
			if profile != "" && d.profile != profile {
				continue
			}
			ls := Labels{"profile:" + d.profile}
			if d.pair != "" {
				ls = append(ls, "pair:"+d.pair)
			}
			for _, b := range d.behaviors {
				ls = append(ls, "behavior:"+b)
			}
			ls = append(ls, d.labels...)
			It(d.text, ls, func(ctx SpecContext) {
				reg.run(ctx, d)
			}, SpecTimeout(15*time.Minute))
		}
	})
	ReportAfterSuite(title+" report", func(rep types.Report) {
		writeReport(reg, title, rep)
	})
	return true
}

// run executes one spec: skip decisions, the per-spec environment, the body.
func (r *registration) run(ctx SpecContext, d specDef) {
	cfg, target, err := r.setup()
	if err != nil {
		if errors.Is(err, ErrTargetUnavailable) {
			Skip(err.Error())
		}
		infraError("set up the target", err)
	}
	if d.profile != cfg.Profile {
		Skip(fmt.Sprintf("spec is for profile %s, the run is for %s", d.profile, cfg.Profile))
	}
	if cfg.FailFast && r.failed.Load() {
		Skip("fail_fast: an earlier spec of this run failed")
	}
	DeferCleanup(func() {
		if CurrentSpecReport().Failed() {
			r.failed.Store(true)
		}
	})
	for _, b := range d.behaviors {
		if contains(cfg.Target.Disabled, b) {
			AddReportEntry(entryOutcome, string(OutcomeDisabled), ReportEntryVisibilityNever)
			Skip("disabled by configuration: " + b)
		}
		if contains(cfg.Target.Unsupported, b) {
			Skip("the target does not claim " + b)
		}
	}
	caps := target.Capabilities()
	switch {
	case d.needs.fresh && !caps.Fresh:
		Skip("needs a controller of its own; the " + target.Name() + " target's state is shared between specs")
	case d.needs.observer && !caps.Observer:
		Skip("needs in-process observation of the controller (inproc target only)")
	case d.needs.faults && !caps.Faults:
		Skip("needs controller restart/pause/kill faults (container target only)")
	case caps.HostLoopbackUnreachable && contains(d.behaviors, behaviorListeningAgent):
		Skip("the controller cannot reach fake agents listening on this host's 127.0.0.1 from the " + target.Name() + " target")
	}
	e := newEnv(ctx, r, cfg, target, d)
	d.body(e)
}

// behaviorListeningAgent needs the controller to dial the test host's
// loopback, which a controller in a container cannot.
const behaviorListeningAgent = "set-config.listening-agent"

// infraError fails the spec as an Error (harness or infrastructure), not
// a conformance Fail.
func infraError(what string, err error) {
	GinkgoHelper()
	AddReportEntry(entryOutcome, string(OutcomeError), ReportEntryVisibilityNever)
	AddReportEntry(entryReason, what+": "+err.Error(), ReportEntryVisibilityNever)
	Fail(fmt.Sprintf("harness error: %s: %v", what, err))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// writeReport builds and writes the conformance report of one registration.
func writeReport(r *registration, title string, rep types.Report) {
	cfg := r.cfg
	if cfg.Profile == "" { // no spec ran, so setup never happened
		cfg = r.cfgFn()
	}
	report := reportFromGinkgo(cfg, title, rep.SpecReports, rep.StartTime, rep.RunTime)
	lastReports.Lock()
	lastReports.m[r.name] = report
	lastReports.Unlock()
	if cfg.ReportDir == "" || shard.total > 1 {
		return // a shard's parent writes the merged report
	}
	dir := cfg.ReportDir
	if r.name != "" {
		dir = filepath.Join(dir, r.name)
	}
	if err := report.WriteFiles(dir); err != nil {
		fmt.Fprintf(os.Stderr, "zcc report: %v\n", err)
	}
}

// reportFromGinkgo builds the conformance report of the specs under the
// top-level container title.
func reportFromGinkgo(cfg Config, title string, srs types.SpecReports, started time.Time, elapsed time.Duration) ConformanceReport {
	var specs []SpecResult
	var identity TargetIdentity
	for _, sr := range srs {
		if len(sr.ContainerHierarchyTexts) == 0 || sr.ContainerHierarchyTexts[0] != title {
			continue
		}
		for _, e := range sr.ReportEntries {
			if e.Name == entryTarget && identity.Mode == "" {
				_ = json.Unmarshal([]byte(e.Value.String()), &identity)
			}
		}
		if res, ok := specResultFromGinkgo(sr); ok {
			res.Name = strings.TrimSpace(strings.TrimPrefix(res.Name, title))
			specs = append(specs, res)
		}
	}
	if identity.Mode == "" {
		identity = TargetIdentity{Mode: cfg.Target.Mode, URL: cfg.Target.URL, Quirks: cfg.Target.Quirks, Image: cfg.Target.Container.Image}
	}
	cat, err := catalog.Load(cfg.Profile)
	if err != nil {
		fmt.Fprintf(GinkgoWriter, "zcc report: %v\n", err)
	}
	return BuildReport(cfg, identity, started, elapsed, specs, cat)
}

// MergeShardReports builds one conformance report (and one Ginkgo report,
// for JUnit) from the Ginkgo JSON reports of the shards of a Register run
// (see SetShard).
func MergeShardReports(cfg Config, shards []types.Report, elapsed time.Duration) (ConformanceReport, types.Report) {
	merged := types.Report{SuiteDescription: "zcc conformance", SuiteSucceeded: true, RunTime: elapsed}
	for i, rep := range shards {
		if i == 0 || rep.StartTime.Before(merged.StartTime) {
			merged.StartTime = rep.StartTime
			merged.SuitePath, merged.SuiteConfig = rep.SuitePath, rep.SuiteConfig
		}
		if rep.EndTime.After(merged.EndTime) {
			merged.EndTime = rep.EndTime
		}
		merged.SuiteSucceeded = merged.SuiteSucceeded && rep.SuiteSucceeded
		merged.SpecialSuiteFailureReasons = append(merged.SpecialSuiteFailureReasons, rep.SpecialSuiteFailureReasons...)
		merged.SpecReports = append(merged.SpecReports, rep.SpecReports...)
	}
	merged.SuiteConfig.RandomSeed = cfg.Seed
	return reportFromGinkgo(cfg, "zcc conformance", merged.SpecReports, merged.StartTime, elapsed), merged
}

// ShardProgress receives one character per finished spec (•, S, F) in a
// sharded run; zcc conform points it at the stream its parent shows.
var ShardProgress io.Writer

// shard restricts which registered specs this process runs: spec i of
// the registry belongs to shard i % total.
var shard struct{ index, total int }

// SetShard makes Register add only the specs of shard index (from 0) of
// total. zcc conform --parallel runs each shard in a process of its own
// and merges their reports with MergeShardReports. Call it before
// Register.
func SetShard(index, total int) error {
	if total < 1 || index < 0 || index >= total {
		return fmt.Errorf("shard %d of %d: want 0 <= index < total", index, total)
	}
	shard.index, shard.total = index, total
	return nil
}

var lastReports = struct {
	sync.Mutex
	m map[string]ConformanceReport
}{m: map[string]ConformanceReport{}}

// LastReport returns the report of the registration named name ("" for
// Register's) from the most recent run in this process.
func LastReport(name string) (ConformanceReport, bool) {
	lastReports.Lock()
	defer lastReports.Unlock()
	r, ok := lastReports.m[name]
	return r, ok
}

// Run is the one-call form for `go test`: it registers the suite with cfg
// and runs it. Call it once per test binary.
func Run(t *testing.T, cfg Config) bool {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	gomega.RegisterFailHandler(Fail)
	suiteCfg, repCfg := GinkgoConfiguration()
	cfg = ApplyToGinkgo(cfg, &suiteCfg)
	Register(func() Config { return cfg })
	return RunSpecs(t, "zcc conformance", suiteCfg, repCfg)
}

// ApplyToGinkgo copies the config's selection and seed into Ginkgo's suite
// configuration and returns the config with the seed actually used (Ginkgo
// picks one when the config has none), so the report records it. An empty
// selection is an error (FailOnEmpty).
func ApplyToGinkgo(cfg Config, sc *types.SuiteConfig) Config {
	if cfg.LabelFilter != "" {
		sc.LabelFilter = cfg.LabelFilter
	}
	if len(cfg.Focus) > 0 {
		sc.FocusStrings = append(sc.FocusStrings, cfg.Focus...)
	}
	if len(cfg.Skip) > 0 {
		sc.SkipStrings = append(sc.SkipStrings, cfg.Skip...)
	}
	if cfg.Seed != 0 {
		sc.RandomSeed = cfg.Seed
	} else {
		cfg.Seed = sc.RandomSeed
	}
	sc.FailOnEmpty = true
	return cfg
}

// SpecList lists the registered specs of a profile with their labels, for
// `zcc conform --list`.
func SpecList(profile string) []string {
	var out []string
	for _, d := range registry {
		if d.profile != profile {
			continue
		}
		ls := []string{"pair:" + d.pair}
		for _, b := range d.behaviors {
			ls = append(ls, "behavior:"+b)
		}
		ls = append(ls, d.labels...)
		out = append(out, d.text+" ["+strings.Join(ls, ", ")+"]")
	}
	sort.Strings(out)
	return out
}

// coveredBehaviors maps each behaviour ID named by a spec of profile to
// the specs naming it.
func coveredBehaviors(profile string) map[string][]string {
	m := map[string][]string{}
	for _, d := range registry {
		if d.profile != profile {
			continue
		}
		for _, b := range d.behaviors {
			m[b] = append(m[b], d.text)
		}
	}
	return m
}
