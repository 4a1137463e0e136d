package suites

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/zcc-harness/zcc/suites/catalog"
)

func ginkgoSpec(text string, state types.SpecState, msg string, labels []string, entries ...types.ReportEntry) types.SpecReport {
	return types.SpecReport{
		ContainerHierarchyTexts: []string{"zcc conformance"},
		LeafNodeText:            text,
		LeafNodeType:            types.NodeTypeIt,
		LeafNodeLabels:          labels,
		State:                   state,
		RunTime:                 1500 * time.Millisecond,
		Failure:                 types.Failure{Message: msg},
		ReportEntries:           entries,
	}
}

func entry(name, value string) types.ReportEntry {
	return types.ReportEntry{Name: name, Value: types.WrapEntryValue(value)}
}

func TestSpecOutcomesFromGinkgo(t *testing.T) {
	lb := []string{"pair:get_instances", "behavior:get-instances.no-config"}
	cases := []struct {
		sr      types.SpecReport
		ok      bool
		outcome Outcome
		reason  string
	}{
		{ginkgoSpec("p", types.SpecStatePassed, "", lb), true, OutcomePass, ""},
		{ginkgoSpec("f", types.SpecStateFailed, "Result differs:\ngot x", lb), true, OutcomeFail, "Result differs:"},
		{ginkgoSpec("e", types.SpecStateFailed, "harness error", lb, entry(entryOutcome, "error"), entry(entryReason, "connect: refused")), true, OutcomeError, "connect: refused"},
		{ginkgoSpec("s", types.SpecStateSkipped, "the target does not claim x", lb), true, OutcomeSkip, "the target does not claim x"},
		{ginkgoSpec("d", types.SpecStateSkipped, "disabled by configuration: x", lb, entry(entryOutcome, "disabled")), true, OutcomeDisabled, "disabled by configuration: x"},
		{ginkgoSpec("filtered", types.SpecStateSkipped, "", lb), false, "", ""},
		{ginkgoSpec("t", types.SpecStateTimedout, "", lb), true, OutcomeFail, "spec timed out"},
		{ginkgoSpec("i", types.SpecStateInterrupted, "interrupted by user", lb), true, OutcomeError, "interrupted by user"},
		{ginkgoSpec("x", types.SpecStatePanicked, "boom", lb), true, OutcomeFail, "boom"},
	}
	for _, c := range cases {
		r, ok := specResultFromGinkgo(c.sr)
		if ok != c.ok {
			t.Errorf("%s: selected=%v, want %v", c.sr.LeafNodeText, ok, c.ok)
			continue
		}
		if !ok {
			continue
		}
		if r.Outcome != c.outcome || r.Reason != c.reason {
			t.Errorf("%s: %s %q, want %s %q", c.sr.LeafNodeText, r.Outcome, r.Reason, c.outcome, c.reason)
		}
		if r.Pair != "get_instances" || len(r.Behaviors) != 1 || r.Seconds != 1.5 {
			t.Errorf("%s: labels not parsed: %+v", c.sr.LeafNodeText, r)
		}
	}
}

