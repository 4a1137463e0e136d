package broker

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// publishCounted publishes events "n" with args (0, pad) .. (n-1, pad) on
// topic from a new Local.
func publishCounted(t *testing.T, h *Hub, topic string, n int, pad string) {
	t.Helper()
	pub := h.Subscribe(nil, func(Delivery) {})
	defer pub.Close()
	for i := range n {
		if err := pub.PublishEvent(topic, NewEvent("n", Count(uint64(i)), String(pad))); err != nil {
			t.Fatal(err)
		}
	}
}

// smallSendBuffers makes every accepted connection's socket send buffer
// small, so that frames for a client that does not read stay in the Hub's
// queue instead of in the kernel.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		err = c.(*net.TCPConn).SetWriteBuffer(16 << 10)
	}
	return c, err
}

// startStallingHub is startHub with small send buffers on the Hub's side.
func startStallingHub(t *testing.T, opts HubOptions) (*Hub, *Server, *peerWatcher) {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(testCtx(t), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := NewHub(opts)
	peers := watchPeers(h)
	srv := serveListener(smallSendBuffers{ln}, h)
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("server close: %v", err)
		}
	})
	return h, srv, peers
}

// stalledDial connects a Conn that holds at most one message: until its
// consumer reads, frames pile up in the Hub's queue for it (past what the
// socket buffers hold), as for a busy client.
func stalledDial(ctx context.Context, t *testing.T, srv *Server, topics ...string) *Conn {
	t.Helper()
	c, err := Dial(ctx, srv.URL(), topics, &DialOptions{QueueSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Enough data that much of it is still queued in the Hub when the test
// closes the client: well beyond a 16 KiB send buffer plus the receive
// buffer of a socket nobody reads (Linux starts it at 128 KiB and grows it
// only as the application reads).
const (
	stalledFrames = 60
	stalledPad    = 16 << 10
)

// requireQueued checks the test's premise: frames for client id are still
// waiting in the Hub.
func requireQueued(t *testing.T, h *Hub, id PeerID) {
	t.Helper()
	c, err := h.client(id, "inspect")
	if err != nil {
		t.Fatal(err)
	}
	n := c.out.queued()
	if n == 0 {
		t.Fatal("nothing queued for the client: the socket buffers took everything, so the test proves nothing")
	}
	t.Logf("%d of %d frames still queued in the hub", n, stalledFrames)
}

// expectCounted reads events 0..n-1 in order, then the end of the stream.
func expectCounted(ctx context.Context, t *testing.T, c *Conn, topic string, n int) {
	t.Helper()
	for i := range n {
		m, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("message %d of %d: %v", i, n, err)
		}
		ev, err := m.Event()
		if err != nil || m.Topic != topic || ev.Name != "n" {
			t.Fatalf("message %d: %+v (%v), want event n on %q", i, m, err, topic)
		}
		if got, _ := ev.Args[0].AsCount(); got != uint64(i) {
			t.Fatalf("message %d carries %d: frames were lost or reordered", i, got)
		}
	}
	if m, err := c.Next(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("after %d messages: %+v, %v; want the end of the connection", n, m, err)
	}
}

func TestHubCloseDeliversWhatWasQueued(t *testing.T) {
	ctx := testCtx(t)
	// The flush deadline is generous so that the race detector's slowness
	// cannot make the test flaky; what is checked is that Close waits.
	h, srv, peers := startStallingHub(t, HubOptions{FlushTimeout: 8 * time.Second})
	c := stalledDial(ctx, t, srv, "t")
	id := peers.connected(ctx, t, c.LocalAddr())
	publishCounted(t, h, "t", stalledFrames, strings.Repeat("p", stalledPad))
	requireQueued(t, h, id)
	closed := make(chan error, 1)
	go func() { closed <- h.Close() }()
	expectCounted(ctx, t, c, "t", stalledFrames)
	expectClose(t, waitEnd(ctx, t, c), websocket.CloseGoingAway, "Terminating")
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("Hub.Close did not return")
	}
	if s := h.Stats(); s.Dropped != 0 || s.FlushTimeouts != 0 || s.Delivered != stalledFrames {
		t.Fatalf("stats %+v, want %d delivered, nothing dropped, no flush timeout", s, stalledFrames)
	}
}

func TestDisconnectFlushesThenCloses(t *testing.T) {
	ctx := testCtx(t)
	h, srv, peers := startStallingHub(t, HubOptions{FlushTimeout: 8 * time.Second})
	c := stalledDial(ctx, t, srv, "t")
	other := dial(ctx, t, srv, "u")
	id := peers.connected(ctx, t, c.LocalAddr())
	publishCounted(t, h, "t", stalledFrames, strings.Repeat("p", stalledPad))
	requireQueued(t, h, id)
	if err := h.Disconnect(id, 4001, "bye now"); err != nil {
		t.Fatal(err)
	}
	expectCounted(ctx, t, c, "t", stalledFrames)
	expectClose(t, waitEnd(ctx, t, c), 4001, "bye now")
	ev := peers.disconnected(ctx, t, id)
	if ev.Reason != "disconnected by the hub (4001 bye now)" {
		t.Fatalf("disconnect reason %q", ev.Reason)
	}
	if err := h.Disconnect(id, 1000, ""); err == nil || !strings.Contains(err.Error(), "no such client") {
		t.Fatalf("Disconnect of a departed client: %v, want no such client", err)
	}
	// Only that client went away.
	publishCounted(t, h, "u", 1, "")
	expectEvent(ctx, t, other, "u", "n")
	if s := h.Stats(); s.Dropped != 0 || s.FlushTimeouts != 0 {
		t.Fatalf("stats %+v, want nothing dropped, no flush timeout", s)
	}
}

func TestDisconnectRejectsBadInput(t *testing.T) {
	ctx := testCtx(t)
	h, srv, peers := startHub(t, HubOptions{})
	c := dial(ctx, t, srv, "t")
	id := peers.connected(ctx, t, c.LocalAddr())
	for _, tc := range []struct {
		id     PeerID
		code   int
		reason string
		want   string
	}{
		{id, 1005, "", "close code 1005 may not be sent"},
		{id, 1006, "", "close code 1006"},
		{id, 2000, "", "close code 2000"},
		{id, 5000, "", "close code 5000"},
		{id, 1000, strings.Repeat("x", 124), "124 bytes, more than the 123"},
		{id, 1000, "\xff", "not UTF-8"},
		{id + 100, 1000, "", "no such client"},
	} {
		err := h.Disconnect(tc.id, tc.code, tc.reason)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "disconnect peer") {
			t.Errorf("Disconnect(%d, %d, %q) = %v, want an error containing %q", tc.id, tc.code, tc.reason, err, tc.want)
		}
	}
	if err := h.Reset(id + 100); err == nil || !strings.Contains(err.Error(), "no such client") {
		t.Errorf("Reset of an unknown peer: %v, want no such client", err)
	}
	// None of that touched the client.
	publishCounted(t, h, "t", 1, "")
	expectEvent(ctx, t, c, "t", "n")
	// A second Disconnect while the first is under way is refused.
	if err := h.Disconnect(id, 1000, ""); err != nil {
		t.Fatal(err)
	}
	if err := h.Disconnect(id, 1000, ""); err == nil {
		t.Fatal("second Disconnect of the same client succeeded")
	}
	expectClose(t, waitEnd(ctx, t, c), websocket.CloseNormalClosure, "")
}

