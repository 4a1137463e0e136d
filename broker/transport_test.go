package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

// TestMain checks that no test of the package leaves a goroutine behind,
// and poisons released frame buffers so that a frame written after its
// buffer went back to the pool arrives as garbage.
func TestMain(m *testing.M) {
	poisonReleasedFrames = true
	goleak.VerifyTestMain(m)
}

// testCtx bounds every blocking call of one test.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// peerWatcher records every PeerEvent of a Hub so that waits never lose one.
type peerWatcher struct {
	mu      sync.Mutex
	events  []PeerEvent
	changed chan struct{}
}

func watchPeers(h *Hub) *peerWatcher {
	w := &peerWatcher{changed: make(chan struct{})}
	h.OnPeer(func(ev PeerEvent) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.events = append(w.events, ev)
		close(w.changed)
		w.changed = make(chan struct{})
	})
	return w
}

func (w *peerWatcher) wait(ctx context.Context, t *testing.T, what string, match func(PeerEvent) bool) PeerEvent {
	t.Helper()
	for {
		w.mu.Lock()
		for _, ev := range w.events {
			if match(ev) {
				w.mu.Unlock()
				return ev
			}
		}
		changed := w.changed
		w.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("waiting for peer event %s: %v (seen %+v)", what, ctx.Err(), w.snapshot())
		}
	}
}

func (w *peerWatcher) snapshot() []PeerEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]PeerEvent(nil), w.events...)
}

func (w *peerWatcher) connected(ctx context.Context, t *testing.T, addr net.Addr) PeerID {
	t.Helper()
	return w.wait(ctx, t, "connect of "+addr.String(), func(ev PeerEvent) bool {
		return ev.Connected && ev.Remote == addr.String()
	}).ID
}

func (w *peerWatcher) disconnected(ctx context.Context, t *testing.T, id PeerID) PeerEvent {
	t.Helper()
	return w.wait(ctx, t, fmt.Sprintf("disconnect of %d", id), func(ev PeerEvent) bool {
		return !ev.Connected && ev.ID == id
	})
}

func startHub(t *testing.T, opts HubOptions) (*Hub, *Server, *peerWatcher) {
	t.Helper()
	h := NewHub(opts)
	w := watchPeers(h)
	srv, err := Serve(testCtx(t), "127.0.0.1:0", h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("server close: %v", err)
		}
	})
	return h, srv, w
}

func dial(ctx context.Context, t *testing.T, srv *Server, topics ...string) *Conn {
	t.Helper()
	c, err := Dial(ctx, srv.URL(), topics, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func next(ctx context.Context, t *testing.T, c *Conn) Message {
	t.Helper()
	m, err := c.Next(ctx)
	if err != nil {
		t.Fatalf("next message: %v", err)
	}
	if m.Err != nil {
		t.Fatalf("next message: undecodable frame %q: %v", m.Raw, m.Err)
	}
	return m
}

// expectEvent reads the next message and checks it is event name on topic.
func expectEvent(ctx context.Context, t *testing.T, c *Conn, topic, name string) Event {
	t.Helper()
	m := next(ctx, t, c)
	ev, err := m.Event()
	if err != nil {
		t.Fatalf("message on %q is not an event: %v", m.Topic, err)
	}
	if m.Topic != topic || ev.Name != name {
		t.Fatalf("got %s on %q, want %s on %q", ev.Name, m.Topic, name, topic)
	}
	return ev
}

func nextError(ctx context.Context, t *testing.T, c *Conn) Frame {
	t.Helper()
	select {
	case f, ok := <-c.Errors():
		if !ok {
			t.Fatalf("error stream ended: %v", c.Err())
		}
		return f
	case <-ctx.Done():
		t.Fatalf("waiting for an error frame: %v", ctx.Err())
	}
	panic("unreachable")
}

func publish(ctx context.Context, t *testing.T, c *Conn, topic, name string) {
	t.Helper()
	if err := c.Publish(ctx, topic, NewEvent(name, String("x"))); err != nil {
		t.Fatal(err)
	}
}

// rawDial opens a bare gorilla connection to srv (for peers that misbehave).
// readBuffer > 0 shrinks the socket's receive buffer so that a peer that
// does not read fills its TCP window quickly.
func rawDial(ctx context.Context, t *testing.T, url string, readBuffer int) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var nd net.Dialer
		c, err := nd.DialContext(ctx, network, addr)
		if err == nil && readBuffer > 0 {
			err = c.(*net.TCPConn).SetReadBuffer(readBuffer)
		}
		return c, err
	}}
	ws, _, err := d.DialContext(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

func rawRead(ctx context.Context, t *testing.T, ws *websocket.Conn) ([]byte, error) {
	t.Helper()
	dl, _ := ctx.Deadline()
	_ = ws.SetReadDeadline(dl)
	_, b, err := ws.ReadMessage()
	return b, err
}

func rawWrite(ctx context.Context, t *testing.T, ws *websocket.Conn, mt int, b []byte) {
	t.Helper()
	dl, _ := ctx.Deadline()
	_ = ws.SetWriteDeadline(dl)
	if err := ws.WriteMessage(mt, b); err != nil {
		t.Fatal(err)
	}
}

func decodeFrame(t *testing.T, b []byte) Frame {
	t.Helper()
	f, err := DecodeFrame(b)
	if err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return f
}

func expectClose(t *testing.T, err error, code int, text string) {
	t.Helper()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a close frame %d", err, code)
	}
	if ce.Code != code || !strings.Contains(ce.Text, text) {
		t.Fatalf("got close %d %q, want %d containing %q", ce.Code, ce.Text, code, text)
	}
}

