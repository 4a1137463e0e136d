package fakeagent

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// scripted is a test's own controller side: a bare WebSocket server that
// does the Broker handshake and then lets the test read and write frames
// on each connection directly — including frames a Hub would refuse to
// pass on (invalid JSON, wrongly typed events).
type scripted struct {
	t     *testing.T
	srv   *httptest.Server
	conns chan *scriptConn
	// ack is the ack frame's text, sent after the subscriptions.
	ack []byte
	// profile decodes what agents send and encodes what send sends.
	profile *api.Profile
}

type scriptConn struct {
	t      *testing.T
	ws     *websocket.Conn
	topics []string
	frames chan scriptFrame
	// end receives the read error that ended the connection.
	end chan error
	wmu sync.Mutex
	// profile decodes the agent's frames and encodes send's messages.
	profile *api.Profile
}

// scriptFrame is one frame the controller side received from an agent.
type scriptFrame struct {
	raw []byte
	f   broker.Frame
	ev  broker.Event
	msg api.Message
	err error // undecodable frame, not an event, or not decodable by the profile
}

func newScripted(t *testing.T) *scripted {
	t.Helper()
	return newScriptedProfile(t, api.CC42)
}

// newScriptedProfile is newScripted speaking profile p.
func newScriptedProfile(t *testing.T, p *api.Profile) *scripted {
	t.Helper()
	ack, err := broker.AckFrame("scripted-controller", "test").Encode()
	if err != nil {
		t.Fatalf("encode ack: %v", err)
	}
	s := &scripted{t: t, conns: make(chan *scriptConn, 16), ack: ack, profile: p}
	up := websocket.Upgrader{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		_, hs, err := ws.ReadMessage()
		if err != nil {
			ws.Close()
			return
		}
		topics, err := broker.DecodeHandshake(hs)
		if err != nil {
			ws.Close()
			return
		}
		if err := ws.WriteMessage(websocket.TextMessage, s.ack); err != nil {
			ws.Close()
			return
		}
		c := &scriptConn{t: t, ws: ws, topics: topics, frames: make(chan scriptFrame, 256), end: make(chan error, 1), profile: s.profile}
		s.conns <- c
		c.readLoop()
	}))
	t.Cleanup(func() {
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
	return s
}

// url is the WebSocket URL agents dial.
func (s *scripted) url() string { return "ws" + s.srv.URL[len("http"):] + "/v1/messages/json" }

// accept waits for the next agent connection.
func (s *scripted) accept(ctx context.Context) *scriptConn {
	s.t.Helper()
	select {
	case c := <-s.conns:
		return c
	case <-ctx.Done():
		s.t.Fatalf("no agent connected: %v", ctx.Err())
		return nil
	}
}

func (c *scriptConn) readLoop() {
	defer c.ws.Close()
	for {
		_, raw, err := c.ws.ReadMessage()
		if err != nil {
			c.end <- err
			close(c.frames)
			return
		}
		sf := scriptFrame{raw: raw}
		sf.f, sf.err = broker.DecodeFrame(raw)
		if sf.err == nil {
			sf.ev, sf.err = sf.f.Event()
		}
		if sf.err == nil {
			sf.msg, sf.err = c.profile.Decode(sf.ev)
		}
		c.frames <- sf
	}
}

// next returns the next frame from the agent.
func (c *scriptConn) next(ctx context.Context) scriptFrame {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			c.t.Fatalf("agent connection ended while waiting for a frame: %v", c.endErr())
		}
		return f
	case <-ctx.Done():
		c.t.Fatalf("no frame from the agent: %v", ctx.Err())
	}
	return scriptFrame{}
}

// nextMsg returns the next frame's typed message, failing on a bad frame.
func (c *scriptConn) nextMsg(ctx context.Context) api.Message {
	c.t.Helper()
	f := c.next(ctx)
	if f.err != nil {
		c.t.Fatalf("undecodable frame from the agent: %v\n%s", f.err, f.raw)
	}
	return f.msg
}

// ended waits for the connection to end and returns the read error.
func (c *scriptConn) ended(ctx context.Context) error {
	c.t.Helper()
	for {
		select {
		case _, ok := <-c.frames:
			if !ok {
				return c.endErr()
			}
		case <-ctx.Done():
			c.t.Fatalf("agent connection did not end: %v", ctx.Err())
			return nil
		}
	}
}

func (c *scriptConn) endErr() error {
	select {
	case err := <-c.end:
		c.end <- err
		return err
	default:
		return errors.New("connection still open")
	}
}

func (c *scriptConn) sendRaw(text []byte) {
	c.t.Helper()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.ws.WriteMessage(websocket.TextMessage, text); err != nil {
		c.t.Fatalf("scripted controller write: %v", err)
	}
}

// sendEvent publishes ev to the agent's topic.
func (c *scriptConn) sendEvent(topic string, ev broker.Event) {
	c.t.Helper()
	raw, err := broker.EventFrame(topic, ev).Encode()
	if err != nil {
		c.t.Fatalf("encode frame: %v", err)
	}
	c.sendRaw(raw)
}

// send encodes m with the connection's profile and publishes it on topic.
func (c *scriptConn) send(topic string, m api.Message) {
	c.t.Helper()
	ev, err := c.profile.Encode(m)
	if err != nil {
		c.t.Fatalf("encode %T: %v", m, err)
	}
	c.sendEvent(topic, ev)
}