// waitEnd waits for c to end and returns why.
func waitEnd(ctx context.Context, t *testing.T, c *Conn) error {
	t.Helper()
	select {
	case <-c.Done():
		return c.Err()
	case <-ctx.Done():
		t.Fatalf("connection still up: %v", ctx.Err())
		return nil
	}
}

func TestResetDropsTheConnectionWithoutCloseFrame(t *testing.T) {
	ctx := testCtx(t)
	h, srv, peers := startHub(t, HubOptions{})
	c := dial(ctx, t, srv, "t")
	id := peers.connected(ctx, t, c.LocalAddr())
	if err := h.Reset(id); err != nil {
		t.Fatal(err)
	}
	expectClose(t, waitEnd(ctx, t, c), websocket.CloseAbnormalClosure, "")
	if ev := peers.disconnected(ctx, t, id); ev.Reason != "reset by the hub" {
		t.Fatalf("disconnect reason %q, want reset by the hub", ev.Reason)
	}
}

// TestCloseFlushGivesUpAtTheDeadline: a client that reads nothing gets
// what fits in the socket, then the flush gives up and Close returns.
func TestCloseFlushGivesUpAtTheDeadline(t *testing.T) {
	ctx := testCtx(t)
	const flush = 100 * time.Millisecond
	h, srv, peers := startHub(t, HubOptions{QueueSize: 4096, FlushTimeout: flush})
	slow := rawDial(ctx, t, srv.URL(), 4096)
	rawWrite(ctx, t, slow, websocket.TextMessage, EncodeHandshake([]string{"bulk"}))
	peers.connected(ctx, t, slow.LocalAddr())
	// Far more than the socket buffers hold.
	pub := h.Subscribe(nil, func(Delivery) {})
	payload := String(strings.Repeat("p", 64<<10))
	for i := range 200 {
		if err := pub.PublishEvent("bulk", NewEvent("bulk", Count(uint64(i)), payload)); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Close took %s with a client that reads nothing (flush deadline %s)", time.Since(start), flush)
	if s := h.Stats(); s.FlushTimeouts != 1 {
		t.Fatalf("stats %+v, want one flush timeout", s)
	}
}