func TestPrefixRoutingIsPlainStringPrefix(t *testing.T) {
	ctx := testCtx(t)
	_, srv, _ := startHub(t, HubOptions{})
	a1 := dial(ctx, t, srv, "zeek/management/agent/a1")
	a2 := dial(ctx, t, srv, "zeek/management/agent/a2")
	pub := dial(ctx, t, srv)

	publish(ctx, t, pub, "zeek/management/agent/a10", "first")
	publish(ctx, t, pub, "zeek/management/agent/a2", "second")
	publish(ctx, t, pub, "zeek/management/agent/a1", "third")

	// a1 covers a10 (Broker matches plain prefixes) and a1, never a2.
	expectEvent(ctx, t, a1, "zeek/management/agent/a10", "first")
	expectEvent(ctx, t, a1, "zeek/management/agent/a1", "third")
	// a2's first message is "second": it did not get "first" (the hub keeps
	// one sender's order, so anything misrouted would have come earlier).
	expectEvent(ctx, t, a2, "zeek/management/agent/a2", "second")
}

func TestNoSelfEchoAndTwoSubscribers(t *testing.T) {
	ctx := testCtx(t)
	_, srv, _ := startHub(t, HubOptions{})
	a := dial(ctx, t, srv, "topic")
	b := dial(ctx, t, srv, "topic")
	c := dial(ctx, t, srv, "topic")

	publish(ctx, t, a, "topic/x", "from-a")
	expectEvent(ctx, t, b, "topic/x", "from-a")
	expectEvent(ctx, t, c, "topic/x", "from-a")

	publish(ctx, t, b, "topic/y", "from-b")
	// a's first message is b's: its own was not echoed back.
	expectEvent(ctx, t, a, "topic/y", "from-b")
	expectEvent(ctx, t, c, "topic/y", "from-b")
	// b's next message is c's, not its own "from-b".
	publish(ctx, t, c, "topic/z", "from-c")
	expectEvent(ctx, t, b, "topic/z", "from-c")
	expectEvent(ctx, t, a, "topic/z", "from-c")
}

func TestAckEndpointAndVersion(t *testing.T) {
	ctx := testCtx(t)
	_, srv, _ := startHub(t, HubOptions{})
	first := dial(ctx, t, srv, "t")
	second := dial(ctx, t, srv, "t")
	re := regexp.MustCompile(`^([0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})-websocket-(\d+)$`)
	m1 := re.FindStringSubmatch(first.Ack().Endpoint)
	m2 := re.FindStringSubmatch(second.Ack().Endpoint)
	if m1 == nil || m2 == nil {
		t.Fatalf("endpoints %q, %q do not look like <uuid>-websocket-<n>", first.Ack().Endpoint, second.Ack().Endpoint)
	}
	if m1[1] != m2[1] || m1[2] == m2[2] {
		t.Fatalf("want one hub uuid and distinct counters, got %q and %q", m1[0], m2[0])
	}
	if first.Ack().Version != "zcc" || first.Ack().Type != FrameAck {
		t.Fatalf("ack %+v", first.Ack())
	}

	_, srv2, _ := startHub(t, HubOptions{Endpoint: "fixed-endpoint", Version: "8.1.2"})
	c := dial(ctx, t, srv2)
	if c.Ack().Endpoint != "fixed-endpoint" || c.Ack().Version != "8.1.2" {
		t.Fatalf("ack %+v, want the configured endpoint and version", c.Ack())
	}
}

