package suites

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/onsi/ginkgo/v2/types"

	"github.com/zcc-harness/zcc/suites/catalog"
)

// Outcome is the result of a spec, a pair or a behaviour. The five
// outcomes are distinct on purpose: a OutcomeSkip says the target does not claim
// a feature (with the reason), OutcomeDisabled that the configuration switched it
// off, and OutcomeError that the harness or its infrastructure failed (target
// unreachable, Docker missing when required) — none of them is a Pass.
type Outcome string

// The outcomes, plus OutcomeNotRun for catalogued behaviours no selected spec
// covered.
const (
	OutcomePass     Outcome = "pass"
	OutcomeFail     Outcome = "fail"
	OutcomeSkip     Outcome = "skip"
	OutcomeDisabled Outcome = "disabled"
	OutcomeError    Outcome = "error"
	OutcomeNotRun   Outcome = "not-run"
)

// rank orders outcomes for aggregation: the worst one wins.
var rank = map[Outcome]int{OutcomeFail: 5, OutcomeError: 4, OutcomePass: 3, OutcomeSkip: 2, OutcomeDisabled: 1, OutcomeNotRun: 0}

func worse(a, b Outcome) Outcome {
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// Report entry names through which specs tell the report what Ginkgo's
// states cannot express.
const (
	entryOutcome = "zcc-outcome" // "error" or "disabled"
	entryReason  = "zcc-reason"
	entryTarget  = "zcc-target" // JSON TargetIdentity
)

// SpecResult is one spec's outcome, extracted from Ginkgo's report.
type SpecResult struct {
	Name      string        `json:"name" yaml:"name"`
	Pair      string        `json:"pair,omitempty" yaml:"pair,omitempty"`
	Behaviors []string      `json:"behaviors,omitempty" yaml:"behaviors,omitempty"`
	Labels    []string      `json:"labels,omitempty" yaml:"labels,omitempty"`
	Outcome   Outcome       `json:"outcome" yaml:"outcome"`
	Reason    string        `json:"reason,omitempty" yaml:"reason,omitempty"`
	Duration  time.Duration `json:"-" yaml:"-"`
	Seconds   float64       `json:"duration_s" yaml:"duration_s"`
}

// TargetIdentity is what the report says about the controller under test.
type TargetIdentity struct {
	Mode     string `json:"mode" yaml:"mode"`
	URL      string `json:"url,omitempty" yaml:"url,omitempty"`
	Image    string `json:"image,omitempty" yaml:"image,omitempty"`
	Quirks   string `json:"quirks" yaml:"quirks"`
	Endpoint string `json:"ack_endpoint,omitempty" yaml:"ack_endpoint,omitempty"`
	Version  string `json:"ack_version,omitempty" yaml:"ack_version,omitempty"`
}

// PairResult aggregates the specs of one request/response pair.
type PairResult struct {
	Pair    string         `json:"pair" yaml:"pair"`
	Outcome Outcome        `json:"outcome" yaml:"outcome"`
	Counts  map[string]int `json:"counts" yaml:"counts"`
	Seconds float64        `json:"duration_s" yaml:"duration_s"`
}

// BehaviorResult is one catalogued behaviour's outcome.
type BehaviorResult struct {
	ID      string   `json:"id" yaml:"id"`
	Section string   `json:"section" yaml:"section"`
	Outcome Outcome  `json:"outcome" yaml:"outcome"`
	Reason  string   `json:"reason,omitempty" yaml:"reason,omitempty"`
	Seconds float64  `json:"duration_s" yaml:"duration_s"`
	Specs   []string `json:"specs,omitempty" yaml:"specs,omitempty"`
}

// ConformanceReport is the conformance report: the product of a run.
type ConformanceReport struct {
	Harness   string           `json:"harness" yaml:"harness"`
	Profile   string           `json:"profile" yaml:"profile"`
	Target    TargetIdentity   `json:"target" yaml:"target"`
	Seed      int64            `json:"seed" yaml:"seed"`
	Started   time.Time        `json:"started" yaml:"started"`
	Seconds   float64          `json:"duration_s" yaml:"duration_s"`
	Result    Outcome          `json:"result" yaml:"result"`
	Counts    map[string]int   `json:"counts" yaml:"counts"`
	Pairs     []PairResult     `json:"pairs" yaml:"pairs"`
	Behaviors []BehaviorResult `json:"behaviors" yaml:"behaviors"`
	Specs     []SpecResult     `json:"specs" yaml:"specs"`
	Config    Config           `json:"config" yaml:"config"`
	// Problems lists catalogue inconsistencies found while building the
	// report (a spec naming an unknown behaviour).
	Problems []string `json:"problems,omitempty" yaml:"problems,omitempty"`
}

// specResultFromGinkgo converts one Ginkgo spec report; ok is false for
// nodes that are not specs and for specs the filters did not select.
func specResultFromGinkgo(sr types.SpecReport) (SpecResult, bool) {
	if sr.LeafNodeType != types.NodeTypeIt {
		return SpecResult{}, false
	}
	r := SpecResult{
		Name:     strings.TrimSpace(sr.FullText()),
		Labels:   sr.Labels(),
		Duration: sr.RunTime,
		Seconds:  round3(sr.RunTime.Seconds()),
	}
	for _, l := range r.Labels {
		switch {
		case strings.HasPrefix(l, "pair:"):
			r.Pair = strings.TrimPrefix(l, "pair:")
		case strings.HasPrefix(l, "behavior:"):
			r.Behaviors = append(r.Behaviors, strings.TrimPrefix(l, "behavior:"))
		}
	}
	var marked Outcome
	for _, e := range sr.ReportEntries {
		switch e.Name {
		case entryOutcome:
			marked = Outcome(e.Value.String())
		case entryReason:
			r.Reason = e.Value.String()
		}
	}
	switch {
	case sr.State == types.SpecStatePassed:
		r.Outcome = OutcomePass
	case sr.State == types.SpecStateSkipped:
		if sr.Failure.Message == "" && marked == "" {
			return SpecResult{}, false // not selected by the filters
		}
		r.Outcome = OutcomeSkip
		if marked == OutcomeDisabled {
			r.Outcome = OutcomeDisabled
		}
		if r.Reason == "" {
			r.Reason = sr.Failure.Message
		}
	case sr.State == types.SpecStatePending:
		r.Outcome, r.Reason = OutcomeDisabled, "pending in the suite source"
	case sr.State.Is(types.SpecStateInterrupted | types.SpecStateAborted):
		r.Outcome = OutcomeError
		r.Reason = firstLine(sr.Failure.Message)
	case sr.State.Is(types.SpecStateFailureStates):
		r.Outcome = OutcomeFail
		if marked == OutcomeError {
			r.Outcome = OutcomeError
		}
		if r.Reason == "" {
			r.Reason = firstLine(sr.Failure.Message)
		}
		if sr.State == types.SpecStateTimedout && r.Reason == "" {
			r.Reason = "spec timed out"
		}
	default:
		r.Outcome, r.Reason = OutcomeError, "unexpected spec state "+sr.State.String()
	}
	return r, true
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	const max = 300
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// BuildReport aggregates spec results per pair and per catalogued
// behaviour. Every catalogued behaviour appears, OutcomeNotRun when no selected
// spec covered it.
func BuildReport(cfg Config, target TargetIdentity, started time.Time, elapsed time.Duration, specs []SpecResult, cat []catalog.Behavior) ConformanceReport {
	r := ConformanceReport{
		Harness: "zcc " + harnessVersion(),
		Profile: cfg.Profile,
		Target:  target,
		Seed:    cfg.Seed,
		Started: started.UTC().Truncate(time.Millisecond),
		Seconds: round3(elapsed.Seconds()),
		Counts:  map[string]int{},
		Specs:   specs,
		Config:  cfg,
		Result:  OutcomePass,
	}
	sort.SliceStable(r.Specs, func(i, j int) bool { return r.Specs[i].Name < r.Specs[j].Name })
	pairs := map[string]*PairResult{}
	known := map[string]bool{}
	for _, b := range cat {
		known[b.ID] = true
	}
	byBehavior := map[string]*BehaviorResult{}
	for _, s := range r.Specs {
		r.Counts[string(s.Outcome)]++
		if s.Outcome == OutcomeFail || s.Outcome == OutcomeError {
			r.Result = worse(r.Result, s.Outcome)
		}
		if s.Pair != "" {
			p := pairs[s.Pair]
			if p == nil {
				p = &PairResult{Pair: s.Pair, Outcome: OutcomeNotRun, Counts: map[string]int{}}
				pairs[s.Pair] = p
			}
			p.Outcome = worse(p.Outcome, s.Outcome)
			p.Counts[string(s.Outcome)]++
			p.Seconds = round3(p.Seconds + s.Seconds)
		}
		for _, id := range s.Behaviors {
			if !known[id] {
				r.Problems = append(r.Problems, fmt.Sprintf("spec %q names unknown behaviour %q", s.Name, id))
				continue
			}
			b := byBehavior[id]
			if b == nil {
				b = &BehaviorResult{ID: id, Outcome: OutcomeNotRun}
				byBehavior[id] = b
			}
			if rank[s.Outcome] > rank[b.Outcome] {
				b.Outcome, b.Reason = s.Outcome, s.Reason
			}
			b.Seconds = round3(b.Seconds + s.Seconds)
			b.Specs = append(b.Specs, s.Name)
		}
	}
	switch {
	case len(r.Specs) == 0:
		r.Result = OutcomeError
		r.Problems = append(r.Problems, "no spec was selected: a filter that selects nothing is an error")
	case r.Result == OutcomePass && r.Counts[string(OutcomePass)] == 0:
		// Every selected spec was skipped or disabled (e.g. the container
		// target without Docker): nothing was tested, which is no pass.
		r.Result = OutcomeSkip
		r.Problems = append(r.Problems, "no spec passed: every selected spec was skipped or disabled, so nothing was tested")
	}
	for _, b := range cat {
		res := byBehavior[b.ID]
		if res == nil {
			res = &BehaviorResult{ID: b.ID, Outcome: OutcomeNotRun}
		}
		res.Section = b.Section
		r.Behaviors = append(r.Behaviors, *res)
	}
	for _, p := range pairs {
		r.Pairs = append(r.Pairs, *p)
	}
	sort.Slice(r.Pairs, func(i, j int) bool { return r.Pairs[i].Pair < r.Pairs[j].Pair })
	return r
}

// WriteFiles writes conformance-report.json, .yaml and .md into dir.
func (r ConformanceReport) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report dir: %w", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("report json: %w", err)
	}
	ym, err := yaml.Marshal(r)
	if err != nil {
		return fmt.Errorf("report yaml: %w", err)
	}
	for name, data := range map[string][]byte{
		"conformance-report.json": append(js, '\n'),
		"conformance-report.yaml": ym,
		"conformance-report.md":   []byte(r.Markdown()),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	return nil
}

// countsText renders outcome counts in a fixed order: "12 pass, 1 fail".
func countsText(c map[string]int) string {
	var parts []string
	for _, o := range []Outcome{OutcomePass, OutcomeFail, OutcomeError, OutcomeSkip, OutcomeDisabled} {
		if n := c[string(o)]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, o))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// Markdown renders the report for humans.
func (r ConformanceReport) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# zcc conformance report — %s\n\n", strings.ToUpper(string(r.Result)))
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| harness | %s |\n| profile | %s |\n| target | %s |\n", r.Harness, r.Profile, r.Target.Mode)
	if r.Target.URL != "" {
		fmt.Fprintf(&b, "| url | %s |\n", r.Target.URL)
	}
	if r.Target.Image != "" {
		fmt.Fprintf(&b, "| image | %s |\n", r.Target.Image)
	}
	fmt.Fprintf(&b, "| quirk mode | %s |\n", r.Target.Quirks)
	if r.Target.Version != "" || r.Target.Endpoint != "" {
		fmt.Fprintf(&b, "| ack | endpoint `%s`, version `%s` |\n", r.Target.Endpoint, r.Target.Version)
	}
	fmt.Fprintf(&b, "| seed | %d |\n| started | %s |\n| duration | %.2fs |\n| specs | %s |\n\n",
		r.Seed, r.Started.Format(time.RFC3339), r.Seconds, countsText(r.Counts))
	if len(r.Problems) > 0 {
		b.WriteString("## Problems\n\n")
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "- %s\n", p)
		}
		b.WriteString("\n")
	}
	b.WriteString("## Request/response pairs\n\n| pair | outcome | specs | time |\n|---|---|---|---|\n")
	for _, p := range r.Pairs {
		fmt.Fprintf(&b, "| %s | %s | %s | %.2fs |\n", p.Pair, p.Outcome, countsText(p.Counts), p.Seconds)
	}
	b.WriteString("\n## Behaviours\n\n| behaviour | outcome | reason | time |\n|---|---|---|---|\n")
	for _, x := range r.Behaviors {
		fmt.Fprintf(&b, "| %s | %s | %s | %.2fs |\n", x.ID, x.Outcome, mdCell(x.Reason), x.Seconds)
	}
	b.WriteString("\n## Specs\n\n| spec | outcome | reason | time |\n|---|---|---|---|\n")
	for _, s := range r.Specs {
		fmt.Fprintf(&b, "| %s | %s | %s | %.2fs |\n", mdCell(s.Name), s.Outcome, mdCell(s.Reason), s.Seconds)
	}
	return b.String()
}

