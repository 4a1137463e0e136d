package suites

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/client"
	"github.com/zcc-harness/zcc/controller"
)

// Target is where the suite finds controllers. The same specs run against
// every target; only what they may observe or break differs, as declared
// by Capabilities.
type Target interface {
	// Name is the target mode: inproc, external, container.
	Name() string
	// Capabilities says what the target's controllers offer.
	Capabilities() Capabilities
	// Start returns the controller one spec talks to. A target with
	// Capabilities().Fresh starts a new one per spec; others return a
	// shared one. The spec calls Release when it ends.
	Start(ctx context.Context, spec SpecInfo) (Controller, error)
}

// Capabilities are what a target's controllers let specs do.
type Capabilities struct {
	// Fresh: every spec gets a controller of its own, so specs may observe
	// a controller that never saw a configuration, or leave it broken.
	Fresh bool
	// Observer: controllers implement Observable.
	Observer bool
	// Faults: controllers implement FaultInjector.
	Faults bool
	// HostLoopbackUnreachable: the controller runs where the test host's
	// 127.0.0.1 is not its own (a container), so it cannot dial fake agents
	// listening there; specs of listening agents are Skipped.
	HostLoopbackUnreachable bool
}

// ErrTargetUnavailable is wrapped by a TargetFactory's error when the
// target cannot run on this machine at all (the container target without
// a Docker engine): every spec is then Skipped with the error as reason,
// instead of failing as a harness Error. A target that was required (for
// example with ZCC_REQUIRE_DOCKER=1) returns a plain error instead.
var ErrTargetUnavailable = errors.New("target unavailable")

// SpecInfo identifies the spec a controller is started for.
type SpecInfo struct {
	Text   string
	Prefix string // the spec's unique name prefix
}

// Controller is one controller under test.
type Controller interface {
	// URL is the controller's WebSocket endpoint.
	URL() string
	// Logs returns what the controller logged so far (may be empty), for
	// attaching to failed specs.
	Logs() string
	// Release ends the spec's use of the controller (stops a per-spec one).
	Release() error
}

// Observable controllers expose their inside to specs that need it.
type Observable interface {
	// AgentsReady delivers every notify_agents_ready the controller raises.
	AgentsReady() <-chan api.NotifyAgentsReady
}

// FaultInjector controllers can be disrupted as a whole.
type FaultInjector interface {
	Restart(ctx context.Context) error
	Pause(ctx context.Context) error
	Unpause(ctx context.Context) error
	Kill(ctx context.Context) error
	Start(ctx context.Context) error
}

// TargetFactory creates a target from a config; targets outside this
// package (container) register one with RegisterTarget.
type TargetFactory func(cfg Config) (Target, error)

var targetFactories = map[string]TargetFactory{
	TargetInproc:   func(cfg Config) (Target, error) { return &inprocTarget{cfg: cfg}, nil },
	TargetExternal: newExternalTarget,
}

var factoriesMu sync.Mutex

// RegisterTarget makes a target mode available (the container target
// registers itself this way, so the core suite does not need Docker's
// client libraries).
func RegisterTarget(mode string, f TargetFactory) {
	factoriesMu.Lock()
	defer factoriesMu.Unlock()
	targetFactories[mode] = f
}

// NewTarget creates the target cfg asks for.
func NewTarget(cfg Config) (Target, error) {
	factoriesMu.Lock()
	f, ok := targetFactories[cfg.Target.Mode]
	var known []string
	for k := range targetFactories {
		known = append(known, k)
	}
	factoriesMu.Unlock()
	if !ok {
		sort.Strings(known)
		hint := ""
		if cfg.Target.Mode == TargetContainer {
			hint = " (import github.com/zcc-harness/zcc/suites/container to enable it)"
		}
		return nil, fmt.Errorf("target mode %q is not available%s; available: %s", cfg.Target.Mode, hint, strings.Join(known, ", "))
	}
	return f(cfg)
}

// --- inproc ---------------------------------------------------------------

// inprocTarget starts the reference controller in this process for every
// spec, with the config's timings and quirk mode.
type inprocTarget struct {
	cfg Config
	// mgmt overrides the reference controller's Management settings for
	// specs that need another controller setup (auto-assignment off).
	mgmt controller.MgmtConfig
}

func (t *inprocTarget) Name() string { return TargetInproc }

func (t *inprocTarget) Capabilities() Capabilities {
	return Capabilities{Fresh: true, Observer: true}
}

func (t *inprocTarget) Start(ctx context.Context, spec SpecInfo) (Controller, error) {
	mode, err := controller.ParseMode(t.cfg.Target.Quirks)
	if err != nil {
		return nil, err
	}
	profile, err := api.Lookup(t.cfg.Profile)
	if err != nil {
		return nil, err
	}
	logs := &syncBuffer{}
	opts := controller.Options{
		Name:           "controller-" + spec.Prefix,
		Profile:        profile,
		Mgmt:           t.mgmt,
		Mode:           mode,
		RequestTimeout: t.cfg.Timeouts.ControllerRequest,
		SweepInterval:  t.cfg.Timeouts.ExpirySweep,
		ConnectRetry:   50 * time.Millisecond,
		Logger:         slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, name := range t.cfg.Target.Defects {
		d, err := controller.ParseDefect(name)
		if err != nil {
			return nil, err
		}
		opts.Defects = append(opts.Defects, d)
	}
	c, err := controller.Start(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("start the reference controller: %w", err)
	}
	return &inprocController{c: c, logs: logs}, nil
}

type inprocController struct {
	c    *controller.Controller
	logs *syncBuffer
}

func (c *inprocController) URL() string                               { return c.c.URL() }
func (c *inprocController) Logs() string                              { return c.logs.String() }
func (c *inprocController) Release() error                            { return c.c.Close() }
func (c *inprocController) AgentsReady() <-chan api.NotifyAgentsReady { return c.c.AgentsReady() }

// syncBuffer is a bytes.Buffer safe for the controller's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// --- external -------------------------------------------------------------

// externalTarget is a controller someone else runs. Its state is shared by
// all specs, so specs that need a pristine or breakable controller are
// skipped, and the others use unique names and leave nothing pending.
type externalTarget struct {
	url string
}

func newExternalTarget(cfg Config) (Target, error) {
	p, err := api.Lookup(cfg.Profile)
	if err != nil {
		return nil, err
	}
	u, err := client.ControllerURL(cfg.Target.URL, p.DefaultPort)
	if err != nil {
		return nil, fmt.Errorf("target.url: %w", err)
	}
	return &externalTarget{url: u}, nil
}

func (t *externalTarget) Name() string               { return TargetExternal }
func (t *externalTarget) Capabilities() Capabilities { return Capabilities{} }

func (t *externalTarget) Start(ctx context.Context, spec SpecInfo) (Controller, error) {
	return externalController{url: t.url}, nil
}

type externalController struct{ url string }

func (c externalController) URL() string    { return c.url }
func (c externalController) Logs() string   { return "" }
func (c externalController) Release() error { return nil }