func TestLocalSubscriberBothDirections(t *testing.T) {
	ctx := testCtx(t)
	h, srv, peers := startHub(t, HubOptions{})
	got := make(chan Delivery, 16)
	local := h.Subscribe([]string{"zeek/management/controller"}, func(d Delivery) { got <- d })
	defer local.Close()
	otherGot := make(chan Delivery, 16)
	other := h.Subscribe([]string{"zeek/"}, func(d Delivery) { otherGot <- d })
	defer other.Close()
	if local.ID() == 0 || local.ID() == other.ID() {
		t.Fatalf("local ids %d, %d must be distinct and non-zero", local.ID(), other.ID())
	}

	client := dial(ctx, t, srv, "zeek/management/agent/")
	clientID := peers.connected(ctx, t, client.LocalAddr())

	// Client -> locals.
	publish(ctx, t, client, "zeek/management/controller", "Management::Controller::API::get_instances_request")
	for _, ch := range []chan Delivery{got, otherGot} {
		select {
		case d := <-ch:
			ev, err := EventFromValue(d.Data)
			if err != nil || ev.Name != "Management::Controller::API::get_instances_request" || d.From != clientID {
				t.Fatalf("delivery %+v (event %v, err %v), want the request from %d", d, ev, err, clientID)
			}
			f := decodeFrame(t, d.Raw)
			if f.Topic != "zeek/management/controller" || !Equal(f.Data, d.Data) {
				t.Fatalf("Raw %q does not carry the delivery", d.Raw)
			}
		case <-ctx.Done():
			t.Fatal("local subscriber got nothing")
		}
	}

	// Local -> client and the other local, not back to itself.
	if err := local.PublishEvent("zeek/management/agent/a1", NewEvent("Management::Agent::API::deploy_request", String("r1"))); err != nil {
		t.Fatal(err)
	}
	expectEvent(ctx, t, client, "zeek/management/agent/a1", "Management::Agent::API::deploy_request")
	select {
	case d := <-otherGot:
		if d.From != local.ID() || d.Topic != "zeek/management/agent/a1" {
			t.Fatalf("other local got %+v", d)
		}
	case <-ctx.Done():
		t.Fatal("other local got nothing")
	}
	// local subscribes to its own topic too; a message on it from local
	// must reach only the other local, which replies through local's handler.
	if err := local.Publish("zeek/management/controller", String("self")); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-otherGot:
		if s, _ := d.Data.AsString(); s != "self" {
			t.Fatalf("other local got %+v", d)
		}
	case <-ctx.Done():
		t.Fatal("other local got nothing")
	}
	select {
	case d := <-got:
		t.Fatalf("local received its own message %+v", d)
	default:
	}

	local.Close()
	if err := local.Publish("x", None()); !errors.Is(err, ErrClosed) {
		t.Fatalf("publish after close: %v, want ErrClosed", err)
	}
	if s := h.Stats(); s.Locals != 1 {
		t.Fatalf("Locals = %d after one Close, want 1", s.Locals)
	}
}

func TestOversizedFrameThenConnectionStillWorks(t *testing.T) {
	ctx := testCtx(t)
	h, srv, peers := startHub(t, HubOptions{MaxFrameSize: 1024})
	sender := dial(ctx, t, srv)
	senderID := peers.connected(ctx, t, sender.LocalAddr())
	receiver := dial(ctx, t, srv, "big")

	big, err := EventFrame("big", NewEvent("huge", String(strings.Repeat("x", 4000)))).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := sender.WriteRaw(ctx, big); err != nil {
		t.Fatal(err)
	}
	f := nextError(ctx, t, sender)
	want := fmt.Sprintf("%s: %d bytes exceeds the limit of 1024 bytes", ContextFrameTooLargePrefix, len(big))
	if f.Code != CodeDeserializationFailed || f.Context != want {
		t.Fatalf("error frame %+v, want %s / %q", f, CodeDeserializationFailed, want)
	}
	publish(ctx, t, sender, "big", "small")
	expectEvent(ctx, t, receiver, "big", "small") // the big one was discarded
	if s := h.Stats(); s.Oversized != 1 {
		t.Fatalf("Oversized = %d, want 1", s.Oversized)
	}

	// Beyond the hard ceiling (64x) the hub stops reading and closes 1009.
	huge := make([]byte, 64*1024+1)
	for i := range huge {
		huge[i] = ' '
	}
	if err := sender.WriteRaw(ctx, huge); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sender.Done():
	case <-ctx.Done():
		t.Fatal("connection not closed after a frame above the ceiling")
	}
	expectClose(t, sender.Err(), websocket.CloseMessageTooBig, "")
	// The hub counts it before it reports the disconnect.
	if ev := peers.disconnected(ctx, t, senderID); !strings.Contains(ev.Reason, "read limit") {
		t.Fatalf("disconnect reason %q, want the read limit", ev.Reason)
	}
	if s := h.Stats(); s.Oversized != 2 {
		t.Fatalf("Oversized = %d, want 2", s.Oversized)
	}
	if !errors.Is(sender.Err(), ErrClosed) {
		t.Fatalf("Err() = %v, want it to wrap ErrClosed", sender.Err())
	}
}

func TestBadHandshakeThenNewConnectionWorks(t *testing.T) {
	cases := []struct {
		name, first, context string
	}{
		{"object", `{"topics":["a"]}`, ContextNotAnArray},
		{"number element", `[1]`, ContextSubscriptionNotStr + ": "},
		{"invalid JSON", `[{bad`, ContextSubscriptionNotStr},
		{"truncated", `{bad`, ContextNotAnArray + ": "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			h, srv, _ := startHub(t, HubOptions{})
			ws := rawDial(ctx, t, srv.URL(), 0)
			rawWrite(ctx, t, ws, websocket.TextMessage, []byte(tc.first))
			b, err := rawRead(ctx, t, ws)
			if err != nil {
				t.Fatal(err)
			}
			f := decodeFrame(t, b)
			if f.Type != FrameError || f.Code != CodeDeserializationFailed || !strings.HasPrefix(f.Context, tc.context) {
				t.Fatalf("got %+v, want error %s with context %q...", f, CodeDeserializationFailed, tc.context)
			}
			_, err = rawRead(ctx, t, ws)
			expectClose(t, err, websocket.ClosePolicyViolation, "")
			if s := h.Stats(); s.BadHandshakes != 1 || s.Accepted != 0 {
				t.Fatalf("stats %+v, want 1 bad handshake and none accepted", s)
			}

			c := dial(ctx, t, srv, "t")
			if c.Ack().Type != FrameAck {
				t.Fatalf("second connection got %+v", c.Ack())
			}
		})
	}
}