func TestBuildReportAggregates(t *testing.T) {
	cat, err := catalog.Load("cc42")
	if err != nil {
		t.Fatal(err)
	}
	specs := []SpecResult{
		{Name: "a", Pair: "get_instances", Behaviors: []string{"get-instances.no-config"}, Outcome: OutcomePass, Seconds: 0.1},
		{Name: "b", Pair: "get_instances", Behaviors: []string{"get-instances.after-config"}, Outcome: OutcomeFail, Reason: "Results differ", Seconds: 0.2},
		{Name: "c", Pair: "set_configuration", Behaviors: []string{"set-config.listening-agent"}, Outcome: OutcomeSkip, Reason: "the target does not claim set-config.listening-agent"},
		{Name: "d", Pair: "set_configuration", Behaviors: []string{"get-instances.no-config", "no.such-behaviour"}, Outcome: OutcomeError, Reason: "connect: refused"},
	}
	r := BuildReport(DefaultConfig(), TargetIdentity{Mode: "inproc", Quirks: "zeek42", Version: "zcc"}, time.Unix(0, 0), 2*time.Second, specs, cat)
	if r.Result != OutcomeFail {
		t.Errorf("result %s, want fail (fail outranks error)", r.Result)
	}
	if r.Counts["pass"] != 1 || r.Counts["fail"] != 1 || r.Counts["skip"] != 1 || r.Counts["error"] != 1 {
		t.Errorf("counts %v", r.Counts)
	}
	if len(r.Behaviors) != len(cat) {
		t.Fatalf("%d behaviours in the report, the catalogue has %d", len(r.Behaviors), len(cat))
	}
	by := map[string]BehaviorResult{}
	for _, b := range r.Behaviors {
		by[b.ID] = b
	}
	if by["get-instances.no-config"].Outcome != OutcomeError || by["get-instances.no-config"].Reason != "connect: refused" {
		t.Errorf("no-config: %+v (error outranks pass)", by["get-instances.no-config"])
	}
	if by["set-config.listening-agent"].Outcome != OutcomeSkip {
		t.Errorf("listening-agent: %+v", by["set-config.listening-agent"])
	}
	if by["quirk.peer-loss"].Outcome != OutcomeNotRun {
		t.Errorf("uncovered behaviour: %+v", by["quirk.peer-loss"])
	}
	if len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "no.such-behaviour") {
		t.Errorf("problems %v", r.Problems)
	}
	if len(r.Pairs) != 2 || r.Pairs[0].Pair != "get_instances" || r.Pairs[0].Outcome != OutcomeFail || r.Pairs[1].Outcome != OutcomeError {
		t.Errorf("pairs %+v", r.Pairs)
	}

	dir := t.TempDir()
	if err := r.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "conformance-report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back ConformanceReport
	if err := json.Unmarshal(raw, &back); err != nil || back.Result != OutcomeFail || len(back.Specs) != 4 {
		t.Fatalf("json report: %v %+v", err, back.Result)
	}
	for _, f := range []string{"conformance-report.yaml", "conformance-report.md"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	md := r.Markdown()
	for _, want := range []string{"# zcc conformance report — FAIL", "| get_instances | fail | 1 pass, 1 fail |", "| quirk.peer-loss | not-run |", "ack | endpoint ``, version `zcc`"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	if s := r.SummaryTable(); !strings.Contains(s, "FAIL: b") || !strings.Contains(s, "ERROR: d") {
		t.Errorf("summary table:\n%s", s)
	}
}

func TestEmptySelectionIsAnError(t *testing.T) {
	cat, _ := catalog.Load("cc42")
	r := BuildReport(DefaultConfig(), TargetIdentity{}, time.Now(), 0, nil, cat)
	if r.Result != OutcomeError || len(r.Problems) == 0 {
		t.Fatalf("empty run: %s %v", r.Result, r.Problems)
	}
}

func TestAllSkippedIsNoPass(t *testing.T) {
	cat, _ := catalog.Load("cc42")
	specs := []SpecResult{
		{Name: "a", Pair: "get_instances", Outcome: OutcomeSkip, Reason: "no Docker engine"},
		{Name: "b", Pair: "get_instances", Outcome: OutcomeDisabled},
	}
	r := BuildReport(DefaultConfig(), TargetIdentity{}, time.Now(), 0, specs, cat)
	if r.Result != OutcomeSkip || len(r.Problems) == 0 {
		t.Fatalf("all skipped: result %s, problems %v", r.Result, r.Problems)
	}
}

func TestConfigLayering(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "zcc.yaml")
	if err := os.WriteFile(path, []byte("target:\n  mode: external\n  url: 127.0.0.1:2150\ntimeouts:\n  controller_request: 10s\n  expiry_sweep: 10s\n  response_wait: 30s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"ZCC_TIMEOUT_CONTROLLER_REQUEST": "12s", "ZCC_QUIRKS": "fixed"}
	cfg, err := LoadConfig(path, func(k string) string { return env[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Target.Mode != "external" || cfg.Timeouts.ControllerRequest != 12*time.Second || cfg.Timeouts.ExpirySweep != 10*time.Second || cfg.Target.Quirks != "fixed" {
		t.Errorf("layered config wrong: %+v", cfg)
	}
	if err := os.WriteFile(path, []byte("target:\n  mdoe: external\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path, nil, nil); err == nil || !strings.Contains(err.Error(), "mdoe") || !strings.Contains(err.Error(), "2:") {
		t.Errorf("unknown key error = %v, want it to name the key and line", err)
	}
	bad := DefaultConfig()
	bad.Target.Mode = "external"
	bad.Timeouts.ResponseWait = time.Millisecond
	err = bad.Validate()
	for _, want := range []string{"needs target.url", "response_wait"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	if _, err := ApplyEnv(DefaultConfig(), func(k string) string {
		if k == "ZCC_TIMEOUT_HELLO" {
			return "soon"
		}
		return ""
	}); err == nil || !strings.Contains(err.Error(), "ZCC_TIMEOUT_HELLO") {
		t.Errorf("bad env duration: %v", err)
	}
}
