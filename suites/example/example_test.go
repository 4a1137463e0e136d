// Package example_test shows how another project runs zcc's conformance
// suite from its own `go test`: one call to suites.Run. Point the config at
// your controller (Target.Mode external and Target.URL, or a container
// image) instead of the in-process reference controller used here.
//
// It also runs under Ginkgo's parallel runner:
//
//	go run github.com/onsi/ginkgo/v2/ginkgo@v2.34.0 -p ./suites/example
package example_test

import (
	"os"
	"testing"

	"github.com/zcc-harness/zcc/suites"
)

func TestControllerConforms(t *testing.T) {
	cfg := suites.DefaultConfig()
	// A real project would say, e.g.:
	//   cfg.Target.Mode = suites.TargetExternal
	//   cfg.Target.URL = "ws://127.0.0.1:2150/v1/messages/json"
	//   cfg.Timeouts.ControllerRequest = 10 * time.Second // what the controller runs with
	//   cfg.Timeouts.ExpirySweep = 10 * time.Second
	//   cfg.Timeouts.ResponseWait = 30 * time.Second
	cfg.Timeouts.ControllerRequest *= 3 // room for a busy `go test -race ./...`
	cfg.ReportDir = t.TempDir()
	if dir := os.Getenv("ZCC_EXAMPLE_REPORT_DIR"); dir != "" {
		cfg.ReportDir = dir
	}
	if !suites.Run(t, cfg) {
		t.Fatal("the controller does not conform; see the report in " + cfg.ReportDir)
	}
}