func TestBinaryHandshakeAndHandshakeTimeout(t *testing.T) {
	ctx := testCtx(t)
	h, srv, _ := startHub(t, HubOptions{})
	ws := rawDial(ctx, t, srv.URL(), 0)
	rawWrite(ctx, t, ws, websocket.BinaryMessage, []byte(`["a"]`))
	b, err := rawRead(ctx, t, ws)
	if err != nil {
		t.Fatal(err)
	}
	if f := decodeFrame(t, b); f.Code != CodeDeserializationFailed || !strings.HasPrefix(f.Context, ContextNotAnArray) {
		t.Fatalf("binary handshake answered with %+v", f)
	}
	_, err = rawRead(ctx, t, ws)
	expectClose(t, err, websocket.ClosePolicyViolation, "")

	if s := h.Stats(); s.BadHandshakes != 1 {
		t.Fatalf("BadHandshakes = %d, want 1", s.BadHandshakes)
	}

	h2, srv2, _ := startHub(t, HubOptions{HandshakeTimeout: 100 * time.Millisecond})
	silent := rawDial(ctx, t, srv2.URL(), 0)
	_, err = rawRead(ctx, t, silent)
	expectClose(t, err, websocket.ClosePolicyViolation, "handshake timeout")
	if s := h2.Stats(); s.BadHandshakes != 1 {
		t.Fatalf("BadHandshakes = %d, want 1", s.BadHandshakes)
	}
}

func TestWrongPathIs404NamingThePath(t *testing.T) {
	ctx := testCtx(t)
	_, srv, _ := startHub(t, HubOptions{})
	url := "http://" + srv.Addr().String() + "/v1/messages/binary"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "invalid path; use /v1/messages/json") {
		t.Fatalf("got %d %q, want 404 naming /v1/messages/json", resp.StatusCode, body)
	}

	_, err = Dial(ctx, "ws://"+srv.Addr().String()+"/wrong", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("Dial to a wrong path: %v, want an error naming HTTP 404", err)
	}
}

// slowConsumerSetup connects a raw client that subscribes and never reads
// (with a small socket buffer), and a fast Conn on the same topic.
func slowConsumerSetup(ctx context.Context, t *testing.T, policy OverflowPolicy) (*Hub, *websocket.Conn, PeerID, *Conn, *peerWatcher) {
	t.Helper()
	h, srv, peers := startHub(t, HubOptions{QueueSize: 4, Overflow: policy})
	slow := rawDial(ctx, t, srv.URL(), 4096)
	rawWrite(ctx, t, slow, websocket.TextMessage, EncodeHandshake([]string{"bulk"}))
	slowID := peers.connected(ctx, t, slow.LocalAddr())
	fast := dial(ctx, t, srv, "bulk")
	return h, slow, slowID, fast, peers
}

// publishInStep publishes from a Local until done() holds, waiting after
// each message until the fast client has it, so the fast client's queue
// never holds more than one frame. It returns how many it published.
func publishInStep(ctx context.Context, t *testing.T, h *Hub, fast *Conn, done func() bool) int {
	t.Helper()
	pub := h.Subscribe(nil, func(Delivery) {})
	defer pub.Close()
	payload := String(strings.Repeat("p", 16<<10))
	const maxMessages = 5000
	for i := 0; i < maxMessages; i++ {
		if done() {
			return i
		}
		if err := pub.PublishEvent("bulk", NewEvent("bulk", Count(uint64(i)), payload)); err != nil {
			t.Fatal(err)
		}
		ev := expectEvent(ctx, t, fast, "bulk", "bulk")
		if n, _ := ev.Args[0].AsCount(); n != uint64(i) {
			t.Fatalf("fast client got message %d, want %d: it must lose nothing", n, i)
		}
	}
	t.Fatalf("condition not reached after %d messages (stats %+v)", maxMessages, h.Stats())
	return 0
}

func TestSlowConsumerDropOldest(t *testing.T) {
	ctx := testCtx(t)
	h, slow, slowID, fast, _ := slowConsumerSetup(ctx, t, DropOldest)
	n := publishInStep(ctx, t, h, fast, func() bool { return h.Stats().Dropped >= 10 })
	s := h.Stats()
	if s.OverflowDisconnects != 0 || s.Clients != 2 {
		t.Fatalf("after %d messages: stats %+v, want both clients still connected", n, s)
	}
	found := false
	for _, p := range h.Peers() {
		found = found || p.ID == slowID
	}
	if !found {
		t.Fatalf("slow client %d missing from Peers() %+v", slowID, h.Peers())
	}
	// Dropping the slow client's TCP connection lets its writer fail fast.
	slow.NetConn().Close()
}

