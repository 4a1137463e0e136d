package controller

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// mgmtBenchConfig is a configuration with one instance and one worker per
// agent, plus a manager and a logger on the first (ports assigned).
func mgmtBenchConfig(agents int) api.Configuration {
	cfg := api.Configuration{ID: "bench"}
	for i := 0; i < agents; i++ {
		name := fmt.Sprintf("agent-%04d", i)
		cfg.Instances = append(cfg.Instances, inst(name))
		cfg.Nodes = append(cfg.Nodes, node("worker-"+name, name, api.ClusterRoleWorker, 0))
	}
	cfg.Nodes = append(cfg.Nodes, node("manager", "agent-0000", api.ClusterRoleManager, 0), node("logger", "agent-0000", api.ClusterRoleLogger, 0))
	return cfg
}

// BenchmarkMgmtCoreDeploy measures the pure core: one deploy of a staged
// configuration to N ready agents and their N answers per iteration.
func BenchmarkMgmtCoreDeploy(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) { benchMgmtCoreDeploy(b, n) })
	}
}

func benchMgmtCoreDeploy(b *testing.B, agents int) {
	ids := 0
	c, err := NewCore(Config{Profile: api.Mgmt, Start: t0, RequestTimeout: time.Hour, SweepInterval: time.Hour,
		NewID: func() string { ids++; return "id" + strconv.Itoa(ids) }})
	if err != nil {
		b.Fatal(err)
	}
	now := t0
	step := func(in Input) Output {
		now = now.Add(time.Microsecond)
		return c.Step(now, in)
	}
	cfg := mgmtBenchConfig(agents)
	for i, in := range cfg.Instances {
		p := hubPeer(uint64(i + 1))
		step(PeerConnected{Peer: p, Addr: localhost})
		step(Receive{Topic: mgmtAgentPrefix + in.Name, From: p, Msg: api.NotifyAgentHello{Instance: in.Name, ID: in.Name, Connecting: true, APIVersion: 1}})
	}
	step(Receive{Topic: mgmtControllerTopic, Msg: api.StageConfigurationRequest{Reqid: "S", Config: cfg}})
	deploy := func(reqid string) int {
		out := step(Receive{Topic: mgmtControllerTopic, Msg: api.DeployRequest{Reqid: reqid}})
		for _, o := range out.Publish {
			if w, ok := o.Msg.(api.AgentWelcomeRequest); ok {
				name := strings.TrimPrefix(o.Topic, mgmtAgentPrefix)
				got := step(Receive{Topic: o.Topic, Msg: api.AgentWelcomeResponse{Reqid: w.Reqid, Result: api.Result{Reqid: w.Reqid, Success: true, Instance: name}}})
				out.Publish = append(out.Publish, got.Publish...)
			}
		}
		events, responses := 1, 0
		for _, o := range out.Publish {
			if d, ok := o.Msg.(api.AgentDeployRequest); ok {
				name := strings.TrimPrefix(o.Topic, mgmtAgentPrefix)
				got := step(Receive{Topic: o.Topic, Msg: api.AgentDeployResponse{Reqid: d.Reqid,
					Results: []api.Result{{Reqid: d.Reqid, Success: true, Instance: name, Node: api.Some("worker-" + name)}}}})
				events++
				responses += len(got.Publish)
			}
		}
		if responses != 1 {
			b.Fatalf("deploy %s: %d responses", reqid, responses)
		}
		return events
	}
	deploy("warm-up")
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	events := 0
	for i := 0; i < b.N; i++ {
		events += deploy("D" + strconv.Itoa(i))
	}
	b.ReportMetric(float64(events)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkMgmtDeploy measures deploy over loopback WebSocket with N
// agents that answer at once: the controller sends the whole configuration
// (N instances, N+2 nodes) to each of them and aggregates N deploy
// responses. The agents are lean (they find the reqid by a string search
// and never decode the configuration) and share the machine's cores with
// the controller.
func BenchmarkMgmtDeploy(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) { benchMgmtDeploy(b, n) })
	}
}

