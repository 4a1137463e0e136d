package fakeagent_test

// Performance measurements. They report (b.ReportMetric, t.Log) and never
// assert timings. Commands:
//
//	go test -run '^$' -bench 'Fleet1000' -benchtime 3x ./fakeagent/
//	ZCC_FAKEAGENT_10K=1 go test -run TestFleet10kIdleMemory -v -timeout 10m ./fakeagent/

import (
	"bufio"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
	"github.com/zcc-harness/zcc/controller"
	"github.com/zcc-harness/zcc/fakeagent"
)

// controllerHelperEnv makes the test binary run as the controller process
// of TestFleet10kIdleMemory (see TestMain).
const controllerHelperEnv = fakeagent.ControllerHelperEnv

// BenchmarkFleet1000Welcomed: a configuration naming 1,000 connecting
// agents is accepted first; then the fleet starts. Reported: seconds from
// Start until every agent has answered its welcome, and until the client
// has the set_configuration_response (the controller then pushes the
// configuration to all of them).
func BenchmarkFleet1000Welcomed(b *testing.B) {
	const n = 1000
	for i := 0; i < b.N; i++ {
		welcomed, responded := fleetRound(b, n)
		b.ReportMetric(welcomed.Seconds(), "s-to-all-welcomed")
		b.ReportMetric(responded.Seconds(), "s-to-response")
	}
}

func fleetRound(b *testing.B, n int) (welcomed, responded time.Duration) {
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ctl, err := controller.Start(ctx, controller.Options{Name: "bench", RequestTimeout: time.Minute, SweepInterval: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer ctl.Close()
	f, err := fakeagent.NewFleet(fakeagent.FleetOptions{Count: n, NamePattern: "bench-%05d",
		Template: fakeagent.Options{Controller: ctl.URL()}})
	if err != nil {
		b.Fatal(err)
	}
	client, err := broker.Dial(ctx, ctl.URL(), []string{api.CC42.ControllerTopic}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	cfg := api.Configuration{ID: "bench"}
	for _, name := range f.Names() {
		cfg.Instances = append(cfg.Instances, api.Instance{Name: name, Host: netip.IPv4Unspecified()})
	}
	ev, err := api.CC42.Encode(api.SetConfigurationRequest{Reqid: "R-bench", Config: cfg})
	if err != nil {
		b.Fatal(err)
	}
	if err := client.Publish(ctx, api.CC42.ControllerTopic, ev); err != nil {
		b.Fatal(err)
	}
	// The request is accepted once the controller has the instances.
	for len(ctl.Snapshot().Instances) < n {
		select {
		case <-ctl.Logs():
		case <-ctx.Done():
			b.Fatal("configuration not accepted")
		}
	}
	b.StartTimer()
	start := time.Now()
	if err := f.Start(ctx); err != nil {
		b.Fatal(err)
	}
	if err := f.WaitWelcomed(ctx); err != nil {
		b.Fatal(err)
	}
	welcomed = time.Since(start)
	m, err := client.Next(ctx)
	if err != nil {
		b.Fatal(err)
	}
	responded = time.Since(start)
	b.StopTimer()
	rev, _ := m.Event()
	msg, err := api.CC42.Decode(rev)
	if err != nil {
		b.Fatal(err)
	}
	if r, ok := msg.(api.SetConfigurationResponse); !ok || len(r.Results) != n {
		b.Fatalf("response: %T with %d results", msg, len(r.Results))
	}
	f.Stop()
	return welcomed, responded
}

// TestFleet10kIdleMemory measures 10,000 connected, welcomed, idle agents:
// resident memory and goroutines per agent. The controller runs in a child
// process (this test binary, re-executed), because 10,000 agents plus an
// in-process controller would need more than the 20,000 file descriptors
// this machine allows one process. The configuration names the agents and
// one instance that never connects, so every agent is welcomed but the
// controller never pushes the configuration: the agents stay idle.
//
// It only runs with ZCC_FAKEAGENT_10K=1 (it takes about a minute); it
// reports and asserts nothing about the numbers.
func TestFleet10kIdleMemory(t *testing.T) {
	if os.Getenv("ZCC_FAKEAGENT_10K") == "" {
		t.Skip("set ZCC_FAKEAGENT_10K=1 to measure 10,000 idle agents")
	}
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("ZCC_FAKEAGENT_10K")); err == nil && v > 1 {
		n = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	url, stopHelper := startControllerProcess(t, ctx)
	defer stopHelper()

	runtime.GC()
	rss0, g0 := residentBytes(t), runtime.NumGoroutine()

	client, err := broker.Dial(ctx, url, []string{api.CC42.ControllerTopic}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	f, err := fakeagent.NewFleet(fakeagent.FleetOptions{Count: n, NamePattern: "idle-%05d",
		Template: fakeagent.Options{Controller: url}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := api.Configuration{ID: "idle"}
	for _, name := range append(f.Names(), "ghost-never-connects") {
		cfg.Instances = append(cfg.Instances, api.Instance{Name: name, Host: netip.IPv4Unspecified()})
	}
	ev, err := api.CC42.Encode(api.SetConfigurationRequest{Reqid: "R-idle", Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Publish(ctx, api.CC42.ControllerTopic, ev); err != nil {
		t.Fatal(err)
	}
	// A rejected configuration would leave the agents unwelcomed forever:
	// fail at once on an error frame.
	wctx, stopWait := context.WithCancel(ctx)
	defer stopWait()
	go func() {
		select {
		case f, ok := <-client.Errors():
			if ok {
				t.Errorf("controller rejected the configuration: %s: %s", f.Code, f.Context)
				stopWait()
			}
		case <-wctx.Done():
		}
	}()
	start := time.Now()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	if err := f.WaitConnected(wctx); err != nil {
		t.Fatal(err)
	}
	connected := time.Since(start)
	if err := f.WaitWelcomed(wctx); err != nil {
		t.Fatal(err)
	}
	welcomed := time.Since(start)

	runtime.GC()
	debug.FreeOSMemory()
	rss1, g1 := residentBytes(t), runtime.NumGoroutine()
	if p := os.Getenv("ZCC_FAKEAGENT_HEAPPROFILE"); p != "" {
		fh, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(fh); err != nil {
			t.Fatal(err)
		}
		fh.Close()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := f.Status()
	t.Logf("%d agents: all connected after %s, all welcomed after %s (%s)", n, connected.Round(time.Millisecond), welcomed.Round(time.Millisecond), st)
	t.Logf("resident memory: %.1f MiB before, %.1f MiB with the fleet: %.1f MiB for the fleet, %.1f KiB per agent",
		mib(rss0), mib(rss1), mib(rss1-rss0), float64(rss1-rss0)/float64(n)/1024)
	t.Logf("Go heap in use %.1f MiB, stacks %.1f MiB, runtime total from the OS %.1f MiB",
		mib(int64(ms.HeapInuse)), mib(int64(ms.StackInuse)), mib(int64(ms.Sys)))
	t.Logf("goroutines: %d before, %d with the fleet: %.2f per agent", g0, g1, float64(g1-g0)/float64(n))
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// residentBytes reads this process's resident set size.
func residentBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("parse VmRSS %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// startControllerProcess runs the reference controller in a child process
// (see controllerHelperEnv) and returns its URL.
func startControllerProcess(t *testing.T, ctx context.Context) (string, func()) {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), controllerHelperEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("controller process: %v", err)
	}
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "URL ")
	if !ok {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("controller process said %q", line)
	}
	return url, func() {
		_ = stdin.Close() // the helper exits when its stdin closes
		_ = cmd.Wait()
	}
}
