package broker

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// benchEvent is a typical controller request: an event with a request id
// and a small record.
func benchEvent(i int) Event {
	return NewEvent("Management::Controller::API::get_nodes_request",
		String("req-"+strconv.Itoa(i)),
		Vector(String("instance-1"), Count(uint64(i)), Bool(true)))
}

func benchHub(b *testing.B, opts HubOptions) (*Hub, *Server) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := NewHub(opts)
	srv, err := Serve(ctx, "127.0.0.1:0", h)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	return h, srv
}

func benchDial(ctx context.Context, b *testing.B, srv *Server, topics ...string) *Conn {
	b.Helper()
	c, err := Dial(ctx, srv.URL(), topics, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkRoundTrip measures Publish on one Conn until Next returns it on
// another, through a Hub on loopback, one message at a time.
func BenchmarkRoundTrip(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, srv := benchHub(b, HubOptions{})
	sender := benchDial(ctx, b, srv)
	receiver := benchDial(ctx, b, srv, "zeek/management/controller")
	evs := make([]Event, 64)
	for i := range evs {
		evs[i] = benchEvent(i)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := sender.Publish(ctx, "zeek/management/controller", evs[i%len(evs)]); err != nil {
			b.Fatal(err)
		}
		m, err := receiver.Next(ctx)
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		if m.Err != nil {
			b.Fatal(m.Err)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Microsecond)
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// BenchmarkFanOut measures deliveries per second from one publishing Conn
// to 100 subscribed Conns through a Hub on loopback. Queues are sized so
// that nothing is dropped; the benchmark fails if anything is.
func BenchmarkFanOut(b *testing.B) {
	const subscribers = 100
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	h, srv := benchHub(b, HubOptions{QueueSize: b.N + 16})
	pub := benchDial(ctx, b, srv)
	subs := make([]*Conn, subscribers)
	for i := range subs {
		subs[i] = benchDial(ctx, b, srv, "zeek/management/agent/")
	}
	ev := benchEvent(1)
	var wg sync.WaitGroup
	errs := make(chan error, subscribers)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for _, c := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range b.N {
				m, err := c.Next(ctx)
				if err == nil {
					err = m.Err
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := 0; i < b.N; i++ {
		if err := pub.Publish(ctx, "zeek/management/agent/a1", ev); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	if s := h.Stats(); s.Dropped != 0 {
		b.Fatalf("%d frames dropped", s.Dropped)
	}
	b.ReportMetric(float64(b.N*subscribers)/elapsed.Seconds(), "deliveries/s")
}
