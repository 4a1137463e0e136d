package broker

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
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

// scaleClients is the fleet size of the scale benchmarks: large enough that
// a per-connect cost proportional to the number of clients dominates, small
// enough for the default file descriptor limit (two descriptors per client
// in one process).
const scaleClients = 2000

// agentTopic is the unique subscription of fake agent i, as the reference
// controller's agents use.
func agentTopic(i int) string { return fmt.Sprintf("zeek/cluster-control/agent/idle-%05d", i) }

// dialFleet connects n clients, agent i subscribed to agentTopic(i), with a
// few dialers at a time as a fleet of fake agents does.
func dialFleet(ctx context.Context, b *testing.B, url string, n int) []*Conn {
	b.Helper()
	conns := make([]*Conn, n)
	errs := make(chan error, n)
	work := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				c, err := Dial(ctx, url, []string{agentTopic(i)}, &DialOptions{QueueSize: 16})
				if err != nil {
					errs <- fmt.Errorf("dial client %d: %w", i, err)
					continue
				}
				conns[i] = c
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		closeFleet(conns)
		b.Fatal(err)
	}
	return conns
}

// closeFleet closes every connection, a few at a time.
func closeFleet(conns []*Conn) {
	work := make(chan *Conn)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				c.Close()
			}
		}()
	}
	for _, c := range conns {
		if c != nil {
			work <- c
		}
	}
	close(work)
	wg.Wait()
}

// clientGauge follows a Hub's connected-client count through OnPeer, so a
// benchmark can wait for the hub's side of a disconnect without polling.
type clientGauge struct {
	mu      sync.Mutex
	n       int
	target  int
	reached chan struct{}
}

func newClientGauge(h *Hub) *clientGauge {
	g := &clientGauge{target: -1}
	h.OnPeer(func(ev PeerEvent) {
		g.mu.Lock()
		defer g.mu.Unlock()
		if ev.Connected {
			g.n++
		} else {
			g.n--
		}
		if g.n == g.target && g.reached != nil {
			close(g.reached)
			g.reached = nil
		}
	})
	return g
}

// await returns a channel closed once the count is n.
func (g *clientGauge) await(n int) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch := make(chan struct{})
	if g.n == n {
		close(ch)
		return ch
	}
	g.target, g.reached = n, ch
	return ch
}

// BenchmarkHubConnect2000 measures connecting 2,000 clients, each with its
// own topic, to one Hub over loopback (ns/op is the time for all 2,000),
// and then disconnecting them (disconnect-ms: until the Hub has reported
// every disconnect).
func BenchmarkHubConnect2000(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	h, srv := benchHub(b, HubOptions{})
	gauge := newClientGauge(h)
	var disconnect time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		conns := dialFleet(ctx, b, srv.URL(), scaleClients)
		b.StopTimer()
		gone := gauge.await(0)
		start := time.Now()
		closeFleet(conns)
		select {
		case <-gone:
		case <-ctx.Done():
			b.Fatalf("waiting for the hub to report every disconnect: %v", ctx.Err())
		}
		disconnect += time.Since(start)
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*scaleClients), "µs/connect")
	b.ReportMetric(float64(disconnect.Milliseconds())/float64(b.N), "disconnect-ms")
}

// BenchmarkHubSubscribe2000Locals measures the routing table alone: 2,000
// in-process subscribers with distinct prefixes join and then leave one by
// one, without any network (ns/op covers all 4,000 changes).
func BenchmarkHubSubscribe2000Locals(b *testing.B) {
	h := NewHub(HubOptions{})
	defer h.Close()
	locals := make([]*Local, scaleClients)
	b.ReportAllocs()
	for range b.N {
		for i := range locals {
			locals[i] = h.Subscribe([]string{agentTopic(i)}, func(Delivery) {})
		}
		for _, l := range locals {
			l.Close()
		}
	}
	if s := h.Stats(); s.Locals != 0 {
		b.Fatalf("%d locals left", s.Locals)
	}
}

// BenchmarkHubRouteOneOf2000 measures one Local.Publish whose topic matches
// exactly one of 2,000 subscribers (all subscribed to distinct agent
// topics), either clients over loopback or in-process Locals.
func BenchmarkHubRouteOneOf2000(b *testing.B) {
	ev := benchEvent(1)
	topic := agentTopic(scaleClients / 2)
	b.Run("clients", func(b *testing.B) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		h, srv := benchHub(b, HubOptions{})
		conns := dialFleet(ctx, b, srv.URL(), scaleClients)
		defer closeFleet(conns)
		// The target keeps reading, so its queue never fills and the
		// benchmark measures routing, not overflow handling.
		target := conns[scaleClients/2]
		received := make(chan int, 1)
		go func() {
			n := 0
			for range target.Messages() {
				n++
			}
			received <- n
		}()
		pub := h.Subscribe(nil, nil)
		defer pub.Close()
		before := h.Stats().Delivered
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if err := pub.PublishEvent(topic, ev); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if got := h.Stats().Delivered - before; got != uint64(b.N) {
			b.Fatalf("%d deliveries for %d publishes", got, b.N)
		}
		target.Close()
		<-received
	})
	b.Run("locals", func(b *testing.B) {
		h := NewHub(HubOptions{})
		defer h.Close()
		hits := 0
		for i := range scaleClients {
			l := h.Subscribe([]string{agentTopic(i)}, func(Delivery) { hits++ })
			defer l.Close()
		}
		pub := h.Subscribe(nil, nil)
		defer pub.Close()
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if err := pub.PublishEvent(topic, ev); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if hits != b.N {
			b.Fatalf("%d handler calls for %d publishes", hits, b.N)
		}
	})
}

// idleServer is a minimal WebSocket JSON server that acks and then only
// reads: its per-connection cost does not change with the Conn under test.
func idleServer(b *testing.B) string {
	b.Helper()
	up := websocket.Upgrader{}
	var wg sync.WaitGroup
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		if _, _, err := ws.ReadMessage(); err != nil {
			return
		}
		if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ack","endpoint":"e","version":"v"}`)); err != nil {
			return
		}
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}))
	b.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
		wg.Wait()
	})
	return "ws" + strings.TrimPrefix(ts.URL, "http") + DefaultPath
}

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkIdleConnHeap measures the live heap of 1,000 idle connections:
// "conn-B" is per Conn against a minimal server (whose share is the same
// before and after any change to Conn), "hub-B" per connection pair against
// a Hub (Conn plus the Hub's side of it). Dial options are those of an idle
// fake agent (QueueSize 16).
func BenchmarkIdleConnHeap(b *testing.B) {
	const idle = 1000
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	measure := func(url string) float64 {
		base := heapInUse()
		conns := make([]*Conn, idle)
		for i := range conns {
			c, err := Dial(ctx, url, []string{agentTopic(i)}, &DialOptions{QueueSize: 16})
			if err != nil {
				closeFleet(conns)
				b.Fatal(err)
			}
			conns[i] = c
		}
		per := (float64(heapInUse()) - float64(base)) / idle
		closeFleet(conns)
		return per
	}
	var conn, hub float64
	for range b.N {
		conn += measure(idleServer(b))
		_, srv := benchHub(b, HubOptions{})
		hub += measure(srv.URL())
	}
	b.ReportMetric(conn/float64(b.N), "conn-B")
	b.ReportMetric(hub/float64(b.N), "hub-B")
}
