package scenarios

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/zcc-harness/zcc/suites"
)

// The library runs against the reference controller in both quirk modes
// (cc42: every scenario must pass in the mode it declares, and is skipped
// with the reason in the other) and in the Management profile (mgmt). Only scenario specs run here; the suite's own
// specs have their own test in package suites.
var (
	_ = suites.RegisterNamed("zeek42", func() suites.Config { return libraryConfig(suites.QuirksZeek42) })
	_ = suites.RegisterNamed("fixed", func() suites.Config { return libraryConfig(suites.QuirksFixed) })
	_ = suites.RegisterNamed("mgmt", func() suites.Config {
		cfg := libraryConfig(suites.QuirksZeek42)
		cfg.Profile = "mgmt"
		return cfg
	})
)

// libraryConfig is `make conform`'s configuration in a quirk mode; under
// the race detector the controller's timing is stretched threefold, which
// the scenarios' relative durations follow.
func libraryConfig(quirks string) suites.Config {
	cfg := suites.DefaultConfig()
	cfg.Target.Quirks = quirks
	if raceEnabled {
		cfg.Timeouts.ControllerRequest *= 3
		cfg.Timeouts.ExpirySweep *= 3
	}
	return cfg
}

// The worked example of docs/scenarios.md runs too, so the guide cannot
// drift from what passes.
var examplesErr = func() error {
	examples, err := LoadFiles("testdata/examples/agent-failure-without-node.yaml", "testdata/examples/agent-failure-with-node.yaml")
	Define(examples)
	return err
}()

func TestLibraryAgainstReferenceController(t *testing.T) {
	if _, err := Library(); err != nil {
		t.Fatalf("the library does not load:\n%v", err)
	}
	if examplesErr != nil {
		t.Fatalf("the worked example does not load:\n%v", examplesErr)
	}
	RegisterFailHandler(Fail)
	suiteCfg, repCfg := GinkgoConfiguration()
	suiteCfg.LabelFilter = "scenario"
	suiteCfg.FailOnEmpty = true
	RunSpecs(t, "zcc scenario library (reference controller)", suiteCfg, repCfg)
}