func benchMgmtDeploy(b *testing.B, agents int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{
		Name: "bench", Profile: api.Mgmt, RequestTimeout: 5 * time.Minute,
		Hub: broker.HubOptions{MaxFrameSize: 64 << 20}, ObserverBuffer: 4*agents + 64,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	var stops []func()
	defer func() {
		for _, stop := range stops {
			stop()
		}
		wg.Wait()
	}()
	cfg := mgmtBenchConfig(agents)
	for _, in := range cfg.Instances {
		stop, err := leanMgmtAgent(in.Name).start(ctx, c.URL(), &wg)
		if err != nil {
			b.Fatal(err)
		}
		stops = append(stops, stop)
	}
	client, err := broker.Dial(ctx, c.URL(), []string{mgmtControllerTopic}, &broker.DialOptions{MaxFrameSize: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	request := func(m api.Message) api.Message {
		reqid, _ := api.ReqidOf(m)
		ev, err := api.Mgmt.Encode(m)
		if err != nil {
			b.Fatal(err)
		}
		if err := client.Publish(ctx, mgmtControllerTopic, ev); err != nil {
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
			got, err := api.Mgmt.Decode(ev)
			if err != nil {
				continue
			}
			if id, _ := api.ReqidOf(got); id == reqid {
				return got
			}
		}
	}
	for len(c.Snapshot().Known) < agents {
		select {
		case <-c.Logs():
		case <-ctx.Done():
			b.Fatal("agents never all said hello")
		}
	}
	request(api.StageConfigurationRequest{Reqid: "stage", Config: cfg})
	deploy := func(reqid string) time.Duration {
		t := time.Now()
		r, ok := request(api.DeployRequest{Reqid: reqid}).(api.DeployResponse)
		if !ok || len(r.Results) != agents+1 || !r.Results[agents].Success {
			b.Fatalf("deploy %s: %+v", reqid, r)
		}
		return time.Since(t)
	}
	deploy("warm-up") // welcomes everyone
	lat := make(latencies, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lat = append(lat, deploy("D"+strconv.Itoa(i)))
	}
	b.StopTimer()
	lat.report(b, time.Millisecond, "ms")
}

// leanMgmtAgent answers welcomes and deploy requests with success, its
// deploy Result naming one worker.
func leanMgmtAgent(name string) leanAgent {
	return leanAgent{
		profile: api.Mgmt, topic: mgmtAgentPrefix + name,
		hello: api.NotifyAgentHello{Instance: name, ID: name, Connecting: true, APIVersion: 1},
		replies: map[string]func(string) api.Message{
			"Management::Agent::API::agent_welcome_request": func(reqid string) api.Message {
				return api.AgentWelcomeResponse{Reqid: reqid, Result: api.Result{Reqid: reqid, Instance: name, Success: true}}
			},
			"Management::Agent::API::deploy_request": func(reqid string) api.Message {
				res := api.Result{Reqid: reqid, Instance: name, Success: true, Node: api.Some("worker-" + name)}
				return api.AgentDeployResponse{Reqid: reqid, Results: []api.Result{res}}
			},
		},
	}
}

// BenchmarkMgmtStageValidation measures stage_configuration of a
// configuration with N instances and N+2 nodes: validation, READY copy,
// Broker and metrics port assignment.
func BenchmarkMgmtStageValidation(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("nodes=%d", n+2), func(b *testing.B) {
			c, err := NewCore(Config{Profile: api.Mgmt, Start: t0, NewID: func() string { return "x" }})
			if err != nil {
				b.Fatal(err)
			}
			cfg := mgmtBenchConfig(n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				out := c.Step(t0, Receive{Topic: mgmtControllerTopic, Msg: api.StageConfigurationRequest{Reqid: "S", Config: cfg}})
				if len(out.Publish) != 1 {
					b.Fatal("no response")
				}
			}
		})
	}
}
