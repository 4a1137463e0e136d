package controller

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// Wire values below are written from the spec (clustercontroller-v1.md),
// never taken from the controller's own constants.
const (
	controllerTopic = "zeek/cluster-control/controller"
	agentPrefix     = "zeek/cluster-control/agent/"
)

var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// coreHarness drives a Core with deterministic ids ("id1", "id2", …) and
// a clock measured from t0.
type coreHarness struct {
	t   *testing.T
	c   *Core
	ids int
}

func newCoreHarness(t *testing.T, mode Mode, timeout, sweep time.Duration) *coreHarness {
	t.Helper()
	h := &coreHarness{t: t}
	c, err := NewCore(Config{
		Profile:        api.CC42,
		Mode:           mode,
		RequestTimeout: timeout,
		SweepInterval:  sweep,
		NewID: func() string {
			h.ids++
			return "id" + strconv.Itoa(h.ids)
		},
		Start: t0,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	return h
}

func (h *coreHarness) step(at time.Duration, in Input) Output {
	return h.c.Step(t0.Add(at), in)
}

// --- inputs ------------------------------------------------------------------

var localhost = netip.MustParseAddr("127.0.0.1")

func hubPeer(id uint64) Peer { return Peer{Kind: PeerHub, ID: id} }

func hello(name string, from Peer) Receive {
	return helloV(name, from, 1)
}

func helloV(name string, from Peer, version uint64) Receive {
	return Receive{Topic: agentPrefix + name, From: from,
		Msg: api.NotifyAgentHello{Instance: name, Host: localhost, APIVersion: version}}
}

func welcomeResp(reqid, instance string, success bool) Receive {
	return Receive{Topic: agentPrefix + instance, From: hubPeer(1),
		Msg: api.AgentWelcomeResponse{Reqid: reqid, Result: api.Result{Reqid: reqid, Instance: instance, Success: success}}}
}

func agentResp(reqid, instance string, success bool, node string, errText string) Receive {
	res := api.Result{Reqid: reqid, Instance: instance, Success: success, Error: errText}
	if node != "" {
		res.Node = api.Some(node)
	}
	return Receive{Topic: agentPrefix + instance, From: hubPeer(1),
		Msg: api.AgentSetConfigurationResponse{Reqid: reqid, Result: res}}
}

func setConfig(reqid string, cfg api.Configuration) Receive {
	return Receive{Topic: controllerTopic, From: hubPeer(100),
		Msg: api.SetConfigurationRequest{Reqid: reqid, Config: cfg}}
}

func getInstances(reqid string) Receive {
	return Receive{Topic: controllerTopic, From: hubPeer(100), Msg: api.GetInstancesRequest{Reqid: reqid}}
}

func testTimeout(reqid string, withState bool) Receive {
	return Receive{Topic: controllerTopic, From: hubPeer(100), Msg: api.TestTimeoutRequest{Reqid: reqid, WithState: withState}}
}

// connecting is an instance whose agent connects to the controller, as
// zeek-client sends it: 0.0.0.0 and no port.
func connecting(name string) api.Instance {
	return api.Instance{Name: name, Host: netip.IPv4Unspecified()}
}

func listening(name string, port uint16) api.Instance {
	return api.Instance{Name: name, Host: localhost, ListenPort: api.Some(broker.TCPPort(port))}
}

func config(id string, insts ...api.Instance) api.Configuration {
	cfg := api.Configuration{ID: id, Instances: insts}
	for i, in := range insts {
		cfg.Nodes = append(cfg.Nodes, api.Node{
			Name: fmt.Sprintf("worker-%d", i+1), Instance: in.Name,
			Port: api.Some(broker.TCPPort(uint16(5000 + i))), Role: api.ClusterRoleWorker, State: api.StateRunning,
		})
	}
	return cfg
}

// --- expected outputs ----------------------------------------------------------

func toAgent(name string, m api.Message) Outbound { return Outbound{Topic: agentPrefix + name, Msg: m} }
func toClient(m api.Message) Outbound             { return Outbound{Topic: controllerTopic, Msg: m} }

func welcomeReq(id string) api.Message { return api.AgentWelcomeRequest{Reqid: id} }
func standbyReq() api.Message          { return api.AgentStandbyRequest{Reqid: ""} }
func childReq(id string, cfg api.Configuration) api.Message {
	return api.AgentSetConfigurationRequest{Reqid: id, Config: cfg}
}

func setConfigResp(reqid string, results ...api.Result) api.Message {
	if results == nil {
		results = []api.Result{}
	}
	return api.SetConfigurationResponse{Reqid: reqid, Results: results}
}

func okResult(reqid, instance string) api.Result {
	return api.Result{Reqid: reqid, Instance: instance, Success: true}
}

func failResult(reqid, instance, errText string) api.Result {
	return api.Result{Reqid: reqid, Instance: instance, Success: false, Error: errText}
}

// timedOut is the spec's [R, "", F, nil, "request timed out", nil].
func timedOut(reqid string) api.Result {
	return api.Result{Reqid: reqid, Success: false, Error: "request timed out"}
}

// instanceRecord is the Instance record of spec §4.3: [name, host, port|nil].
func instanceRecord(in api.Instance) broker.Value {
	port := broker.None()
	if p, ok := in.ListenPort.Get(); ok {
		port = broker.FromPort(p)
	}
	return broker.Vector(broker.String(in.Name), broker.Address(in.Host), port)
}

func instancesResult(reqid string, insts ...api.Instance) api.Message {
	recs := make([]broker.Value, len(insts))
	for i, in := range insts {
		recs[i] = instanceRecord(in)
	}
	return api.GetInstancesResponse{Reqid: reqid, Result: api.Result{Reqid: reqid, Success: true, Data: broker.Vector(recs...)}}
}

// want is the expected Output of one step. Logs lists the lines at info
// level and above, as "LEVEL message"; debug lines are zcc's own and only
// checked where a test says so (Debug).
type want struct {
	Publish []Outbound
	Logs    []string
	Ready   [][]string
	Dials   []DialRequest
	Errors  []ErrorReply
	// Wake is the offset from t0 of the next wake-up; noWake for none.
	Wake  time.Duration
	Debug []string
}

const noWake = time.Duration(-1)

func levelName(l slog.Level) string {
	switch l {
	case slog.LevelDebug:
		return "DEBUG"
	case slog.LevelInfo:
		return "INFO"
	case slog.LevelWarn:
		return "WARNING"
	case slog.LevelError:
		return "ERROR"
	}
	return l.String()
}

func describe(o Outbound) string { return fmt.Sprintf("%s %T%+v", o.Topic, o.Msg, o.Msg) }

// check compares got with w and reports every difference.
func check(t *testing.T, label string, got Output, w want) {
	t.Helper()
	if len(got.Publish) != len(w.Publish) {
		t.Errorf("%s: published %d messages, want %d:\n got %s\nwant %s", label, len(got.Publish), len(w.Publish), describeAll(got.Publish), describeAll(w.Publish))
	} else {
		for i := range got.Publish {
			g, x := got.Publish[i], w.Publish[i]
			if g.Topic != x.Topic || !api.MessagesEqual(g.Msg, x.Msg) {
				t.Errorf("%s: message %d:\n got %s\nwant %s", label, i, describe(g), describe(x))
			}
		}
	}
	var logs, debug []string
	for _, l := range got.Logs {
		if l.Level < slog.LevelInfo {
			debug = append(debug, l.Msg)
			continue
		}
		logs = append(logs, levelName(l.Level)+" "+l.Msg)
	}
	if strings.Join(logs, "\n") != strings.Join(w.Logs, "\n") {
		t.Errorf("%s: logs\n got %q\nwant %q", label, logs, w.Logs)
	}
	if w.Debug != nil && strings.Join(debug, "\n") != strings.Join(w.Debug, "\n") {
		t.Errorf("%s: debug logs\n got %q\nwant %q", label, debug, w.Debug)
	}
	var ready [][]string
	for _, r := range got.AgentsReady {
		ready = append(ready, r.Instances)
	}
	if fmt.Sprint(ready) != fmt.Sprint(w.Ready) || len(ready) != len(w.Ready) {
		t.Errorf("%s: notify_agents_ready %q, want %q", label, ready, w.Ready)
	}
	if fmt.Sprint(got.Dials) != fmt.Sprint(w.Dials) {
		t.Errorf("%s: dials %v, want %v", label, got.Dials, w.Dials)
	}
	if fmt.Sprint(got.Errors) != fmt.Sprint(w.Errors) {
		t.Errorf("%s: error replies %q, want %q", label, got.Errors, w.Errors)
	}
	wantWake := time.Time{}
	if w.Wake != noWake {
		wantWake = t0.Add(w.Wake)
	}
	if !got.Wake.Equal(wantWake) {
		t.Errorf("%s: wake %v, want %v", label, offset(got.Wake), offset(wantWake))
	}
}

func offset(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return "t0+" + t.Sub(t0).String()
}

func describeAll(os []Outbound) string {
	var parts []string
	for _, o := range os {
		parts = append(parts, describe(o))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

// script is a sequence of steps with their expected outputs.
type scriptStep struct {
	at   time.Duration
	in   Input
	want want
}

func runScript(t *testing.T, h *coreHarness, steps []scriptStep) {
	t.Helper()
	for i, s := range steps {
		got := h.step(s.at, s.in)
		check(t, fmt.Sprintf("step %d (%s, %T)", i, s.at, s.in), got, s.want)
	}
}
