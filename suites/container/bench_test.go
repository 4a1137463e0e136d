package container

import (
	"context"
	"testing"
	"time"

	"github.com/zcc-harness/zcc/suites"
	"github.com/zcc-harness/zcc/suites/container/internal/engine"
)

// BenchmarkStartToReady: a spec's controller container from the request to
// run it until it answered get_instances (target: 2 s), and its removal.
func BenchmarkStartToReady(b *testing.B) {
	if err := engine.Health(); err != nil {
		b.Skip("no Docker engine: ", err)
	}
	tg := startableTarget(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var ready, release time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		c, err := tg.Start(ctx, suites.SpecInfo{Text: "bench", Prefix: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := c.Release(); err != nil {
			b.Fatal(err)
		}
		ready += t1.Sub(t0)
		release += time.Since(t1)
		n++
	}
	b.ReportMetric(float64(ready.Milliseconds())/float64(n), "ms-to-ready")
	b.ReportMetric(float64(release.Milliseconds())/float64(n), "ms-release")
}

// BenchmarkFaults: the controller faults' own cost (restart includes
// readiness, kill+start too).
func BenchmarkFaults(b *testing.B) {
	if err := engine.Health(); err != nil {
		b.Skip("no Docker engine: ", err)
	}
	tg := startableTarget(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := tg.Start(ctx, suites.SpecInfo{Text: "bench", Prefix: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Release()
	f := c.(suites.FaultInjector)
	var restart, pause, kill, start time.Duration
	n := 0
	for b.Loop() {
		for _, step := range []struct {
			op  func(context.Context) error
			sum *time.Duration
		}{{f.Restart, &restart}, {f.Pause, &pause}, {f.Unpause, &pause}, {f.Kill, &kill}, {f.Start, &start}} {
			t0 := time.Now()
			if err := step.op(ctx); err != nil {
				b.Fatal(err, "\n", c.Logs())
			}
			*step.sum += time.Since(t0)
		}
		n++
	}
	b.ReportMetric(float64(restart.Milliseconds())/float64(n), "ms-restart")
	b.ReportMetric(float64(pause.Milliseconds())/float64(n), "ms-pause+unpause")
	b.ReportMetric(float64(kill.Milliseconds())/float64(n), "ms-kill")
	b.ReportMetric(float64(start.Milliseconds())/float64(n), "ms-start")
}