func TestSlowConsumerDisconnectPolicy(t *testing.T) {
	ctx := testCtx(t)
	h, _, slowID, fast, peers := slowConsumerSetup(ctx, t, Disconnect)
	gone := func() bool { return h.Stats().OverflowDisconnects > 0 }
	publishInStep(ctx, t, h, fast, gone)
	ev := peers.disconnected(ctx, t, slowID)
	if ev.Reason != "outbound queue overflow" {
		t.Fatalf("slow client disconnected with %q, want outbound queue overflow", ev.Reason)
	}
	if s := h.Stats(); s.Dropped != 0 || s.OverflowDisconnects != 1 {
		t.Fatalf("stats %+v, want no drops and one overflow disconnect", s)
	}
	// The fast client is still served.
	pub := h.Subscribe(nil, func(Delivery) {})
	defer pub.Close()
	if err := pub.PublishEvent("bulk", NewEvent("after")); err != nil {
		t.Fatal(err)
	}
	expectEvent(ctx, t, fast, "bulk", "after")
}

func TestPingTimeoutClosesSilentClient(t *testing.T) {
	ctx := testCtx(t)
	h, srv, peers := startHub(t, HubOptions{PingInterval: 50 * time.Millisecond})
	ws := rawDial(ctx, t, srv.URL(), 0)
	rawWrite(ctx, t, ws, websocket.TextMessage, EncodeHandshake([]string{"t"}))
	// The client never reads, so gorilla never answers the pings.
	id := peers.connected(ctx, t, ws.LocalAddr())
	ev := peers.disconnected(ctx, t, id)
	if ev.Reason != "ping timeout" {
		t.Fatalf("disconnect reason %q, want ping timeout", ev.Reason)
	}
	// What was sent before the close is still in the socket: ack, then 1011.
	b, err := rawRead(ctx, t, ws)
	if err != nil {
		t.Fatal(err)
	}
	if f := decodeFrame(t, b); f.Type != FrameAck {
		t.Fatalf("first frame %+v, want the ack", f)
	}
	_, err = rawRead(ctx, t, ws)
	expectClose(t, err, websocket.CloseInternalServerErr, "Ping timeout")
	// As in Zeek 8.1: one ping at connect, timeout at the next tick.
	if s := h.Stats(); s.PingTimeouts != 1 || s.PingsSent != 1 {
		t.Fatalf("stats %+v, want one ping timeout after one ping", s)
	}
}

func TestConnAnswersPings(t *testing.T) {
	ctx := testCtx(t)
	// The interval leaves the client's reader ample time to be scheduled
	// on a loaded machine; the hub drops a client that misses one pong.
	h, srv, _ := startHub(t, HubOptions{PingInterval: 150 * time.Millisecond})
	c := dial(ctx, t, srv, "t")
	// Wait until the hub has seen several pongs, i.e. the connection lived
	// through several ping intervals.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for h.Stats().Pongs < 4 {
		select {
		case <-tick.C:
		case <-c.Done():
			t.Fatalf("connection ended: %v", c.Err())
		case <-ctx.Done():
			t.Fatalf("pongs: %+v", h.Stats())
		}
	}
	if s := h.Stats(); s.PingTimeouts != 0 || s.Clients != 1 {
		t.Fatalf("stats %+v, want no ping timeouts and the client connected", s)
	}
	if c.Err() != nil {
		t.Fatalf("Err() = %v while connected", c.Err())
	}
}

func TestDataBeforeAckIsProcessedAfterIt(t *testing.T) {
	ctx := testCtx(t)
	_, srv, _ := startHub(t, HubOptions{})
	receiver := dial(ctx, t, srv, "early")
	ws := rawDial(ctx, t, srv.URL(), 0)
	data, err := EventFrame("early/topic", NewEvent("early_bird")).Encode()
	if err != nil {
		t.Fatal(err)
	}
	// Subscriptions and data back to back, without waiting for the ack.
	rawWrite(ctx, t, ws, websocket.TextMessage, EncodeHandshake([]string{"other"}))
	rawWrite(ctx, t, ws, websocket.TextMessage, data)
	b, err := rawRead(ctx, t, ws)
	if err != nil {
		t.Fatal(err)
	}
	if f := decodeFrame(t, b); f.Type != FrameAck {
		t.Fatalf("first frame %+v, want the ack", f)
	}
	expectEvent(ctx, t, receiver, "early/topic", "early_bird")
}

