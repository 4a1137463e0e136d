package controller

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// BenchmarkCoreEvents measures the pure core: one set_configuration for
// ten ready agents and their ten answers per iteration (11 events).
func BenchmarkCoreEvents(b *testing.B) {
	const agents = 10
	n := 0
	c, err := NewCore(Config{Start: t0, NewID: func() string { n++; return "id" + strconv.Itoa(n) }})
	if err != nil {
		b.Fatal(err)
	}
	var insts []api.Instance
	for i := 0; i < agents; i++ {
		insts = append(insts, connecting(fmt.Sprintf("agent-%02d", i)))
	}
	cfg := config("cfg", insts...)
	now := t0
	step := func(in Input) Output {
		now = now.Add(time.Microsecond)
		return c.Step(now, in)
	}
	// Bring every agent to READY.
	for _, in := range insts {
		step(hello(in.Name, hubPeer(1)))
	}
	out := step(setConfig("warm-up", cfg))
	for _, o := range out.Publish {
		if w, ok := o.Msg.(api.AgentWelcomeRequest); ok {
			out := step(welcomeResp(w.Reqid, o.Topic[len(agentPrefix):], true))
			for _, o := range out.Publish {
				if ch, ok := o.Msg.(api.AgentSetConfigurationRequest); ok {
					step(agentResp(ch.Reqid, o.Topic[len(agentPrefix):], true, "", ""))
				}
			}
		}
	}
	if s := c.Snapshot(); len(s.Ready) != agents || s.Pending != "" {
		b.Fatalf("warm-up left ready %v pending %q", s.Ready, s.Pending)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	events := 0
	for i := 0; i < b.N; i++ {
		out := step(setConfig("R"+strconv.Itoa(i), cfg))
		events++
		responded := false
		for _, o := range out.Publish {
			if ch, ok := o.Msg.(api.AgentSetConfigurationRequest); ok {
				out := step(agentResp(ch.Reqid, o.Topic[len(agentPrefix):], true, "", ""))
				events++
				responded = responded || len(out.Publish) == 1
			}
		}
		if !responded {
			b.Fatal("no set_configuration_response")
		}
	}
	b.ReportMetric(float64(events)/time.Since(start).Seconds(), "events/s")
}

// latencies collects per-request durations and reports percentiles.
type latencies []time.Duration

func (l latencies) report(b *testing.B, unit time.Duration, suffix string) {
	if len(l) == 0 {
		return
	}
	s := slices.Clone(l)
	slices.Sort(s)
	pct := func(p float64) float64 {
		return float64(s[int(p*float64(len(s)-1))]) / float64(unit)
	}
	b.ReportMetric(pct(0.50), "p50-"+suffix)
	b.ReportMetric(pct(0.99), "p99-"+suffix)
}

// BenchmarkGetInstancesRoundTrip measures one client's get_instances
// round trip over loopback WebSocket.
func BenchmarkGetInstancesRoundTrip(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	conn, err := broker.Dial(ctx, c.URL(), []string{controllerTopic}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	evs := make([]broker.Event, 0, 1)
	ev, err := api.CC42.Encode(api.GetInstancesRequest{Reqid: "R"})
	if err != nil {
		b.Fatal(err)
	}
	evs = append(evs, ev)
	lat := make(latencies, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t := time.Now()
		if err := conn.Publish(ctx, controllerTopic, evs[0]); err != nil {
			b.Fatal(err)
		}
		if _, err := conn.Next(ctx); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t))
	}
	b.StopTimer()
	lat.report(b, time.Microsecond, "µs")
}

