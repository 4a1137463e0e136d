package main

import (
	"context"
	"testing"
	"time"

	"github.com/zcc-harness/zcc/controller"
	"github.com/zcc-harness/zcc/fakeagent"
)

// `zcc client` against the reference controller and a fake agent, as an
// operator would use it.
func TestClientAgainstReferenceController(t *testing.T) {
	ctl, err := controller.Start(context.Background(), controller.Options{
		RequestTimeout: 150 * time.Millisecond,
		SweepInterval:  50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	agent, err := fakeagent.New(fakeagent.Options{Name: "instance-1", Controller: ctl.URL()})
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer agent.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), clientTestWait)
	defer cancel()
	if err := agent.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	addr := ctl.Addr().String()

	runCLI("client", "--controller", addr, "get-instances").check(t, 0, "[]\n", "")

	path := writeFile(t, "cluster.ini", "[instances]\ninstance-1\n\n[worker-01]\ninstance = instance-1\nrole = worker\nport = 5001\n")
	runCLI("client", "--controller", addr, "--reqid", "R1", "set-config", path).check(t, 0, `[
  {
    "data": null,
    "error": "",
    "instance": "instance-1",
    "node": null,
    "reqid": "R1",
    "success": true
  }
]
`, "")
	if cfg := agent.Config(); cfg == nil || len(cfg.Nodes) != 1 || cfg.Nodes[0].Name != "worker-01" {
		t.Errorf("agent configuration %v", cfg)
	}

	runCLI("client", "--controller", addr, "get-instances").check(t, 0, `[
  {
    "addr": "0.0.0.0",
    "name": "instance-1",
    "port": null
  }
]
`, "")

	runCLI("client", "--controller", addr, "--reqid", "T1", "test-timeout", "--with-state").check(t, 0, `{
  "data": null,
  "error": "request timed out",
  "instance": "",
  "node": null,
  "reqid": "T1",
  "success": false
}
`, "response is failure, error string: request timed out\n")

	// An agent that fails its node: zeek-client's failure line, exit 1.
	if err := agent.SetBehaviour(fakeagent.Behaviour{}.With("set_configuration_request", fakeagent.Fail("worker-01", "boom"))); err != nil {
		t.Fatal(err)
	}
	r := runCLI("client", "--controller", addr, "--reqid", "R2", "set-config", path)
	r.check(t, 1, r.stdout, "instance instance-1 failure: node worker-01 failed: boom\n")
}