// syncBuffer is a log sink that client goroutines may write concurrently.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestMalformedFramesGetErrorFramesAndConnectionSurvives(t *testing.T) {
	ctx := testCtx(t)
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h, srv, peers := startHub(t, HubOptions{Logger: logger})
	receiver := dial(ctx, t, srv, "t")
	sender := dial(ctx, t, srv)

	cases := []struct{ raw, context string }{
		{`{"type":"data-message","topic":"t","@data-type":"count","data":-1}`, ContextBadJSON + ": at byte "},
		{`{"type":"data-message","topic":"t","@data-type":"vector","data":[`, ContextBadJSON + ": "},
		{`{"type":"data-message","@data-type":"count","data":1}`, ContextNoTopic},
		{`{"type":"ack","endpoint":"e","version":"v"}`, `unexpected "ack" frame`},
		{`{"type":"error","code":"c","context":"x"}`, `unexpected "error" frame`},
	}
	for _, tc := range cases {
		if err := sender.WriteRaw(ctx, []byte(tc.raw)); err != nil {
			t.Fatal(err)
		}
		f := nextError(ctx, t, sender)
		if f.Code != CodeDeserializationFailed || !strings.HasPrefix(f.Context, tc.context) {
			t.Fatalf("%s: got %+v, want %s with context %q...", tc.raw, f, CodeDeserializationFailed, tc.context)
		}
	}
	publish(ctx, t, sender, "t", "still_alive")
	expectEvent(ctx, t, receiver, "t", "still_alive")

	// A binary frame, from a raw client.
	ws := rawDial(ctx, t, srv.URL(), 0)
	rawWrite(ctx, t, ws, websocket.TextMessage, EncodeHandshake(nil))
	if _, err := rawRead(ctx, t, ws); err != nil { // ack
		t.Fatal(err)
	}
	rawWrite(ctx, t, ws, websocket.BinaryMessage, []byte{1, 2, 3})
	b, err := rawRead(ctx, t, ws)
	if err != nil {
		t.Fatal(err)
	}
	if f := decodeFrame(t, b); f.Code != CodeDeserializationFailed || !strings.Contains(f.Context, "binary frame") {
		t.Fatalf("binary frame answered with %+v", f)
	}
	ev, err := EventFrame("t", NewEvent("after_binary")).Encode()
	if err != nil {
		t.Fatal(err)
	}
	rawWrite(ctx, t, ws, websocket.TextMessage, ev)
	expectEvent(ctx, t, receiver, "t", "after_binary")
	if s := h.Stats(); s.BadFrames != uint64(len(cases)+1) {
		t.Fatalf("BadFrames = %d, want %d", s.BadFrames, len(cases)+1)
	}
	// Bad frames are logged at Warn with the peer's id and address.
	senderID := peers.connected(ctx, t, sender.LocalAddr())
	want := fmt.Sprintf("level=WARN msg=\"bad frame\" peer=%d remote=%s", senderID, sender.LocalAddr())
	if !strings.Contains(logs.String(), want) {
		t.Fatalf("log lacks %q:\n%s", want, logs.String())
	}
}

func TestErrorFramesNeverReachNext(t *testing.T) {
	ctx := testCtx(t)
	h, srv, peers := startHub(t, HubOptions{})
	c := dial(ctx, t, srv, "t")
	id := peers.connected(ctx, t, c.LocalAddr())
	if err := h.SendError(id, "broker_error", "Could not process remote event on topic 't'"); err != nil {
		t.Fatal(err)
	}
	pub := h.Subscribe(nil, func(Delivery) {})
	defer pub.Close()
	if err := pub.PublishEvent("t", NewEvent("data_after_error")); err != nil {
		t.Fatal(err)
	}
	// Next skips nothing and sees only data; the error went to Errors().
	expectEvent(ctx, t, c, "t", "data_after_error")
	f := nextError(ctx, t, c)
	if f.Code != "broker_error" || f.Context != "Could not process remote event on topic 't'" {
		t.Fatalf("error frame %+v", f)
	}
	if err := h.SendError(9999, "x", "y"); err == nil {
		t.Fatal("SendError to an unknown peer succeeded")
	}
}

func TestKillGivesDisconnectWithoutCloseFrame(t *testing.T) {
	ctx := testCtx(t)
	_, srv, peers := startHub(t, HubOptions{})
	c := dial(ctx, t, srv, "t")
	id := peers.connected(ctx, t, c.LocalAddr())
	c.Kill()
	ev := peers.disconnected(ctx, t, id)
	if !strings.Contains(ev.Reason, "without a close frame (1006)") {
		t.Fatalf("disconnect reason %q, want a lost connection without close frame", ev.Reason)
	}
	if !errors.Is(c.Err(), ErrClosed) {
		t.Fatalf("Err() = %v, want ErrClosed", c.Err())
	}
}

func TestCloseIsClean(t *testing.T) {
	ctx := testCtx(t)
	h, srv, peers := startHub(t, HubOptions{})
	c := dial(ctx, t, srv, "t")
	id := peers.connected(ctx, t, c.LocalAddr())
	if got := h.Peers(); len(got) != 1 || got[0].ID != id || got[0].Topics[0] != "t" || got[0].Application != "unknown" {
		t.Fatalf("Peers() = %+v", got)
	}
	// Whatever reached the queue before Close stays readable after it.
	pub := h.Subscribe(nil, func(Delivery) {})
	defer pub.Close()
	if err := pub.PublishEvent("t", NewEvent("queued")); err != nil {
		t.Fatal(err)
	}
	if c.Err() != nil {
		t.Fatalf("Err() = %v before Close", c.Err())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	dis := peers.disconnected(ctx, t, id)
	if dis.Reason != "closed by client (1000)" {
		t.Fatalf("disconnect reason %q, want closed by client (1000)", dis.Reason)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// Drain, then ErrClosed.
	for {
		m, err := c.Next(ctx)
		if err != nil {
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("Next after close: %v, want ErrClosed", err)
			}
			break
		}
		if m.Err != nil {
			t.Fatalf("undecodable message %q", m.Raw)
		}
	}
	if err := c.Publish(ctx, "t", NewEvent("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close: %v, want ErrClosed", err)
	}
	if _, ok := <-c.Errors(); ok {
		t.Fatal("Errors() not closed after Close")
	}
}

func TestHubCloseClosesClients(t *testing.T) {
	ctx := testCtx(t)
	h, srv, _ := startHub(t, HubOptions{})
	c := dial(ctx, t, srv, "t")
	local := h.Subscribe([]string{"t"}, func(Delivery) {})
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("client still connected after Server.Close")
	}
	expectClose(t, c.Err(), websocket.CloseGoingAway, "Terminating")
	if err := local.Publish("t", None()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Local.Publish after Hub.Close: %v, want ErrClosed", err)
	}
	if _, err := Dial(ctx, srv.URL(), nil, nil); err == nil {
		t.Fatal("Dial succeeded after Server.Close")
	}
}