func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// SummaryTable renders the per-pair table and totals for a terminal.
func (r ConformanceReport) SummaryTable() string {
	var b strings.Builder
	w := len("pair")
	for _, p := range r.Pairs {
		w = max(w, len(p.Pair))
	}
	fmt.Fprintf(&b, "%-*s  %-8s  %s\n", w, "pair", "outcome", "specs")
	for _, p := range r.Pairs {
		fmt.Fprintf(&b, "%-*s  %-8s  %s\n", w, p.Pair, p.Outcome, countsText(p.Counts))
	}
	covered := map[Outcome]int{}
	for _, x := range r.Behaviors {
		covered[x.Outcome]++
	}
	fmt.Fprintf(&b, "\nbehaviours: %d pass, %d fail, %d error, %d skip, %d disabled, %d not run (of %d)\n",
		covered[OutcomePass], covered[OutcomeFail], covered[OutcomeError], covered[OutcomeSkip], covered[OutcomeDisabled], covered[OutcomeNotRun], len(r.Behaviors))
	fmt.Fprintf(&b, "specs: %s in %.2fs — %s\n", countsText(r.Counts), r.Seconds, strings.ToUpper(string(r.Result)))
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  PROBLEM: %s\n", p)
	}
	for _, s := range r.Specs {
		if s.Outcome == OutcomeFail || s.Outcome == OutcomeError {
			fmt.Fprintf(&b, "  %s: %s\n    %s\n", strings.ToUpper(string(s.Outcome)), s.Name, s.Reason)
		}
	}
	return b.String()
}
