package client

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/zcc-harness/zcc/controller"
)

// BenchmarkGetInstancesRoundTrip measures a client's get_instances round
// trip against the reference controller over loopback WebSockets,
// reqid correlation included.
func BenchmarkGetInstancesRoundTrip(b *testing.B) {
	ctl, err := controller.Start(context.Background(), controller.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer ctl.Close()
	ctx := context.Background()
	c, err := Dial(ctx, ctl.URL(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		res, err := c.GetInstances(ctx)
		if err != nil || !res.Success {
			b.Fatal(res, err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
