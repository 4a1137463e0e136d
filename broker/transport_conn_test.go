package broker

import (
	"fmt"
	"testing"

	"github.com/gorilla/websocket"
)

// errorFloodServer acks, waits for one message from the client (so that
// Dial has returned), sends n error frames numbered in their context, then
// a data message "end" on topic "end"; then it closes if closeAfter, or
// waits for the client to close.
func errorFloodServer(t *testing.T, n int, closeAfter bool) string {
	return fakeServer(t, func(ws *websocket.Conn) {
		if _, _, err := ws.ReadMessage(); err != nil {
			return
		}
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ack","endpoint":"e","version":"v"}`))
		if _, _, err := ws.ReadMessage(); err != nil {
			return
		}
		for i := range n {
			b, _ := ErrorFrame(CodeDeserializationFailed, fmt.Sprintf("error %d", i)).Encode()
			if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
				return
			}
		}
		b, _ := DataFrame("end", None()).Encode()
		_ = ws.WriteMessage(websocket.TextMessage, b)
		if closeAfter {
			_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
		}
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	})
}

// expectErrorRange reads error frames numbered from..to-1 from Errors().
func expectErrorRange(t *testing.T, c *Conn, from, to int) {
	t.Helper()
	ctx := testCtx(t)
	for i := from; i < to; i++ {
		if f := nextError(ctx, t, c); f.Context != fmt.Sprintf("error %d", i) {
			t.Fatalf("got error frame %q, want error %d", f.Context, i)
		}
	}
}

func TestErrorsKeepTheNewest256WhileUp(t *testing.T) {
	ctx := testCtx(t)
	const sent = 300
	c, err := Dial(ctx, errorFloodServer(t, sent, false), []string{"end"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The 256 frames are not reserved up front in every Conn.
	if n := cap(c.Errors()); n != errorChanSize {
		t.Fatalf("Errors() has a buffer of %d, want %d", n, errorChanSize)
	}
	publish(ctx, t, c, "go", "go")
	// The reader handles frames in order: once "end" is here, every error
	// frame has been queued (or dropped) and nobody has read one yet.
	if m := next(ctx, t, c); m.Topic != "end" {
		t.Fatalf("got %q, want the end marker", m.Topic)
	}
	// The newest 256 stay; while the backlog's pump hands a frame over,
	// the count may be one too high for a moment, so 255 is fine too.
	dropped := int(c.ErrorsDropped())
	if kept := sent - dropped; kept != clientErrorQueue && kept != clientErrorQueue-1 {
		t.Fatalf("ErrorsDropped() = %d: %d kept, want %d", dropped, kept, clientErrorQueue)
	}
	expectErrorRange(t, c, dropped, sent)
	select {
	case f := <-c.Errors():
		t.Fatalf("extra error frame %+v", f)
	default:
	}
	if c.Err() != nil {
		t.Fatalf("connection ended: %v", c.Err())
	}
}

func TestErrorsAfterTheEndKeepTheNewest(t *testing.T) {
	ctx := testCtx(t)
	const sent = 20
	c, err := Dial(ctx, errorFloodServer(t, sent, true), []string{"end"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	publish(ctx, t, c, "go", "go")
	if m := next(ctx, t, c); m.Topic != "end" {
		t.Fatalf("got %q, want the end marker", m.Topic)
	}
	waitEnd(ctx, t, c)
	// The backlog's pump is gone with the connection; the channel keeps
	// the newest frames it has room for, then reports the end.
	expectErrorRange(t, c, sent-errorChanSize, sent)
	if _, ok := <-c.Errors(); ok {
		t.Fatal("Errors() still open after the connection ended")
	}
	if got := c.ErrorsDropped(); got != sent-errorChanSize {
		t.Fatalf("ErrorsDropped() = %d, want %d", got, sent-errorChanSize)
	}
}