func TestApplicationNameHeader(t *testing.T) {
	ctx := testCtx(t)
	h, srv, peers := startHub(t, HubOptions{})
	c, err := Dial(ctx, srv.URL(), nil, &DialOptions{Header: http.Header{"X-Application-Name": {"zcc/test-1.0"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id := peers.connected(ctx, t, c.LocalAddr())
	if p := h.Peers(); len(p) != 1 || p[0].ID != id || p[0].Application != "zcc/test-1.0" {
		t.Fatalf("Peers() = %+v", p)
	}

	_, err = Dial(ctx, srv.URL(), nil, &DialOptions{Header: http.Header{"X-Application-Name": {"bad name"}}})
	var he *HandshakeError
	if !errors.As(err, &he) || he.Code != CodeInvalidApplicationName || !strings.Contains(err.Error(), "bad name") {
		t.Fatalf("Dial with a bad application name: %v, want a HandshakeError %s", err, CodeInvalidApplicationName)
	}
}

// fakeServer runs fn on each upgraded connection of a plain gorilla server,
// for server behaviour the Hub never shows.
func fakeServer(t *testing.T, fn func(ws *websocket.Conn)) string {
	t.Helper()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		closed bool
	)
	up := websocket.Upgrader{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if closed {
			mu.Unlock()
			return
		}
		wg.Add(1)
		mu.Unlock()
		defer wg.Done()
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		fn(ws)
	}))
	t.Cleanup(func() {
		mu.Lock()
		closed = true
		mu.Unlock()
		ts.Close()
		wg.Wait()
	})
	return "ws" + strings.TrimPrefix(ts.URL, "http") + "/v1/messages/json"
}

func TestDialRejectedHandshakeAndUndecodableFrames(t *testing.T) {
	ctx := testCtx(t)
	rejecting := fakeServer(t, func(ws *websocket.Conn) {
		_, _, _ = ws.ReadMessage()
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"error","code":"deserialization_failed","context":"subscriptions not an array"}`))
		_, _, _ = ws.ReadMessage() // until the client closes
	})
	_, err := Dial(ctx, rejecting, []string{"t"}, nil)
	var he *HandshakeError
	if !errors.As(err, &he) || he.Code != CodeDeserializationFailed || he.Context != ContextNotAnArray {
		t.Fatalf("Dial: %v, want HandshakeError with code and context", err)
	}
	if !strings.Contains(err.Error(), "deserialization_failed") || !strings.Contains(err.Error(), "subscriptions not an array") {
		t.Fatalf("error %q does not name code and context", err)
	}

	garbage := fakeServer(t, func(ws *websocket.Conn) {
		_, _, _ = ws.ReadMessage()
		// A ping before the ack, as Zeek 8.1 sends; the client must answer.
		pong := make(chan struct{}, 1)
		ws.SetPongHandler(func(string) error { pong <- struct{}{}; return nil })
		_ = ws.WriteControl(websocket.PingMessage, []byte("hb"), time.Now().Add(time.Second))
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ack","endpoint":"e","version":"v"}`))
		_ = ws.WriteMessage(websocket.TextMessage, []byte("{not json"))
		_ = ws.WriteMessage(websocket.BinaryMessage, []byte{0xff})
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"data-message","topic":"t","@data-type":"count","data":7}`))
		_, _, _ = ws.ReadMessage() // processes the pong, then waits for the close
		select {
		case <-pong:
			_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"data-message","topic":"pong","@data-type":"boolean","data":true}`))
		default:
		}
	})
	c, err := Dial(ctx, garbage, []string{"t"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m, err := c.Next(ctx)
	if err != nil || m.Err == nil || string(m.Raw) != "{not json" || !m.Data.IsNone() {
		t.Fatalf("first message %+v, %v: want a decode error carrying the raw text", m, err)
	}
	if _, err := m.Event(); err == nil {
		t.Fatal("Event() of an undecodable message succeeded")
	}
	m, err = c.Next(ctx)
	if err != nil || m.Err == nil || !strings.Contains(m.Err.Error(), "binary") {
		t.Fatalf("second message %+v, %v: want a binary-frame error", m, err)
	}
	m, err = c.Next(ctx)
	if err != nil || m.Err != nil || m.Topic != "t" || !m.Data.Equal(Count(7)) || m.At.IsZero() {
		t.Fatalf("third message %+v, %v: want count 7 on t", m, err)
	}
}

func TestDialHonoursContext(t *testing.T) {
	ctx := testCtx(t)
	release := make(chan struct{})
	silent := fakeServer(t, func(ws *websocket.Conn) {
		_, _, _ = ws.ReadMessage() // read subscriptions, never ack
		<-release
	})
	defer close(release)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err := Dial(short, silent, []string{"t"}, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial: %v, want DeadlineExceeded", err)
	}
}

func TestNextHonoursContextAndMessagesChannel(t *testing.T) {
	ctx := testCtx(t)
	h, srv, _ := startHub(t, HubOptions{})
	c := dial(ctx, t, srv, "t")
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := c.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next on an idle conn: %v, want DeadlineExceeded", err)
	}
	pub := h.Subscribe(nil, func(Delivery) {})
	defer pub.Close()
	if err := pub.Publish("t", Count(1)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-c.Messages():
		if !m.Data.Equal(Count(1)) {
			t.Fatalf("got %+v", m)
		}
	case <-ctx.Done():
		t.Fatal("nothing on Messages()")
	}
}

