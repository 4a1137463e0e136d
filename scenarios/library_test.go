package scenarios

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/zcc-harness/zcc/suites"
)

// The library runs against the reference controller in both quirk modes:
// every scenario must pass in the mode it declares (and is skipped with
// the reason in the other). Only scenario specs run here; the suite's own
// specs have their own test in package suites.
var (
	_ = suites.RegisterNamed("zeek42", func() suites.Config {
		cfg := suites.DefaultConfig()
		cfg.Target.Quirks = suites.QuirksZeek42
		return cfg
	})
	_ = suites.RegisterNamed("fixed", func() suites.Config {
		cfg := suites.DefaultConfig()
		cfg.Target.Quirks = suites.QuirksFixed
		return cfg
	})
)

func TestLibraryAgainstReferenceController(t *testing.T) {
	if _, err := Library(); err != nil {
		t.Fatalf("the library does not load:\n%v", err)
	}
	RegisterFailHandler(Fail)
	suiteCfg, repCfg := GinkgoConfiguration()
	suiteCfg.LabelFilter = "scenario"
	suiteCfg.FailOnEmpty = true
	RunSpecs(t, "zcc scenario library (reference controller)", suiteCfg, repCfg)
}
