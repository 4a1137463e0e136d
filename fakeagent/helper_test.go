package fakeagent

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"

	"github.com/zcc-harness/zcc/broker"
	"github.com/zcc-harness/zcc/controller"
)

// ControllerHelperEnv, when set, makes the test binary run the reference
// controller instead of tests: the 10,000-agent measurement needs the
// controller in another process (file descriptor limit). It prints
// "URL <ws url>" and serves until its stdin closes.
const ControllerHelperEnv = "ZCC_FAKEAGENT_CONTROLLER_HELPER"

func runControllerHelper() int {
	if p := os.Getenv(ControllerHelperEnv + "_CPUPROFILE"); p != "" {
		if fh, err := os.Create(p); err == nil {
			if pprof.StartCPUProfile(fh) == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A configuration naming 10,000 instances is larger than the Hub's
	// default 1 MiB frame limit.
	ctl, err := controller.Start(ctx, controller.Options{Name: "helper", RequestTimeout: time.Hour, SweepInterval: time.Hour,
		Hub: broker.HubOptions{MaxFrameSize: 64 << 20}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "controller helper:", err)
		return 1
	}
	fmt.Printf("URL %s\n", ctl.URL())
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := ctl.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "controller helper: close:", err)
		return 1
	}
	return 0
}
