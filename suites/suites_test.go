package suites

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// The suite runs against the reference controller in both quirk modes:
// every spec must pass on the mode it declares.
var (
	_ = RegisterNamed("zeek42", func() Config {
		cfg := DefaultConfig()
		cfg.Target.Quirks = QuirksZeek42
		return cfg
	})
	_ = RegisterNamed("fixed", func() Config {
		cfg := DefaultConfig()
		cfg.Target.Quirks = QuirksFixed
		return cfg
	})
)

func TestConformanceAgainstReferenceController(t *testing.T) {
	RegisterFailHandler(Fail)
	suiteCfg, repCfg := GinkgoConfiguration()
	suiteCfg.FailOnEmpty = true
	RunSpecs(t, "zcc conformance (reference controller)", suiteCfg, repCfg)
}
