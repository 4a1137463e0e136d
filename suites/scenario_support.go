package suites

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive

	"github.com/zcc-harness/zcc/api"
)

// Helpers for packages that define specs with DefineSpec, such as
// scenarios: the suite's own renderings and its harness-error outcome, so
// their failures read and count like the suite's.

// ResultString renders every field of a Result for failure messages.
func ResultString(r api.Result) string { return resultText(r) }

// ResultsString renders Results, one per line, for failure messages.
func ResultsString(rs []api.Result) string { return resultsText(rs) }

// HarnessError fails the running spec as an Error (the harness or its
// infrastructure failed), not as a conformance failure.
func HarnessError(what string, err error) {
	GinkgoHelper()
	infraError(what, err)
}

// EnsureControllerTimeout gives the spec a controller whose request
// timeout is at least d, for specs whose work takes longer than the run's
// compressed timings allow (a hundred agents to welcome and configure).
// An in-process controller is replaced by one with timeout d, before the
// spec has dialled it; on targets whose timing is fixed by whoever runs
// the controller the spec is Skipped with the reason. Call it first thing
// in the spec body.
func (e *Env) EnsureControllerTimeout(d time.Duration) {
	GinkgoHelper()
	t := e.Cfg.Timeouts
	if t.ControllerRequest >= d {
		return
	}
	in, ok := e.target.(*inprocTarget)
	if !ok {
		Skip(fmt.Sprintf("needs a controller request timeout of at least %s; the %s target's is %s (set --timeout-controller-request to match the controller)", d, e.target.Name(), t.ControllerRequest))
	}
	e.mu.Lock()
	used := e.client != nil || len(e.agents) > 0 || len(e.watches) > 0
	e.mu.Unlock()
	if used {
		infraError("retime the controller", fmt.Errorf("the spec already talks to it"))
	}
	_, oldLatest := t.TimeoutWindow()
	t.ControllerRequest = d
	if _, latest := t.TimeoutWindow(); t.ResponseWait < latest+(t.ResponseWait-oldLatest) {
		t.ResponseWait = latest + (t.ResponseWait - oldLatest)
	}
	retimed := *in // keeps whatever else the target carries (defects, …)
	retimed.cfg.Timeouts = t
	ctrl, err := retimed.Start(e.Ctx, SpecInfo{Text: CurrentSpecReport().LeafNodeText, Prefix: e.prefix})
	if err != nil {
		infraError("start a controller with a "+d.String()+" request timeout", err)
	}
	if err := e.Ctrl.Release(); err != nil {
		fmt.Fprintf(GinkgoWriter, "release controller: %v\n", err)
	}
	e.Ctrl = ctrl
	e.Cfg.Timeouts = t
	DeferCleanup(func() {
		if err := ctrl.Release(); err != nil {
			fmt.Fprintf(GinkgoWriter, "release controller: %v\n", err)
		}
	})
}