// TestSharedFrameBuffersAreNotReusedEarly routes many different large
// messages to several clients, one of which never reads and so has its
// oldest frames dropped, and checks that every other client gets every
// payload intact: a pooled frame buffer reused before the last writer is
// done with it would show up as a corrupted or repeated payload.
func TestSharedFrameBuffersAreNotReusedEarly(t *testing.T) {
	ctx := testCtx(t)
	h, srv, peers := startHub(t, HubOptions{QueueSize: 4, Overflow: DropOldest})
	slow := rawDial(ctx, t, srv.URL(), 4096)
	defer slow.NetConn().Close()
	rawWrite(ctx, t, slow, websocket.TextMessage, EncodeHandshake([]string{"bulk"}))
	peers.connected(ctx, t, slow.LocalAddr())
	readers := []*Conn{dial(ctx, t, srv, "bulk"), dial(ctx, t, srv, "bulk"), dial(ctx, t, srv, "bu")}
	pub := h.Subscribe(nil, func(Delivery) {})
	defer pub.Close()
	payload := func(i int) string { return strings.Repeat(string(rune('a'+i%26)), 16<<10+i%1000) }
	// At least 300 messages, and on until the silent client's socket
	// buffers are full and its queue has dropped some.
	const maxMessages = 5000
	for i := 0; i < 300 || h.Stats().Dropped < 10; i++ {
		if i == maxMessages {
			t.Fatalf("the silent client dropped nothing after %d messages: the test did not exercise released drops", i)
		}
		if err := pub.PublishEvent("bulk", NewEvent("bulk", Count(uint64(i)), String(payload(i)))); err != nil {
			t.Fatal(err)
		}
		// In step, so that the readers' small queues never overflow.
		for r, c := range readers {
			ev := expectEvent(ctx, t, c, "bulk", "bulk")
			n, _ := ev.Args[0].AsCount()
			s, _ := ev.Args[1].AsString()
			if n != uint64(i) || s != payload(i) {
				t.Fatalf("reader %d, message %d: got count %d and a %d-byte payload, want %d and %d bytes of %q",
					r, i, n, len(s), i, len(payload(i)), payload(i)[0])
			}
		}
	}
}

// TestSharedFrameBuffersUnderConcurrentWriters publishes without waiting,
// so that routing the next message (which takes a pooled buffer) overlaps
// with writers still sending earlier ones, and checks every payload.
func TestSharedFrameBuffersUnderConcurrentWriters(t *testing.T) {
	ctx := testCtx(t)
	h, srv, _ := startHub(t, HubOptions{QueueSize: 1024})
	readers := []*Conn{dial(ctx, t, srv, "bulk"), dial(ctx, t, srv, "bulk"), dial(ctx, t, srv, "bu")}
	payload := func(i int) string { return strings.Repeat(string(rune('a'+i%26)), 16<<10+i) }
	const messages = 400
	errs := make(chan error, len(readers))
	for r, c := range readers {
		go func() {
			for i := 0; i < messages; i++ {
				m, err := c.Next(ctx)
				if err == nil {
					err = m.Err
				}
				if err != nil {
					errs <- fmt.Errorf("reader %d, message %d: %w", r, i, err)
					return
				}
				ev, err := m.Event()
				if err != nil {
					errs <- fmt.Errorf("reader %d, message %d: %w", r, i, err)
					return
				}
				n, _ := ev.Args[0].AsCount()
				s, _ := ev.Args[1].AsString()
				if n != uint64(i) || s != payload(i) {
					errs <- fmt.Errorf("reader %d, message %d: got count %d and a %d-byte payload, want %d and %d bytes of %q",
						r, i, n, len(s), i, len(payload(i)), payload(i)[0])
					return
				}
			}
			errs <- nil
		}()
	}
	pub := h.Subscribe(nil, func(Delivery) {})
	defer pub.Close()
	for i := 0; i < messages; i++ {
		if err := pub.PublishEvent("bulk", NewEvent("bulk", Count(uint64(i)), String(payload(i)))); err != nil {
			t.Fatal(err)
		}
	}
	for range readers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