// benchAgent is a scripted agent that answers welcomes and configurations
// without decoding the configuration (it only needs the reqid), so the
// benchmark measures the controller and the transport, not the agents'
// decoding of the config into typed records.
func benchAgent(ctx context.Context, b *testing.B, conn *broker.Conn, name string, wg *sync.WaitGroup) {
	defer wg.Done()
	topic := agentPrefix + name
	for {
		msg, err := conn.Next(ctx)
		if err != nil {
			return
		}
		ev, err := msg.Event()
		if err != nil || len(ev.Args) == 0 {
			continue
		}
		reqid, _ := ev.Args[0].AsString()
		var reply api.Message
		switch ev.Name {
		case "ClusterAgent::API::agent_welcome_request":
			reply = api.AgentWelcomeResponse{Reqid: reqid, Result: api.Result{Reqid: reqid, Instance: name, Success: true}}
		case "ClusterAgent::API::set_configuration_request":
			reply = api.AgentSetConfigurationResponse{Reqid: reqid, Result: api.Result{Reqid: reqid, Instance: name, Success: true}}
		default:
			continue
		}
		out, err := api.CC42.Encode(reply)
		if err != nil {
			b.Error(err)
			return
		}
		if err := conn.Publish(ctx, topic, out); err != nil {
			return
		}
	}
}

// BenchmarkSetConfiguration measures set_configuration with N connected
// agents that all answer at once: the controller pushes the whole
// configuration (N instances, N nodes) to each of them.
//
// "decoding" agents are broker.Conns, which decode every frame they get
// into Broker values (what a careful agent does); "lean" agents read the
// raw frame and pick the reqid out with a string search, so the number is
// the controller's and the transport's cost alone. Both run in this
// process and share its two cores with the controller.
func BenchmarkSetConfiguration(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("agents=%d/decoding", n), func(b *testing.B) { benchSetConfiguration(b, n, false) })
		b.Run(fmt.Sprintf("agents=%d/lean", n), func(b *testing.B) { benchSetConfiguration(b, n, true) })
	}
}

