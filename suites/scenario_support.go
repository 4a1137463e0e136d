package suites

import (
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
