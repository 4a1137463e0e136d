package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server serves a Hub over HTTP on a TCP listener, in the background (in
// the manner of httptest.Server, but on an address of the caller's choice).
type Server struct {
	hub      *Hub
	ln       net.Listener
	srv      *http.Server
	done     chan struct{}
	serveErr error
	once     sync.Once
	closeErr error
}

// Serve listens on addr (e.g. "127.0.0.1:0") and serves h until Close. ctx
// bounds only the listen call: cancelling it later does not stop the server.
func Serve(ctx context.Context, addr string, h *Hub) (*Server, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serve broker hub: %w", err)
	}
	return serveListener(ln, h), nil
}

// serveListener serves h on ln until Close.
func serveListener(ln net.Listener, h *Hub) *Server {
	s := &Server{
		hub:  h,
		ln:   ln,
		done: make(chan struct{}),
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: h.opts.HandshakeTimeout,
		},
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.serveErr = err
		}
	}()
	return s
}

// URL returns the WebSocket URL of the Hub, ws://HOST:PORT/v1/messages/json.
func (s *Server) URL() string { return "ws://" + s.ln.Addr().String() + s.hub.opts.Path }

// Addr returns the listening address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Hub returns the Hub being served.
func (s *Server) Hub() *Hub { return s.hub }

// Close stops listening, closes the Hub (and so every client) and waits
// for all goroutines. It is safe to call more than once.
func (s *Server) Close() error {
	s.once.Do(func() {
		// Shutdown (not Close) so that plain HTTP requests in flight, such
		// as a 404 being written, finish; upgraded connections are the
		// Hub's and do not hold it up.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := s.srv.Shutdown(ctx)
		if err != nil {
			_ = s.srv.Close()
		}
		herr := s.hub.Close()
		<-s.done
		s.closeErr = errors.Join(err, herr, s.serveErr)
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("close broker server: %w", s.closeErr)
		}
	})
	return s.closeErr
}
