package broker

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// TestMaxFrameSizeAboveOneMiBEndToEnd: a Hub configured for frames larger
// than the 1 MiB default carries them both ways (client to client, client
// to Local, Local to client), still rejects what exceeds the configured
// limit by name, and a Conn's own MaxFrameSize is honoured on its side.
func TestMaxFrameSizeAboveOneMiBEndToEnd(t *testing.T) {
	ctx := testCtx(t)
	const limit = 2 << 20
	h, srv, _ := startHub(t, HubOptions{MaxFrameSize: limit})
	sender := dial(ctx, t, srv)
	receiver := dial(ctx, t, srv, "big")
	gotLocal := make(chan Delivery, 1)
	local := h.Subscribe([]string{"big"}, func(d Delivery) {
		select {
		case gotLocal <- d: // the first one is checked
		default:
		}
	})
	defer local.Close()

	payload := strings.Repeat("z", 3<<19)
	if err := sender.Publish(ctx, "big", NewEvent("large", String(payload))); err != nil {
		t.Fatal(err)
	}
	checkLarge := func(who string, v Value) {
		t.Helper()
		ev, err := EventFromValue(v)
		if err != nil {
			t.Fatalf("%s: not an event: %v", who, err)
		}
		if s, _ := ev.Args[0].AsString(); ev.Name != "large" || s != payload {
			t.Fatalf("%s: got %s with a %d-byte argument, want large with %d bytes", who, ev.Name, len(s), len(payload))
		}
	}
	checkLarge("client from client", next(ctx, t, receiver).Data)
	select {
	case d := <-gotLocal:
		checkLarge("local from client", d.Data)
		if len(d.Raw) <= len(payload) {
			t.Fatalf("Raw is %d bytes, want the whole frame", len(d.Raw))
		}
	case <-ctx.Done():
		t.Fatal("the Local got nothing")
	}
	pub := h.Subscribe(nil, func(Delivery) {})
	defer pub.Close()
	if err := pub.PublishEvent("big", NewEvent("large", String(payload))); err != nil {
		t.Fatal(err)
	}
	checkLarge("client from local", next(ctx, t, receiver).Data)

	// Above the configured limit: an error frame naming it, and the
	// connection goes on.
	tooBig, err := EventFrame("big", NewEvent("huge", String(strings.Repeat("z", limit)))).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := sender.WriteRaw(ctx, tooBig); err != nil {
		t.Fatal(err)
	}
	f := nextError(ctx, t, sender)
	want := fmt.Sprintf("%s: %d bytes exceeds the limit of %d bytes", ContextFrameTooLargePrefix, len(tooBig), limit)
	if f.Code != CodeDeserializationFailed || f.Context != want {
		t.Fatalf("error frame %+v, want %q", f, want)
	}
	publish(ctx, t, sender, "big", "after")
	expectEvent(ctx, t, receiver, "big", "after")
	if s := h.Stats(); s.Oversized != 1 || s.BadFrames != 0 {
		t.Fatalf("stats %+v, want exactly one oversized frame", s)
	}

	// A Conn that allows less than the Hub sends gives up on the frame
	// (gorilla closes with 1009).
	small, err := Dial(ctx, srv.URL(), []string{"big"}, &DialOptions{MaxFrameSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	if err := pub.PublishEvent("big", NewEvent("large", String(payload))); err != nil {
		t.Fatal(err)
	}
	if err := waitEnd(ctx, t, small); !errors.Is(err, websocket.ErrReadLimit) || !errors.Is(err, ErrClosed) {
		t.Fatalf("Conn with a 1 MiB limit ended with %v, want the read limit", err)
	}
}

// TestHugeMaxFrameSizeIsNoLimit: a limit so large that the arithmetic
// around it would overflow (the hard ceiling, limit+1) still lets frames
// through.
func TestHugeMaxFrameSizeIsNoLimit(t *testing.T) {
	ctx := testCtx(t)
	h, srv, _ := startHub(t, HubOptions{MaxFrameSize: math.MaxInt64})
	sender := dial(ctx, t, srv)
	receiver := dial(ctx, t, srv, "t")
	publish(ctx, t, sender, "t", "fits")
	expectEvent(ctx, t, receiver, "t", "fits")
	if s := h.Stats(); s.BadFrames != 0 || s.Oversized != 0 {
		t.Fatalf("stats %+v, want no rejected frame", s)
	}
}
