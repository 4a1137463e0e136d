// Package engine is the container target's one door to the Docker engine:
// it applies this project's testcontainers defaults (Ryuk off, traffic on
// 127.0.0.1), probes the engine's health once per process, and hands out
// one shared Docker client. Tests replace Probe to simulate a machine
// without an engine.
package engine

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
)

// Defaults are the testcontainers settings the harness needs unless the
// environment says otherwise: Ryuk needs a registry pull (none is reachable
// on the project's machines) and, inside a container, testcontainers would
// report the bridge gateway as the host instead of the loopback ports the
// harness publishes.
var Defaults = map[string]string{
	"TESTCONTAINERS_RYUK_DISABLED": "true",
	"TESTCONTAINERS_HOST_OVERRIDE": "127.0.0.1",
}

var defaultsOnce sync.Once

// ApplyDefaults sets each of Defaults that the environment does not set.
// testcontainers reads its configuration once, so this runs before any of
// its calls.
func ApplyDefaults() {
	defaultsOnce.Do(func() {
		for k, v := range Defaults {
			if _, set := os.LookupEnv(k); !set {
				_ = os.Setenv(k, v)
			}
		}
	})
}

// Logger is where testcontainers' own chatter goes: nowhere. Readiness,
// logs and errors are reported by the harness itself.
var Logger = tclog.NewNoopLogger()

// ProbeTimeout bounds the health probe.
const ProbeTimeout = 15 * time.Second

// Probe reports whether a Docker engine answers. It is a variable so tests
// can simulate a machine without one.
var Probe = probe

// probe asks testcontainers for its Docker provider and the engine's info.
// Host detection panics on some paths (MustExtractDockerHost), so a panic
// is an unhealthy engine, not a crash.
func probe(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("docker host detection panicked: %v", r)
		}
	}()
	p, err := testcontainers.NewDockerProvider(testcontainers.WithLogger(Logger))
	if err != nil {
		return fmt.Errorf("find a Docker engine: %w", err)
	}
	defer p.Close()
	if err := p.Health(ctx); err != nil {
		return fmt.Errorf("Docker engine health check: %w", err)
	}
	return nil
}

var health struct {
	once sync.Once
	err  error
}

// Health runs Probe once per process and returns its verdict every time:
// an engine that vanishes mid-run shows up as errors of the operations
// themselves.
func Health() error {
	health.once.Do(func() {
		ApplyDefaults()
		ctx, cancel := context.WithTimeout(context.Background(), ProbeTimeout)
		defer cancel()
		health.err = Probe(ctx)
	})
	return health.err
}

var shared struct {
	once sync.Once
	cli  *testcontainers.DockerClient
	err  error
}

// Client returns the process's Docker client, for the operations
// testcontainers does not wrap (pause, kill, label listing, log follow).
func Client() (*testcontainers.DockerClient, error) {
	shared.once.Do(func() {
		ApplyDefaults()
		shared.cli, shared.err = testcontainers.NewDockerClientWithOpts(context.Background())
		if shared.err != nil {
			shared.err = fmt.Errorf("Docker client: %w", shared.err)
		}
	})
	return shared.cli, shared.err
}
