// Package nodocker runs the container target on a machine that seems to
// have no Docker engine (the engine probe is replaced), through the real
// suites: every spec must be Skipped with the reason, or be an Error when
// Docker is required. It is a package of its own because Ginkgo's RunSpecs
// runs once per test binary.
package nodocker

import (
	"context"
	"errors"
	"strings"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/zcc-harness/zcc/suites"
	"github.com/zcc-harness/zcc/suites/container"
	"github.com/zcc-harness/zcc/suites/container/internal/engine"
)

const simulated = "simulated: Cannot connect to the Docker daemon"

func containerConfig(required bool) func() suites.Config {
	return func() suites.Config {
		cfg := suites.DefaultConfig()
		cfg.Target.Mode = suites.TargetContainer
		cfg.Target.Container.RequireDocker = required
		return cfg
	}
}

var (
	_ = suites.RegisterNamed("optional", containerConfig(false))
	_ = suites.RegisterNamed("required", containerConfig(true))
)

// recordingT stands in for testing.T under RunSpecs: the required
// registration's Errors are the expected outcome here, so they must not
// fail the Go test by themselves; the report is checked instead.
type recordingT struct{ failed bool }

func (r *recordingT) Fail() { r.failed = true }

func TestWithoutDocker(t *testing.T) {
	engine.Probe = func(context.Context) error { return errors.New(simulated) }

	RegisterFailHandler(Fail)
	suiteCfg, repCfg := GinkgoConfiguration()
	suiteCfg.FailOnEmpty = true
	suiteCfg.LabelFilter = "pair:get_instances || fault:controller-restart"
	rt := &recordingT{}
	RunSpecs(rt, "container target without Docker", suiteCfg, repCfg)
	if !rt.failed {
		t.Error("the run with Docker required passed without an engine")
	}

	opt, ok := suites.LastReport("optional")
	if !ok || len(opt.Specs) == 0 {
		t.Fatal("no report for the optional registration")
	}
	for _, s := range opt.Specs {
		if s.Outcome != suites.OutcomeSkip || !strings.Contains(s.Reason, "no Docker engine") || !strings.Contains(s.Reason, simulated) {
			t.Errorf("optional: %q is %s (%s), want a Skip naming the missing engine", s.Name, s.Outcome, s.Reason)
		}
	}
	if opt.Counts[string(suites.OutcomePass)] != 0 {
		t.Errorf("optional: specs passed without an engine: %v", opt.Counts)
	}

	req, ok := suites.LastReport("required")
	if !ok || len(req.Specs) == 0 {
		t.Fatal("no report for the required registration")
	}
	for _, s := range req.Specs {
		if s.Outcome != suites.OutcomeError || !strings.Contains(s.Reason, "Docker is required") {
			t.Errorf("required: %q is %s (%s), want an Error naming the requirement", s.Name, s.Outcome, s.Reason)
		}
	}
	if req.Result != suites.OutcomeError {
		t.Errorf("required: run result %s, want error", req.Result)
	}

	n, err := container.Sweep(context.Background())
	if n != 0 || err != nil {
		t.Errorf("Sweep() without an engine = %d, %v; want nothing to do", n, err)
	}
}