func benchSetConfiguration(b *testing.B, agents int, lean bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// A pushed configuration is O(agents) big and goes to every agent, so
	// with 1,000 agents one request takes seconds on a small machine: the
	// request timeout must not cut it short.
	c, err := Start(ctx, Options{
		Name: "bench", RequestTimeout: 5 * time.Minute,
		Hub: broker.HubOptions{MaxFrameSize: 64 << 20}, ObserverBuffer: 4*agents + 64,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var insts []api.Instance
	var wg sync.WaitGroup
	conns := make([]*broker.Conn, agents)
	var stops []func()
	for i := 0; i < agents; i++ {
		name := fmt.Sprintf("agent-%04d", i)
		insts = append(insts, connecting(name))
		if lean {
			stop, err := leanCC42Agent(name).start(ctx, c.URL(), &wg)
			if err != nil {
				b.Fatal(err)
			}
			stops = append(stops, stop)
			continue
		}
		conn, err := broker.Dial(ctx, c.URL(), []string{agentPrefix + name}, &broker.DialOptions{MaxFrameSize: 64 << 20})
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = conn
		hi, _ := api.CC42.Encode(agentHello(name))
		if err := conn.Publish(ctx, agentPrefix+name, hi); err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go benchAgent(ctx, b, conn, name, &wg)
	}
	defer func() {
		for _, conn := range conns {
			if conn != nil {
				_ = conn.Close()
			}
		}
		for _, stop := range stops {
			stop()
		}
		wg.Wait()
	}()
	client, err := broker.Dial(ctx, c.URL(), []string{controllerTopic}, &broker.DialOptions{MaxFrameSize: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	cfg := config("bench", insts...)
	request := func(reqid string) time.Duration {
		ev, err := api.CC42.Encode(api.SetConfigurationRequest{Reqid: reqid, Config: cfg})
		if err != nil {
			b.Fatal(err)
		}
		t := time.Now()
		if err := client.Publish(ctx, controllerTopic, ev); err != nil {
			b.Fatal(err)
		}
		for {
			msg, err := client.Next(ctx)
			if err != nil {
				b.Fatal(err)
			}
			ev, err := msg.Event()
			if err != nil {
				continue
			}
			m, err := api.CC42.Decode(ev)
			if err != nil {
				continue
			}
			if r, ok := m.(api.SetConfigurationResponse); ok && r.Reqid == reqid {
				if len(r.Results) != agents {
					b.Fatalf("response with %d Results, want %d: %+v", len(r.Results), agents, r.Results[0])
				}
				return time.Since(t)
			}
		}
	}
	// The first request welcomes everyone, once every hello has arrived.
	for hellos := 0; hellos < agents; {
		select {
		case l := <-c.Logs():
			if strings.HasPrefix(l.Msg, "rx ClusterAgent::API::notify_agent_hello ") {
				hellos++
			}
		case <-ctx.Done():
			b.Fatal("agents never all said hello")
		}
	}
	request("warm-up")
	lat := make(latencies, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lat = append(lat, request("R"+strconv.Itoa(i)))
	}
	b.StopTimer()
	lat.report(b, time.Millisecond, "ms")
}

// leanAgent is an agent on a bare WebSocket for the benchmarks: it says
// hello once, then answers the events it has a reply for from the reqid
// found by a string search in the frame's first bytes, reading past the
// rest (the configuration) without decoding or keeping it, so that the
// numbers are the controller's and the transport's cost alone.
type leanAgent struct {
	profile *api.Profile
	topic   string
	hello   api.Message
	// replies maps an event name to the answer for a request id.
	replies map[string]func(reqid string) api.Message
}

// leanCC42Agent answers welcomes and configuration pushes with success.
func leanCC42Agent(name string) leanAgent {
	return leanAgent{
		profile: api.CC42, topic: agentPrefix + name, hello: agentHello(name),
		replies: map[string]func(string) api.Message{
			"ClusterAgent::API::agent_welcome_request": func(reqid string) api.Message {
				return api.AgentWelcomeResponse{Reqid: reqid, Result: api.Result{Reqid: reqid, Instance: name, Success: true}}
			},
			"ClusterAgent::API::set_configuration_request": func(reqid string) api.Message {
				return api.AgentSetConfigurationResponse{Reqid: reqid, Result: api.Result{Reqid: reqid, Instance: name, Success: true}}
			},
		},
	}
}

func (a leanAgent) start(ctx context.Context, url string, wg *sync.WaitGroup) (stop func(), err error) {
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(64 << 20)
	if err := ws.WriteMessage(websocket.TextMessage, broker.EncodeHandshake([]string{a.topic})); err != nil {
		return nil, err
	}
	if _, _, err := ws.ReadMessage(); err != nil { // the ack
		return nil, err
	}
	frame := func(m api.Message) ([]byte, error) {
		ev, err := a.profile.Encode(m)
		if err != nil {
			return nil, err
		}
		return broker.EventFrame(a.topic, ev).Encode()
	}
	hello, err := frame(a.hello)
	if err != nil {
		return nil, err
	}
	if err := ws.WriteMessage(websocket.TextMessage, hello); err != nil {
		return nil, err
	}
	// The event's args vector follows its name; its first element is the
	// reqid.
	const reqidPrefix = `{"@data-type":"vector","data":[{"@data-type":"string","data":"`
	wg.Add(1)
	go func() {
		defer wg.Done()
		head := make([]byte, 512)
		// Large reads of the rest go straight from the socket into sink
		// (io.Discard would read it in 8 KiB pieces: more system calls).
		sink := make([]byte, 64<<10)
		for {
			_, r, err := ws.NextReader()
			if err != nil {
				return
			}
			n, _ := io.ReadFull(r, head)
			for err == nil {
				_, err = r.Read(sink)
			}
			if err != io.EOF {
				return
			}
			text := string(head[:n])
			for name, reply := range a.replies {
				quoted := `"` + name + `"`
				at := strings.Index(text, quoted)
				if at < 0 {
					continue
				}
				after := text[at+len(quoted):]
				i := strings.Index(after, reqidPrefix)
				if i < 0 {
					break
				}
				rest := after[i+len(reqidPrefix):]
				end := strings.IndexByte(rest, '"')
				if end < 0 {
					break
				}
				out, err := frame(reply(rest[:end]))
				if err != nil {
					return
				}
				if err := ws.WriteMessage(websocket.TextMessage, out); err != nil {
					return
				}
				break
			}
		}
	}()
	return func() { _ = ws.Close() }, nil
}
