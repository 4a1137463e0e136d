package controller

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// dialedConn is a live connection to a listening agent's hub. Messages to
// agents go out on it through its own writer, so a slow agent never holds
// up the event loop.
type dialedConn struct {
	conn  *broker.Conn
	queue chan outboundEvent
}

type outboundEvent struct {
	topic string
	ev    broker.Event
}

// agentURL is the WebSocket stand-in for Broker::peer(host, port).
func agentURL(host netip.Addr, port broker.Port) string {
	return "ws://" + netip.AddrPortFrom(host.Unmap(), port.Number).String() + "/v1/messages/json"
}

// startDialer keeps a connection to a listening agent, as Broker::peer
// with connect_retry does: it retries until connected and reconnects when
// the connection drops. Zeek never unpeers, and neither does this.
func (c *Controller) startDialer(d DialRequest) {
	url := agentURL(d.Host, d.Port)
	c.dialMu.Lock()
	defer c.dialMu.Unlock()
	if c.dialers[url] || c.ctx.Err() != nil {
		return
	}
	c.dialers[url] = true
	c.dialWG.Add(1)
	go c.dial(d, url)
}

func (c *Controller) dial(d DialRequest, url string) {
	instance := d.Instance
	defer c.dialWG.Done()
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-retry.C:
		}
		conn, err := broker.Dial(c.ctx, url, []string{c.profile.AgentTopicPrefix}, nil)
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			c.log.Debug(fmt.Sprintf("cannot reach listening instance %s at %s, retrying in %v: %v", instance, url, c.opts.ConnectRetry, err))
			retry.Reset(c.opts.ConnectRetry)
			continue
		}
		c.serveDialed(d, url, conn)
		if c.ctx.Err() != nil {
			return
		}
		retry.Reset(c.opts.ConnectRetry)
	}
}

// serveDialed reads from and writes to one dialled connection until it or
// the controller ends, then reports the peer as lost.
func (c *Controller) serveDialed(d DialRequest, url string, conn *broker.Conn) {
	instance := d.Instance
	dc := &dialedConn{conn: conn, queue: make(chan outboundEvent, dialQueue)}
	c.dialMu.Lock()
	c.dialSeq++
	id := c.dialSeq
	c.dialed[id] = dc
	c.dialMu.Unlock()
	peer := Peer{Kind: PeerDialed, ID: id}
	c.log.Debug(fmt.Sprintf("connected to listening instance %s at %s as %s", instance, url, peer))
	c.enqueue(PeerConnected{Peer: peer, Addr: d.Host.Unmap(), Port: api.Some(d.Port)})

	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for {
			select {
			case <-conn.Done():
				return
			case o := <-dc.queue:
				if err := conn.Publish(c.ctx, o.topic, o.ev); err != nil {
					c.log.Debug(fmt.Sprintf("publish to %s (%s): %v", url, peer, err))
				}
			}
		}
	}()

	msgs, errs := conn.Messages(), conn.Errors()
loop:
	for {
		select {
		case <-c.ctx.Done():
			break loop
		case m, ok := <-msgs:
			if !ok {
				break loop
			}
			if m.Err != nil {
				c.enqueue(Undecodable{Topic: m.Topic, From: peer, Err: m.Err})
				continue
			}
			c.enqueue(c.decode(m.Topic, m.Data, peer))
		case f, ok := <-errs:
			if ok {
				c.log.Warn(fmt.Sprintf("error frame from listening instance %s at %s: %s: %s", instance, url, f.Code, f.Context))
			} else {
				errs = nil
			}
		}
	}
	_ = conn.Close()
	<-writerDone
	c.dialMu.Lock()
	delete(c.dialed, id)
	c.dialMu.Unlock()
	if c.ctx.Err() == nil {
		c.log.Debug(fmt.Sprintf("connection to listening instance %s at %s ended: %v", instance, url, conn.Err()))
		c.enqueue(PeerLost{Peer: peer})
	}
}

// publishDialed copies an agent-topic event to every dialled connection;
// each agent's own hub delivers it only if the topic matches.
func (c *Controller) publishDialed(topic string, ev broker.Event) {
	c.dialMu.Lock()
	defer c.dialMu.Unlock()
	for id, dc := range c.dialed {
		select {
		case dc.queue <- outboundEvent{topic: topic, ev: ev}:
		default:
			c.log.Warn(fmt.Sprintf("dropped %s to dialled peer %d: its send queue is full", ev.Name, id))
		}
	}
}
