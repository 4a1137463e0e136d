package suites

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"

	"github.com/zcc-harness/zcc/controller"
)

// The suite runs against the reference controller in both quirk modes —
// every spec must pass on the mode it declares — and, as its own test,
// against deliberately broken variants of it (controller.Defects): each
// must fail at least one spec, or the suite has a hole.
var defectRuns = func() []string {
	var names []string
	for _, d := range controller.Defects() {
		name := "defect-" + d.String()
		RegisterNamed(name, func() Config {
			cfg := testConfig()
			cfg.Target.Defects = []string{d.String()}
			cfg.FailFast = true
			return cfg
		})
		names = append(names, name)
	}
	return names
}()

var (
	_ = RegisterNamed("zeek42", func() Config {
		cfg := testConfig()
		cfg.Target.Quirks = QuirksZeek42
		return cfg
	})
	_ = RegisterNamed("fixed", func() Config {
		cfg := testConfig()
		cfg.Target.Quirks = QuirksFixed
		return cfg
	})
	// The Management profile (Zeek 5.2+) against the reference
	// controller speaking it.
	_ = RegisterNamed("mgmt", func() Config {
		cfg := testConfig()
		cfg.Profile = "mgmt"
		return cfg
	})
)

// knownDisagreements are specs (registration/text) that the reference
// controller fails where the spec follows the protocol notes and the
// controller does not; each is reported to the controller's owner, with
// the evidence, and removed once fixed. A spec listed here that passes
// fails the test, so the list cannot go stale.
var knownDisagreements = map[string]string{}

// testConfig is DefaultConfig with a longer controller timeout: `go test
// -race ./...` runs packages side by side on a loaded machine, where a
// goroutine can stall for a few hundred milliseconds, and a stall longer
// than the request timeout would turn a success into a timeout.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Timeouts.ControllerRequest = 300 * time.Millisecond
	cfg.Timeouts.ExpirySweep = 50 * time.Millisecond
	cfg.Timeouts.Slack = time.Second
	return cfg
}

// quietT collects Ginkgo's verdict without failing the Go test: the
// broken controllers are supposed to fail specs. The assertions below
// decide.
type quietT struct{ failed bool }

func (q *quietT) Fail() { q.failed = true }

func TestConformanceAndSelfTest(t *testing.T) {
	gomega.RegisterFailHandler(Fail)
	suiteCfg, repCfg := GinkgoConfiguration()
	suiteCfg.FailOnEmpty = true
	if !testing.Verbose() {
		// The broken controllers fail on purpose; keep their reports short.
		repCfg.Succinct = true
	}
	RunSpecs(&quietT{}, "zcc conformance (reference controller and its broken variants)", suiteCfg, repCfg)
	if GinkgoParallelProcess() != 1 {
		return // under ginkgo -p only process 1 holds the aggregated reports
	}

	for _, name := range []string{"zeek42", "fixed", "mgmt"} {
		r, ok := LastReport(name)
		if !ok {
			t.Fatalf("no report for %s", name)
		}
		var bad []string
		for _, s := range r.Specs {
			leaf := strings.TrimPrefix(s.Name, "[It] ")
			why, known := knownDisagreements[name+"/"+leaf]
			failed := s.Outcome == OutcomeFail || s.Outcome == OutcomeError
			switch {
			case failed && known:
				t.Logf("%s: %s fails as reported: %s", name, leaf, why)
			case failed:
				bad = append(bad, fmt.Sprintf("%s: %s — %s", s.Outcome, s.Name, s.Reason))
			case known && s.Outcome == OutcomePass:
				t.Errorf("%s: %q passes now; drop it from knownDisagreements", name, leaf)
			}
		}
		if len(bad) > 0 {
			t.Errorf("the reference controller (%s) must pass every spec:\n  %s", name, strings.Join(bad, "\n  "))
		}
		if r.Counts[string(OutcomePass)] < 40 {
			t.Errorf("%s: only %d specs passed", name, r.Counts[string(OutcomePass)])
		}
	}

	killed := 0
	var survivors []string
	var lines []string
	for _, name := range defectRuns {
		r, ok := LastReport(name)
		if !ok {
			t.Fatalf("no report for %s", name)
		}
		var failing []string
		for _, s := range r.Specs {
			if s.Outcome == OutcomeError {
				t.Errorf("%s: harness error in %q: %s", name, s.Name, s.Reason)
			}
			if s.Outcome == OutcomeFail {
				failing = append(failing, s.Name)
			}
		}
		sort.Strings(failing)
		if len(failing) == 0 {
			survivors = append(survivors, name)
			lines = append(lines, fmt.Sprintf("  %-38s SURVIVED", name))
			continue
		}
		killed++
		lines = append(lines, fmt.Sprintf("  %-38s killed by %d specs, e.g. %q", name, len(failing), failing[0]))
	}
	t.Logf("suite self-test: kill rate %d/%d broken controllers\n%s", killed, len(defectRuns), strings.Join(lines, "\n"))
	fmt.Printf("suite self-test: kill rate %d/%d broken controllers\n", killed, len(defectRuns))
	if len(survivors) > 0 {
		t.Errorf("broken controllers that pass the whole suite (holes in the suite): %v", survivors)
	}
	if len(defectRuns) < 12 {
		t.Errorf("only %d broken variants; the self-test needs at least 12", len(defectRuns))
	}
}
