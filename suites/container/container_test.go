package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	dclient "github.com/moby/moby/client"

	"github.com/zcc-harness/zcc/suites"
	"github.com/zcc-harness/zcc/suites/container/internal/engine"
)

// testImage is the image the tests build from the module's zcc; a tag of
// its own, so a concurrent `zcc conform` (zcc:conform) is not disturbed.
const testImage = "zcc:test"

// The container suite: every cc42 spec and the controller fault specs
// against zcc's image. Without ZCC_CONTAINER_TESTS=1 only a smoke subset
// runs (one spec per pair plus the three faults), to keep `make test`
// short; .ci/run sets it.
var containerCfg suites.Config

var _ = suites.RegisterNamed("container", func() suites.Config { return containerCfg })

const smokeFilter = "fault:controller-restart || fault:controller-pause || fault:controller-kill || " +
	"behavior:get-instances.after-config || behavior:set-config.one-fails || behavior:test-timeout.stateful || " +
	"behavior:transport.malformed-frame || behavior:set-config.listening-agent"

func TestMain(m *testing.M) {
	code := m.Run()
	if zccBinary.dir != "" {
		_ = os.RemoveAll(zccBinary.dir)
	}
	os.Exit(code)
}

func TestContainerSuite(t *testing.T) {
	full := os.Getenv("ZCC_CONTAINER_TESTS") == "1"
	required, _ := strconv.ParseBool(os.Getenv("ZCC_REQUIRE_DOCKER"))
	healthy := engine.Health() == nil

	cfg := suites.DefaultConfig()
	cfg.Target.Mode = suites.TargetContainer
	cfg.Target.Container.RequireDocker = required
	// The restart spec's fault must land while a request is pending: a
	// request timeout of 500 ms leaves room for a loaded machine (make
	// test runs packages in parallel) where 100 ms would be a race.
	cfg.Timeouts.ControllerRequest = 500 * time.Millisecond
	cfg.Timeouts.ExpirySweep = 50 * time.Millisecond
	if healthy {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		bin, err := buildZCC(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := BuildImage(ctx, bin, testImage); err != nil {
			t.Fatal(err)
		}
		cfg.Target.Container.Image = testImage
	}
	containerCfg = cfg

	RegisterFailHandler(Fail)
	suiteCfg, repCfg := GinkgoConfiguration()
	suiteCfg.FailOnEmpty = true
	if !full {
		suiteCfg.LabelFilter = smokeFilter
	}
	RunSpecs(t, "zcc conformance (container target)", suiteCfg, repCfg)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := Sweep(ctx)
	if err != nil {
		t.Errorf("sweep: %v", err)
	}
	if n != 0 {
		t.Errorf("sweep removed %d containers: a spec did not release its controller", n)
	}

	rep, ok := suites.LastReport("container")
	if !ok {
		t.Fatal("no report for the container registration")
	}
	byOutcome := map[suites.Outcome][]string{}
	for _, s := range rep.Specs {
		byOutcome[s.Outcome] = append(byOutcome[s.Outcome], s.Name+": "+s.Reason)
	}
	for _, bad := range []suites.Outcome{suites.OutcomeFail, suites.OutcomeError} {
		if len(byOutcome[bad]) > 0 {
			t.Errorf("%d specs %s:\n  %s", len(byOutcome[bad]), bad, strings.Join(byOutcome[bad], "\n  "))
		}
	}
	if !healthy {
		if len(byOutcome[suites.OutcomeSkip]) != len(rep.Specs) {
			t.Errorf("without Docker every spec must be Skipped: %v", byOutcome)
		}
		t.Logf("no Docker engine: %d container specs Skipped", len(rep.Specs))
		return
	}
	passed := map[string]bool{}
	for _, s := range rep.Specs {
		if s.Outcome == suites.OutcomePass {
			for _, b := range s.Behaviors {
				passed[b] = true
			}
		}
	}
	for _, b := range []string{"fault.controller-restart", "fault.controller-pause", "fault.controller-kill", "get-instances.after-config", "set-config.one-fails"} {
		if !passed[b] {
			t.Errorf("behaviour %s did not pass against the container", b)
		}
	}
	for _, s := range rep.Specs {
		if s.Outcome == suites.OutcomeSkip && !strings.Contains(s.Reason, "127.0.0.1") && !strings.Contains(s.Reason, "in-process") {
			t.Errorf("unexpected Skip of %q: %s", s.Name, s.Reason)
		}
	}
	t.Logf("container suite: %d specs, %v in %.1fs", len(rep.Specs), rep.Counts, rep.Seconds)
}

// --- the no-Docker decision -------------------------------------------------

func TestDockerVerdict(t *testing.T) {
	cause := errors.New("Cannot connect to the Docker daemon at unix:///var/run/docker.sock")
	if err := dockerVerdict(nil, true); err != nil {
		t.Errorf("healthy engine: %v", err)
	}
	skip := dockerVerdict(cause, false)
	if !errors.Is(skip, suites.ErrTargetUnavailable) {
		t.Errorf("missing engine, not required: %v does not wrap ErrTargetUnavailable (so specs would not Skip)", skip)
	}
	for _, want := range []string{"no Docker engine", "Cannot connect", "ZCC_REQUIRE_DOCKER=1"} {
		if !strings.Contains(fmt.Sprint(skip), want) {
			t.Errorf("skip reason %q lacks %q", skip, want)
		}
	}
	req := dockerVerdict(cause, true)
	if req == nil || errors.Is(req, suites.ErrTargetUnavailable) {
		t.Errorf("missing engine, required: %v must be a plain error (an Error outcome), not a Skip", req)
	}
	if !errors.Is(req, cause) || !strings.Contains(req.Error(), "required") {
		t.Errorf("required error %q must name the requirement and wrap the cause", req)
	}
}

func TestNewTargetWithFailingProbe(t *testing.T) {
	down := func() error { return errors.New("simulated: no engine") }
	imageCalled := false
	image := func(suites.ContainerConfig) (string, error) { imageCalled = true; return "x", nil }
	cfg := suites.DefaultConfig()
	cfg.Target.Mode = suites.TargetContainer

	_, err := newTarget(cfg, down, image)
	if !errors.Is(err, suites.ErrTargetUnavailable) || !strings.Contains(err.Error(), "simulated: no engine") {
		t.Errorf("not required: %v", err)
	}
	cfg.Target.Container.RequireDocker = true
	_, err = newTarget(cfg, down, image)
	if err == nil || errors.Is(err, suites.ErrTargetUnavailable) {
		t.Errorf("required: %v", err)
	}
	if imageCalled {
		t.Error("the image was resolved although there is no engine")
	}

	up := func() error { return nil }
	_, err = newTarget(cfg, up, func(suites.ContainerConfig) (string, error) { return "", errors.New("no such image") })
	if err == nil || errors.Is(err, suites.ErrTargetUnavailable) || !strings.Contains(err.Error(), "no such image") {
		t.Errorf("a missing image must be an Error naming the cause: %v", err)
	}
	tg, err := newTarget(cfg, up, image)
	if err != nil {
		t.Fatal(err)
	}
	caps := tg.Capabilities()
	if !caps.Fresh || !caps.Faults || caps.Observer || !caps.HostLoopbackUnreachable || tg.Name() != suites.TargetContainer {
		t.Errorf("capabilities %+v, name %s", caps, tg.Name())
	}
}

func TestTargetSettings(t *testing.T) {
	cfg := suites.DefaultConfig()
	cfg.Target.Mode = suites.TargetContainer
	cfg.Target.Quirks = suites.QuirksFixed
	cfg.Timeouts.ControllerRequest = 700 * time.Millisecond
	cfg.Timeouts.ExpirySweep = 50 * time.Millisecond
	tg, err := newTargetSettings(cfg)
	if err != nil {
		t.Fatal(err)
	}
	spec := suites.SpecInfo{Prefix: "z1s0001"}
	env := tg.env(spec)
	for k, want := range map[string]string{
		"ZCC_REQUEST_TIMEOUT":  "700ms",
		"ZCC_SWEEP_INTERVAL":   "50ms",
		"ZEEK_CONTROLLER_ADDR": "0.0.0.0",
		"ZEEK_CONTROLLER_PORT": "2150/tcp",
		"ZEEK_CONTROLLER_NAME": "controller-z1s0001",
	} {
		if env[k] != want {
			t.Errorf("zcc image env %s = %q, want %q", k, env[k], want)
		}
	}
	if got := strings.Join(tg.command(), " "); got != "--mode fixed --log-level debug" {
		t.Errorf("zcc image command %q", got)
	}
	if tg.readyLog == nil || !tg.readyLog.MatchString(`level=INFO msg="controller is live" url=ws://[::]:2150/v1/messages/json`) {
		t.Errorf("zcc image ready log %v", tg.readyLog)
	}

	// A real controller: its command, its port, its variables; no ready
	// line unless configured.
	cfg.Profile = "mgmt"
	cfg.Target.Container.Command = []string{"zeek", "-j", "policy/frameworks/management/controller"}
	cfg.Target.Container.Env = map[string]string{"ZCC_REQUEST_TIMEOUT": "1s", "ZEEK_MANAGEMENT_TESTING": "1"}
	tg, err = newTargetSettings(cfg)
	if err != nil {
		t.Fatal(err)
	}
	env = tg.env(spec)
	if tg.port != 2149 || tg.containerPort() != "2149/tcp" {
		t.Errorf("mgmt default port %d", tg.port)
	}
	if _, set := env["ZEEK_CONTROLLER_ADDR"]; set {
		t.Error("a configured command gets no zcc listen variables")
	}
	if env["ZCC_REQUEST_TIMEOUT"] != "1s" || env["ZEEK_MANAGEMENT_TESTING"] != "1" {
		t.Errorf("configured variables must win: %v", env)
	}
	if got := strings.Join(tg.command(), " "); got != "zeek -j policy/frameworks/management/controller" {
		t.Errorf("command %q", got)
	}
	if tg.readyLog != nil {
		t.Errorf("ready log %v without configuration", tg.readyLog)
	}
	cfg.Target.Container.Port = "2151"
	cfg.Target.Container.ReadyLog = `listening on`
	if tg, err = newTargetSettings(cfg); err != nil || tg.port != 2151 || tg.readyLog.String() != "listening on" {
		t.Errorf("configured port/ready log: %+v, %v", tg, err)
	}
	cfg.Target.Container.Port = "2151/udp"
	if _, err := newTargetSettings(cfg); err == nil || !strings.Contains(err.Error(), "TCP") {
		t.Errorf("udp port: %v", err)
	}
}

func TestConfigValidatesContainerSettings(t *testing.T) {
	cfg := suites.DefaultConfig()
	cfg.Target.Mode = suites.TargetContainer
	cfg.Target.Container.ReadyLog = "live("
	cfg.Target.Container.Port = "http"
	cfg.Target.Container.Image, cfg.Target.Container.Build = "a", "b"
	err := cfg.Validate()
	for _, want := range []string{"target.container.ready_log", "target.container.port", "image or build"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
}

func TestDockerfileMatchesRepository(t *testing.T) {
	repo, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if string(repo) != Dockerfile {
		t.Errorf("the repository's Dockerfile and container.Dockerfile differ; keep them the same text")
	}
}

func TestCheckStatic(t *testing.T) {
	notELF := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkStatic(notELF); err == nil || !strings.Contains(err.Error(), "not a Linux ELF") {
		t.Errorf("shell script: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// go test -race links cgo, so the test binary needs the dynamic loader.
	if raceEnabled {
		if err := checkStatic(exe); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
			t.Errorf("race test binary: %v", err)
		}
	}
	if engine.Health() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := buildZCC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkStatic(bin); err != nil {
		t.Errorf("CGO_ENABLED=0 zcc: %v", err)
	}
}

func TestSplitImage(t *testing.T) {
	for in, want := range map[string][2]string{
		"zcc:dev":                      {"zcc", "dev"},
		"zcc":                          {"zcc", "latest"},
		"localhost:5000/zeek/zeek:8.1": {"localhost:5000/zeek/zeek", "8.1"},
		"localhost:5000/zeek":          {"localhost:5000/zeek", "latest"},
	} {
		if r, tag := splitImage(in); r != want[0] || tag != want[1] {
			t.Errorf("splitImage(%q) = %q, %q", in, r, tag)
		}
	}
}

// TestSweepRemovesLeftovers starts a controller and does not release it,
// as an interrupted spec would: Sweep must remove it.
func TestSweepRemovesLeftovers(t *testing.T) {
	if engine.Health() != nil {
		t.Skip("no Docker engine")
	}
	tg := startableTarget(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ctrl, err := tg.Start(ctx, suites.SpecInfo{Text: "sweep", Prefix: "sweep"})
	if err != nil {
		t.Fatal(err)
	}
	id := ctrl.(*controllerContainer).ctr.GetContainerID()
	n, err := Sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Sweep() = %d, %v; want 1 removed", n, err)
	}
	cli, err := engine.Client()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ContainerInspect(ctx, id, dclient.ContainerInspectOptions{}); err == nil {
		t.Errorf("container %.12s still exists after the sweep", id)
	}
	_ = ctrl.Release() // the container is gone; only marks it released
}

// startableTarget is a container target on zcc's test image.
func startableTarget(tb testing.TB) *target {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := buildZCC(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if err := BuildImage(ctx, bin, testImage); err != nil {
		tb.Fatal(err)
	}
	cfg := suites.DefaultConfig()
	cfg.Target.Mode = suites.TargetContainer
	cfg.Target.Container.Image = testImage
	tg, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return tg.(*target)
}

// zccBinary is zcc built once per test process with CGO_ENABLED=0.
var zccBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func buildZCC(ctx context.Context) (string, error) {
	zccBinary.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		if zccBinary.dir, err = os.MkdirTemp("", "zcc-container-test-"); err != nil {
			zccBinary.err = err
			return
		}
		zccBinary.path = filepath.Join(zccBinary.dir, "zcc")
		cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-o", zccBinary.path, "github.com/zcc-harness/zcc/cmd/zcc")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			zccBinary.err = fmt.Errorf("go build zcc: %w\n%s", err, out)
		}
	})
	return zccBinary.path, zccBinary.err
}

// The example configurations in docs/examples load and validate.
func TestExampleConfigs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "docs", "examples", "container-*.yaml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("example configs: %v, %v", files, err)
	}
	for _, f := range files {
		cfg, err := suites.LoadConfig(f, nil, nil)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if cfg.Target.Mode != suites.TargetContainer || cfg.Target.Container.Image == "" {
			t.Errorf("%s: not a container configuration: %+v", f, cfg.Target)
		}
		if _, err := newTargetSettings(cfg); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
