// Package container is the suites' container target: every spec gets a
// controller of its own in a Docker container, run with testcontainers-go,
// reached only through a port published on 127.0.0.1, and disrupted as a
// whole when a spec asks for it (restart, pause, kill).
//
// Importing the package registers the target (mode "container") with the
// suites. The image is zcc's own reference controller, built once per
// process from a static zcc binary, unless the configuration names an
// image or a build context (a real controller). Without a Docker engine
// every spec is Skipped with the reason, or is an Error when Docker was
// required (ZCC_REQUIRE_DOCKER=1); never a silent pass.
//
// Ryuk is off (it needs a registry), so the target cleans up itself: each
// spec's container is removed when the spec ends, and Sweep removes what
// this process left behind (call it after RunSpecs).
package container

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strconv"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/suites"
	"github.com/zcc-harness/zcc/suites/container/internal/engine"
)

func init() { suites.RegisterTarget(suites.TargetContainer, New) }

// zccReadyLog is the line zcc's controller logs once it listens.
const zccReadyLog = `controller is live`

// New is the container TargetFactory: it checks the Docker engine (once
// per process) and makes the image ready (built once per process, or
// checked to exist).
func New(cfg suites.Config) (suites.Target, error) {
	return newTarget(cfg, engine.Health, resolveImage)
}

// newTarget is New with the engine check and the image step injected, so
// tests can decide them.
func newTarget(cfg suites.Config, health func() error, image func(suites.ContainerConfig) (string, error)) (suites.Target, error) {
	if err := dockerVerdict(health(), cfg.Target.Container.RequireDocker); err != nil {
		return nil, err
	}
	t, err := newTargetSettings(cfg)
	if err != nil {
		return nil, err
	}
	if t.image, err = image(cfg.Target.Container); err != nil {
		return nil, fmt.Errorf("container image: %w", err)
	}
	return t, nil
}

// dockerVerdict turns the engine check into the target's answer: nothing
// when the engine is healthy; ErrTargetUnavailable (every spec Skipped)
// when it is not; a plain error (every spec an Error) when Docker was
// required.
func dockerVerdict(healthErr error, required bool) error {
	if healthErr == nil {
		return nil
	}
	if required {
		return fmt.Errorf("no Docker engine, and Docker is required (require_docker, ZCC_REQUIRE_DOCKER=1): %w", healthErr)
	}
	return fmt.Errorf("%w: no Docker engine, so no controller container (set ZCC_REQUIRE_DOCKER=1 to make this an error): %v", suites.ErrTargetUnavailable, healthErr)
}

// target starts one controller container per spec.
type target struct {
	cfg      suites.Config
	profile  *api.Profile
	image    string
	port     uint16         // the WebSocket port inside the container
	zccImage bool           // no command configured: zcc's entrypoint and variables
	readyLog *regexp.Regexp // nil: protocol probe only
}

// newTargetSettings derives what every container of the run shares.
func newTargetSettings(cfg suites.Config) (*target, error) {
	p, err := api.Lookup(cfg.Profile)
	if err != nil {
		return nil, err
	}
	cc := cfg.Target.Container
	t := &target{cfg: cfg, profile: p, port: p.DefaultPort, zccImage: len(cc.Command) == 0}
	if cc.Port != "" {
		if t.port, err = suites.ContainerPortNumber(cc.Port); err != nil {
			return nil, fmt.Errorf("target.container.port: %w", err)
		}
	}
	ready := cc.ReadyLog
	if ready == "" && t.zccImage {
		ready = zccReadyLog
	}
	if ready != "" {
		if t.readyLog, err = regexp.Compile(ready); err != nil {
			return nil, fmt.Errorf("target.container.ready_log: %w", err)
		}
	}
	return t, nil
}

func (t *target) Name() string { return suites.TargetContainer }

func (t *target) Capabilities() suites.Capabilities {
	return suites.Capabilities{Fresh: true, Faults: true, HostLoopbackUnreachable: true}
}

// containerPort is the controller's port as Docker names it.
func (t *target) containerPort() string { return strconv.Itoa(int(t.port)) + "/tcp" }

// command is the container's command: for zcc's image, the quirk mode the
// run declares and debug logs (attached to failed specs); otherwise the
// configured command, verbatim.
func (t *target) command() []string {
	if t.zccImage {
		return []string{"--mode", t.cfg.Target.Quirks, "--log-level", "debug"}
	}
	return t.cfg.Target.Container.Command
}

// env is the container's environment. The controller's timings are pushed
// in through zcc's variables so timeout specs take about a second (a real
// controller takes them from its command instead); for zcc's image Zeek's
// ZEEK_CONTROLLER_* variables make it listen on the container's interfaces
// at the configured port. Configured variables win.
func (t *target) env(spec suites.SpecInfo) map[string]string {
	env := map[string]string{
		"ZCC_REQUEST_TIMEOUT": t.cfg.Timeouts.ControllerRequest.String(),
		"ZCC_SWEEP_INTERVAL":  t.cfg.Timeouts.ExpirySweep.String(),
	}
	if t.zccImage {
		env["ZEEK_CONTROLLER_NAME"] = "controller-" + spec.Prefix
		env["ZEEK_CONTROLLER_ADDR"] = "0.0.0.0"
		env["ZEEK_CONTROLLER_PORT"] = t.containerPort()
	}
	maps.Copy(env, t.cfg.Target.Container.Env)
	return env
}

// Start runs the spec's controller and returns it once it is ready: its
// ready log line seen (if any) and a get_instances answered over the
// WebSocket, all within timeouts.connect.
func (t *target) Start(ctx context.Context, spec suites.SpecInfo) (suites.Controller, error) {
	var lastErr error
	for attempt := 1; attempt <= maxPortAttempts; attempt++ {
		c, err := t.start(ctx, spec)
		if err == nil {
			return c, nil
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}
