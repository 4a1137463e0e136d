package controller

import (
	"fmt"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// Core tests of the Management profile, message by message. Expected
// values come from management-websocket.md §2.4–§2.10 and
// real-zeek-8.1-observations.md, written out here rather than taken from
// the controller's constants.

const (
	mgmtControllerTopic = "zeek/management/controller"
	mgmtAgentPrefix     = "zeek/management/agent/"
)

type mgmtHarness struct {
	t     *testing.T
	c     *Core
	ids   int
	peers map[string]Peer
}

func newMgmtHarness(t *testing.T, mode Mode, tweak func(*Config)) *mgmtHarness {
	t.Helper()
	h := &mgmtHarness{t: t, peers: map[string]Peer{}}
	cfg := Config{
		Profile: api.Mgmt, Mode: mode, RequestTimeout: 10 * sec, SweepInterval: sec, Start: t0,
		NewID: func() string { h.ids++; return "a" + strconv.Itoa(h.ids) },
	}
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := NewCore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	return h
}

func (h *mgmtHarness) step(at time.Duration, in Input) Output { return h.c.Step(t0.Add(at), in) }

// peer returns the connection of an agent, connected from 127.0.0.N.
func (h *mgmtHarness) peer(at time.Duration, name string) Peer {
	if p, ok := h.peers[name]; ok {
		return p
	}
	p := hubPeer(uint64(len(h.peers) + 1))
	h.peers[name] = p
	h.step(at, PeerConnected{Peer: p, Addr: netip.AddrFrom4([4]byte{127, 0, 0, byte(len(h.peers))})})
	return p
}

func (h *mgmtHarness) hello(at time.Duration, name string) Output {
	return h.step(at, Receive{Topic: mgmtAgentPrefix + name, From: h.peer(at, name),
		Msg: api.NotifyAgentHello{Instance: name, ID: "broker-" + name, Connecting: true, APIVersion: 1}})
}

func (h *mgmtHarness) agent(at time.Duration, name string, m api.Message) Output {
	return h.step(at, Receive{Topic: mgmtAgentPrefix + name, From: h.peer(at, name), Msg: m})
}

func (h *mgmtHarness) client(at time.Duration, m api.Message) Output {
	return h.step(at, Receive{Topic: mgmtControllerTopic, From: hubPeer(100), Msg: m})
}

// welcome answers every welcome request in out with success.
func (h *mgmtHarness) welcome(at time.Duration, out Output) Output {
	var all Output
	for _, o := range out.Publish {
		if w, ok := o.Msg.(api.AgentWelcomeRequest); ok {
			name := strings.TrimPrefix(o.Topic, mgmtAgentPrefix)
			got := h.agent(at, name, api.AgentWelcomeResponse{Reqid: w.Reqid, Result: api.Result{Reqid: w.Reqid, Success: true, Instance: name}})
			all.Publish = append(all.Publish, got.Publish...)
			all.Logs = append(all.Logs, got.Logs...)
			all.AgentsReady = append(all.AgentsReady, got.AgentsReady...)
			if got.Configs != nil {
				all.Configs = got.Configs
			}
		}
	}
	return all
}

// stage stages cfg and fails the test unless it is accepted.
func (h *mgmtHarness) stage(at time.Duration, cfg api.Configuration) {
	h.t.Helper()
	out := h.client(at, api.StageConfigurationRequest{Reqid: "S-" + cfg.ID, Config: cfg})
	r := only[api.StageConfigurationResponse](h.t, out)
	if len(r.Results) != 1 || !r.Results[0].Success {
		h.t.Fatalf("stage %s: %+v", cfg.ID, r.Results)
	}
}

// only returns the single published message of type M.
func only[M api.Message](t *testing.T, out Output) M {
	t.Helper()
	ms := all[M](out)
	if len(ms) != 1 {
		t.Fatalf("want one %T, got %s", *new(M), describeAll(out.Publish))
	}
	return ms[0]
}

func all[M api.Message](out Output) []M {
	var ms []M
	for _, o := range out.Publish {
		if m, ok := o.Msg.(M); ok {
			ms = append(ms, m)
		}
	}
	return ms
}

// topicsOf lists the topics messages of type M went to.
func topicsOf[M api.Message](out Output) []string {
	var ts []string
	for _, o := range out.Publish {
		if _, ok := o.Msg.(M); ok {
			ts = append(ts, o.Topic)
		}
	}
	return ts
}

func inst(name string) api.Instance { return api.Instance{Name: name, Host: netip.IPv4Unspecified()} }

func listenInst(name string, port uint16) api.Instance {
	return api.Instance{Name: name, Host: localhost, ListenPort: api.Some(broker.TCPPort(port))}
}

func node(name, instance string, role api.ClusterRole, port uint16) api.Node {
	n := api.Node{Name: name, Instance: instance, Role: role, State: api.StateRunning}
	if port != 0 {
		n.Port = api.Some(broker.TCPPort(port))
	}
	return n
}

func mcfg(id string, insts []api.Instance, nodes ...api.Node) api.Configuration {
	return api.Configuration{ID: id, Instances: insts, Nodes: nodes}
}

func errorsOf(rs []api.Result) []string {
	var es []string
	for _, r := range rs {
		es = append(es, r.Error)
	}
	return es
}

func resultString(r api.Result) string {
	s := fmt.Sprintf("[%s %v inst=%q err=%q node=%s", r.Reqid, r.Success, r.Instance, r.Error, r.Node)
	if !r.Data.IsNone() {
		s += " data=" + r.Data.String()
	}
	return s + "]"
}

func resultList(rs []api.Result) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, resultString(r))
	}
	return strings.Join(parts, " ")
}

// --- stage_configuration ------------------------------------------------------------

func TestMgmtCoreStageValidation(t *testing.T) {
	i1 := []api.Instance{inst("instance-1")}
	cases := []struct {
		name   string
		tweak  func(*Config)
		cfg    api.Configuration
		errors []string
	}{
		{name: "duplicate instances", cfg: mcfg("c", []api.Instance{inst("instance-1"), listenInst("instance-1", 2151)}),
			errors: []string{"multiple instances named 'instance-1'"}},
		{name: "duplicate nodes, reported once", cfg: mcfg("c", i1,
			node("manager", "instance-1", api.ClusterRoleManager, 0), node("manager", "instance-1", api.ClusterRoleLogger, 0),
			node("manager", "instance-1", api.ClusterRoleProxy, 0)),
			errors: []string{"multiple nodes named 'manager'"}},
		{name: "names collide", cfg: mcfg("c", []api.Instance{inst("b"), inst("a")},
			node("a", "a", api.ClusterRoleManager, 0), node("b", "a", api.ClusterRoleWorker, 0)),
			errors: []string{"node and instance names collide: a, b"}},
		{name: "undeclared instances", cfg: mcfg("c", i1,
			node("manager", "instance-1", api.ClusterRoleManager, 0), node("logger", "instance-9", api.ClusterRoleLogger, 0),
			node("worker", "instance-8", api.ClusterRoleWorker, 0)),
			errors: []string{"node 'logger' has undeclared instance name 'instance-9'", "node 'worker' has undeclared instance name 'instance-8'"}},
		{name: "agent port", cfg: mcfg("c", []api.Instance{listenInst("instance-1", 2151)}, node("manager", "instance-1", api.ClusterRoleManager, 2151)),
			errors: []string{"node 'manager' port 2151/tcp conflicts with agent port on instance 'instance-1'"}},
		{name: "agent port of another instance is fine", cfg: mcfg("c", []api.Instance{listenInst("instance-1", 2151), inst("instance-2")},
			node("manager", "instance-2", api.ClusterRoleManager, 2151))},
		{name: "controller port", cfg: mcfg("c", i1, node("manager", "instance-1", api.ClusterRoleManager, 2150)),
			errors: []string{"node 'manager' port 2150/tcp conflicts with controller port"}},
		{name: "custom controller port", tweak: func(c *Config) { c.Mgmt.BrokerPort = broker.TCPPort(2160) },
			cfg:    mcfg("c", i1, node("manager", "instance-1", api.ClusterRoleManager, 2160), node("logger", "instance-1", api.ClusterRoleLogger, 2150)),
			errors: []string{"node 'manager' port 2160/tcp conflicts with controller port"}},
		{name: "same port on one instance, reported once", cfg: mcfg("c", []api.Instance{inst("instance-1"), inst("instance-2")},
			node("manager", "instance-1", api.ClusterRoleManager, 5000), node("logger", "instance-1", api.ClusterRoleLogger, 5000),
			node("proxy", "instance-1", api.ClusterRoleProxy, 5000), node("logger-2", "instance-2", api.ClusterRoleLogger, 5000)),
			errors: []string{"multiple nodes on instance 'instance-1' using port 5000/tcp"}},
		{name: "auto-assignment disabled", tweak: func(c *Config) { c.Mgmt.NoBrokerPortAutoAssign = true },
			cfg: mcfg("c", i1, node("manager", "instance-1", api.ClusterRoleManager, 0), node("logger", "instance-1", api.ClusterRoleLogger, 0),
				node("proxy", "instance-1", api.ClusterRoleProxy, 2300), node("worker", "instance-1", api.ClusterRoleWorker, 0)),
			errors: []string{"Broker port auto-assignment disabled but nodes logger, manager lack ports"}},
		{name: "auto-assignment disabled, all ports given", tweak: func(c *Config) { c.Mgmt.NoBrokerPortAutoAssign = true },
			cfg: mcfg("c", i1, node("manager", "instance-1", api.ClusterRoleManager, 2300), node("worker", "instance-1", api.ClusterRoleWorker, 0))},
		// observations §1: four errors, sorted by error string; with
		// auto-assignment off a fifth, which sorts first.
		{name: "many errors sorted", tweak: func(c *Config) { c.Mgmt.NoBrokerPortAutoAssign = true },
			cfg: mcfg("c", i1, node("logger", "instance-7", api.ClusterRoleLogger, 2150), node("proxy", "instance-8", api.ClusterRoleProxy, 0),
				node("manager", "instance-1", api.ClusterRoleManager, 2150)),
			errors: []string{
				"Broker port auto-assignment disabled but nodes proxy lack ports",
				"node 'logger' has undeclared instance name 'instance-7'",
				"node 'logger' port 2150/tcp conflicts with controller port",
				"node 'manager' port 2150/tcp conflicts with controller port",
				"node 'proxy' has undeclared instance name 'instance-8'",
			}},
		{name: "empty configuration", cfg: mcfg("c", nil)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newMgmtHarness(t, ModeZeek42, tc.tweak)
			out := h.client(0, api.StageConfigurationRequest{Reqid: "R1", Config: tc.cfg})
			r := only[api.StageConfigurationResponse](t, out)
			if r.Reqid != "R1" {
				t.Errorf("reqid %q", r.Reqid)
			}
			if tc.errors == nil {
				if len(r.Results) != 1 || !r.Results[0].Success || r.Results[0].Reqid != "R1" || r.Results[0].Data.String() != broker.String("c").String() ||
					r.Results[0].Instance != "" || r.Results[0].Node.Set || out.Configs == nil {
					t.Fatalf("want one success Result with data \"c\" and the configs to persist, got %s (configs %v)", resultList(r.Results), out.Configs)
				}
				return
			}
			if got := errorsOf(r.Results); !reflect.DeepEqual(got, tc.errors) {
				t.Errorf("errors\n got %q\nwant %q", got, tc.errors)
			}
			for _, res := range r.Results {
				if res.Success || res.Reqid != "R1" || res.Instance != "" || res.Node.Set || !res.Data.IsNone() {
					t.Errorf("failure Result %s: only reqid and error may be set", resultString(res))
				}
			}
			if s := h.c.Snapshot(); s.Configs.Staged != nil || s.Configs.Ready != nil || len(s.Requests) != 0 || out.Configs != nil {
				t.Errorf("a rejected configuration changed the state: %+v", s)
			}
		})
	}
}

func portsOf(cfg *api.Configuration) map[string]string {
	m := map[string]string{}
	for _, n := range cfg.Nodes {
		m[n.Name] = n.Port.String() + " " + n.MetricsPort.String()
	}
	return m
}

func TestMgmtCoreReadyConfigPorts(t *testing.T) {
	// zeek-testing-cluster stage-config-auto-assign-multi-instance (the
	// baseline since Zeek 7): Broker ports count across instances in the
	// order instance, role (manager, logger, proxy), name.
	multi := mcfg("multi", []api.Instance{inst("instance-1"), inst("instance-2")},
		node("manager", "instance-1", api.ClusterRoleManager, 0),
		node("logger-01", "instance-1", api.ClusterRoleLogger, 0),
		node("proxy-01", "instance-1", api.ClusterRoleProxy, 0),
		node("proxy-02", "instance-1", api.ClusterRoleProxy, 0),
		node("logger-02", "instance-2", api.ClusterRoleLogger, 0),
		node("proxy-03", "instance-2", api.ClusterRoleProxy, 0),
		node("proxy-04", "instance-2", api.ClusterRoleProxy, 0),
		node("worker-01", "instance-2", api.ClusterRoleWorker, 0))
	cases := []struct {
		name  string
		tweak func(*Config)
		known []string
		cfg   api.Configuration
		want  map[string]string
	}{
		{name: "multi-instance, no metrics", tweak: func(c *Config) { c.Mgmt.NoMetricsPortAutoAssign = true }, cfg: multi,
			want: map[string]string{"manager": "2200/tcp nil", "logger-01": "2201/tcp nil", "proxy-01": "2202/tcp nil", "proxy-02": "2203/tcp nil",
				"logger-02": "2204/tcp nil", "proxy-03": "2205/tcp nil", "proxy-04": "2206/tcp nil", "worker-01": "nil nil"}},
		// Metrics ports count per host address: both instances connect
		// from 0.0.0.0 here, so they share one counter.
		{name: "multi-instance with metrics", cfg: multi,
			want: map[string]string{"manager": "2200/tcp 9000/tcp", "logger-01": "2201/tcp 9001/tcp", "proxy-01": "2202/tcp 9002/tcp", "proxy-02": "2203/tcp 9003/tcp",
				"logger-02": "2204/tcp 9004/tcp", "proxy-03": "2205/tcp 9005/tcp", "proxy-04": "2206/tcp 9006/tcp", "worker-01": "nil 9007/tcp"}},
		// Known agents connect from 127.0.0.1 and 127.0.0.2: one metrics
		// counter each.
		{name: "metrics per host", known: []string{"instance-1", "instance-2"}, cfg: multi,
			want: map[string]string{"manager": "2200/tcp 9000/tcp", "logger-01": "2201/tcp 9001/tcp", "proxy-01": "2202/tcp 9002/tcp", "proxy-02": "2203/tcp 9003/tcp",
				"logger-02": "2204/tcp 9000/tcp", "proxy-03": "2205/tcp 9001/tcp", "proxy-04": "2206/tcp 9002/tcp", "worker-01": "nil 9003/tcp"}},
		{name: "taken ports are skipped", cfg: mcfg("t", []api.Instance{listenInst("instance-1", 2201)},
			node("manager", "instance-1", api.ClusterRoleManager, 0), node("logger", "instance-1", api.ClusterRoleLogger, 2200),
			node("proxy", "instance-1", api.ClusterRoleProxy, 0),
			api.Node{Name: "worker", Instance: "instance-1", Role: api.ClusterRoleWorker, MetricsPort: api.Some(broker.TCPPort(9000))},
			api.Node{Name: "worker-2", Instance: "instance-1", Role: api.ClusterRoleWorker, Port: api.Some(broker.TCPPort(9001))}),
			want: map[string]string{"manager": "2202/tcp 9002/tcp", "logger": "2200/tcp 9003/tcp", "proxy": "2203/tcp 9004/tcp",
				"worker": "nil 9000/tcp", "worker-2": "9001/tcp 9005/tcp"}},
		{name: "start ports", tweak: func(c *Config) { c.Mgmt.BrokerStartPort, c.Mgmt.MetricsStartPort = 3000, 4000 },
			cfg:  mcfg("s", []api.Instance{inst("i")}, node("manager", "i", api.ClusterRoleManager, 0), node("w", "i", api.ClusterRoleWorker, 0)),
			want: map[string]string{"manager": "3000/tcp 4000/tcp", "w": "nil 4001/tcp"}},
		{name: "both off", tweak: func(c *Config) { c.Mgmt.NoMetricsPortAutoAssign, c.Mgmt.NoBrokerPortAutoAssign = true, true },
			cfg:  mcfg("o", []api.Instance{inst("i")}, node("manager", "i", api.ClusterRoleManager, 2500), node("w", "i", api.ClusterRoleWorker, 0)),
			want: map[string]string{"manager": "2500/tcp nil", "w": "nil nil"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newMgmtHarness(t, ModeZeek42, tc.tweak)
			for _, n := range tc.known {
				h.hello(0, n)
			}
			h.stage(0, tc.cfg)
			s := h.c.Snapshot()
			if got := portsOf(s.Configs.Ready); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("READY ports\n got %v\nwant %v", got, tc.want)
			}
			// STAGED is the configuration exactly as sent.
			if !s.Configs.Staged.Equal(tc.cfg) {
				t.Errorf("STAGED %+v differs from what was sent", s.Configs.Staged)
			}
		})
	}
}

func TestMgmtCoreReadyConfigHosts(t *testing.T) {
	h := newMgmtHarness(t, ModeZeek42, nil)
	h.hello(0, "known")
	cfg := mcfg("h", []api.Instance{inst("known"), inst("unknown"), listenInst("listening", 2152),
		{Name: "pinned", Host: netip.MustParseAddr("10.0.0.9")}})
	h.stage(sec, cfg)
	hosts := map[string]string{}
	for _, in := range h.c.Snapshot().Configs.Ready.Instances {
		hosts[in.Name] = in.Host.String() + " " + in.ListenPort.String()
	}
	want := map[string]string{"known": "127.0.0.1 nil", "unknown": "0.0.0.0 nil", "listening": "127.0.0.1 2152/tcp", "pinned": "10.0.0.9 nil"}
	if !reflect.DeepEqual(hosts, want) {
		t.Errorf("READY hosts %v, want %v", hosts, want)
	}
}

// --- get_configuration and get_instances ---------------------------------------------

func TestMgmtCoreGetConfiguration(t *testing.T) {
	h := newMgmtHarness(t, ModeZeek42, nil)
	for _, tc := range []struct {
		deployed bool
		err      string
	}{{false, "no staged configuration available"}, {true, "no deployed configuration available"}} {
		r := only[api.GetConfigurationResponse](t, h.client(0, api.GetConfigurationRequest{Reqid: "G", Deployed: tc.deployed}))
		if r.Reqid != "G" || r.Result.Reqid != "G" || r.Result.Success || r.Result.Error != tc.err || !r.Result.Data.IsNone() {
			t.Errorf("deployed=%v before any: %s, want error %q", tc.deployed, resultString(r.Result), tc.err)
		}
	}
	cfg := mcfg("c1", []api.Instance{inst("i1")}, node("manager", "i1", api.ClusterRoleManager, 0))
	h.stage(0, cfg)
	r := only[api.GetConfigurationResponse](t, h.client(0, api.GetConfigurationRequest{Reqid: "G2"}))
	got, err := api.Mgmt.DecodeConfiguration(r.Result.Data)
	if err != nil || !r.Result.Success || !got.Equal(cfg) {
		t.Errorf("staged: %+v %v, want exactly what was sent (no ports)", got, err)
	}
	r = only[api.GetConfigurationResponse](t, h.client(0, api.GetConfigurationRequest{Reqid: "G3", Deployed: true}))
	if r.Result.Error != "no deployed configuration available" {
		t.Errorf("deployed before deploy: %s", resultString(r.Result))
	}
}

func TestMgmtCoreGetInstancesListsKnown(t *testing.T) {
	h := newMgmtHarness(t, ModeZeek42, nil)
	r := only[api.GetInstancesResponse](t, h.client(0, api.GetInstancesRequest{Reqid: "I1"}))
	if insts, err := api.Mgmt.DecodeInstances(r.Result.Data); err != nil || len(insts) != 0 || r.Result.Data.Kind() != broker.KindVector {
		t.Errorf("before any agent: %s, want an empty vector", resultString(r.Result))
	}
	h.hello(0, "zz")
	h.hello(0, "aa")
	// A listening agent the controller dialled says hello with
	// connecting=F: its port is listed.
	dialled := Peer{Kind: PeerDialed, ID: 1}
	h.step(0, PeerConnected{Peer: dialled, Addr: netip.MustParseAddr("10.1.1.1"), Port: api.Some(broker.TCPPort(2152))})
	h.step(0, Receive{Topic: mgmtAgentPrefix + "mm", From: dialled, Msg: api.NotifyAgentHello{Instance: "mm", ID: "x", Connecting: false, APIVersion: 1}})
	r = only[api.GetInstancesResponse](t, h.client(0, api.GetInstancesRequest{Reqid: "I2"}))
	insts, err := api.Mgmt.DecodeInstances(r.Result.Data)
	want := []api.Instance{
		{Name: "aa", Host: netip.MustParseAddr("127.0.0.2")},
		{Name: "mm", Host: netip.MustParseAddr("10.1.1.1"), ListenPort: api.Some(broker.TCPPort(2152))},
		{Name: "zz", Host: netip.MustParseAddr("127.0.0.1")},
	}
	if err != nil || !reflect.DeepEqual(insts, want) {
		t.Errorf("get_instances %+v %v, want %+v (sorted by name, known only)", insts, err, want)
	}
}

// --- agent identity ------------------------------------------------------------------

func TestMgmtCoreHelloIdentity(t *testing.T) {
	t.Run("broker-id", func(t *testing.T) {
		h := newMgmtHarness(t, ModeZeek42, func(c *Config) {
			c.Mgmt.Identity, c.Mgmt.BrokerPeerIDs = IdentityBrokerID, []string{"broker-real"}
		})
		out := h.hello(0, "fake-1")
		var warnings []string
		for _, l := range out.Logs {
			if l.Level > 0 {
				warnings = append(warnings, l.Msg)
			}
		}
		wantWarn := []string{"notify_agent_hello from fake-1 with unknown Broker ID broker-fake-1",
			"notify_agent_hello from fake-1 lacks network state, Broker ID broker-fake-1"}
		if !reflect.DeepEqual(warnings, wantWarn) {
			t.Errorf("warnings %q, want %q", warnings, wantWarn)
		}
		h.step(0, Receive{Topic: mgmtAgentPrefix + "real", From: h.peer(0, "real"),
			Msg: api.NotifyAgentHello{Instance: "real", ID: "broker-real", Connecting: true, APIVersion: 1}})
		if s := h.c.Snapshot(); !reflect.DeepEqual(s.Known, []string{"real"}) {
			t.Fatalf("known %v, want only the Broker peer", s.Known)
		}
		// Unknown, yet welcomed once configured (spec §3.4, observed).
		h.stage(sec, mcfg("c", []api.Instance{inst("fake-1")}, node("logger-f", "fake-1", api.ClusterRoleLogger, 0)))
		out = h.client(sec, api.DeployRequest{Reqid: "D1"})
		if n := len(all[api.AgentWelcomeRequest](out)); n != 0 {
			t.Fatalf("deploy welcomed an agent that is not known: %s", describeAll(out.Publish))
		}
		out = h.hello(2*sec, "fake-1")
		if got := topicsOf[api.AgentWelcomeRequest](out); !reflect.DeepEqual(got, []string{mgmtAgentPrefix + "fake-1"}) {
			t.Fatalf("hello after the deploy: %s, want a welcome to fake-1", describeAll(out.Publish))
		}
	})
	t.Run("peer", func(t *testing.T) {
		h := newMgmtHarness(t, ModeZeek42, nil)
		// An in-process sender is no peering.
		h.step(0, Receive{Topic: mgmtAgentPrefix + "x", Msg: api.NotifyAgentHello{Instance: "x", ID: "x", Connecting: true, APIVersion: 1}})
		h.hello(0, "a1")
		if s := h.c.Snapshot(); !reflect.DeepEqual(s.Known, []string{"a1"}) || s.Speakers["a1"] != h.peers["a1"] {
			t.Fatalf("known %v speakers %v", s.Known, s.Speakers)
		}
	})
	t.Run("api version", func(t *testing.T) {
		h := newMgmtHarness(t, ModeZeek42, nil)
		h.hello(0, "a1")
		h.stage(0, mcfg("c", []api.Instance{inst("a1")}))
		out := h.welcome(0, h.client(0, api.DeployRequest{Reqid: "D"}))
		only[api.AgentDeployRequest](t, out)
		out = h.step(sec, Receive{Topic: mgmtAgentPrefix + "a1", From: h.peers["a1"],
			Msg: api.NotifyAgentHello{Instance: "a1", ID: "x", Connecting: true, APIVersion: 2}})
		if got := topicsOf[api.AgentStandbyRequest](out); !reflect.DeepEqual(got, []string{mgmtAgentPrefix + "a1"}) {
			t.Errorf("hello with api_version 2: %s, want a standby", describeAll(out.Publish))
		}
		if s := h.c.Snapshot(); len(s.Known) != 0 || len(s.Instances) != 0 || len(s.Ready) != 0 {
			t.Errorf("after a wrong version: %+v", s)
		}
	})
}

// --- deploy ---------------------------------------------------------------------------

func TestMgmtCoreDeployErrors(t *testing.T) {
	h := newMgmtHarness(t, ModeZeek42, nil)
	r := only[api.DeployResponse](t, h.client(0, api.DeployRequest{Reqid: "D0"}))
	if got := errorsOf(r.Results); !reflect.DeepEqual(got, []string{"no configuration available to deploy"}) || r.Results[0].Reqid != "D0" {
		t.Errorf("nothing staged: %s", resultList(r.Results))
	}
	h.stage(0, mcfg("c1", []api.Instance{inst("a1")}))
	if out := h.client(0, api.DeployRequest{Reqid: "D1"}); len(out.Publish) != 0 {
		t.Fatalf("deploy waiting for a1: %s", describeAll(out.Publish))
	}
	r = only[api.DeployResponse](t, h.client(sec, api.DeployRequest{Reqid: "D2"}))
	if got := errorsOf(r.Results); !reflect.DeepEqual(got, []string{"earlier deployment D1 still pending"}) {
		t.Errorf("second deploy: %s", resultList(r.Results))
	}
	// D1 times out: created at 0, due at 10 s, swept at 10 s.
	out := h.step(10*sec, Tick{})
	r = only[api.DeployResponse](t, out)
	if r.Reqid != "D1" || len(r.Results) != 1 || r.Results[0].Error != "request timed out" || r.Results[0].Reqid != "D1" {
		t.Errorf("timeout: %s", resultList(r.Results))
	}
	if s := h.c.Snapshot(); s.Pending != "" || s.Configs.Deployed != nil {
		t.Errorf("after the timeout: pending %q deployed %v", s.Pending, s.Configs.Deployed)
	}
}

func TestMgmtCoreDeployEmptyConfigurationAtOnce(t *testing.T) {
	h := newMgmtHarness(t, ModeZeek42, nil)
	h.deployed(0, mcfg("c1", []api.Instance{inst("a1")}))
	h.stage(0, mcfg("empty", nil))
	out := h.client(sec, api.DeployRequest{Reqid: "D2"})
	r := only[api.DeployResponse](t, out)
	if len(r.Results) != 1 || !r.Results[0].Success || r.Results[0].Data.String() != broker.String("empty").String() {
		t.Errorf("empty deploy: %s", resultList(r.Results))
	}
	// a1 is dropped with a standby, which nobody waits for.
	if got := topicsOf[api.AgentStandbyRequest](out); !reflect.DeepEqual(got, []string{mgmtAgentPrefix + "a1"}) {
		t.Errorf("standby %v", got)
	}
	if s := h.c.Snapshot(); s.Configs.Deployed == nil || s.Configs.Deployed.ID != "empty" || out.Configs == nil {
		t.Errorf("deployed %+v configs %v", s.Configs.Deployed, out.Configs)
	}
}

func TestMgmtCoreDeployFlow(t *testing.T) {
	h := newMgmtHarness(t, ModeZeek42, nil)
	h.hello(0, "i1")
	h.deployed(0, mcfg("c0", []api.Instance{inst("old")}))
	cfg := mcfg("c1", []api.Instance{inst("i1"), inst("i2")},
		node("manager", "i1", api.ClusterRoleManager, 0), node("worker", "i2", api.ClusterRoleWorker, 0))
	h.stage(sec, cfg)
	// Reconciliation: old is dropped with a standby, i1 (known) welcomed,
	// i2 (not known yet) waited for.
	out := h.client(sec, api.DeployRequest{Reqid: "D1"})
	if got := topicsOf[api.AgentStandbyRequest](out); !reflect.DeepEqual(got, []string{mgmtAgentPrefix + "old"}) {
		t.Errorf("standby to %v", got)
	}
	if got := topicsOf[api.AgentWelcomeRequest](out); !reflect.DeepEqual(got, []string{mgmtAgentPrefix + "i1"}) {
		t.Errorf("welcome to %v", got)
	}
	if out = h.welcome(sec, out); len(all[api.AgentDeployRequest](out)) != 0 {
		t.Fatalf("deployed before i2 was ready: %s", describeAll(out.Publish))
	}
	out = h.welcome(2*sec, h.hello(2*sec, "i2"))
	reqs := all[api.AgentDeployRequest](out)
	if got := topicsOf[api.AgentDeployRequest](out); !reflect.DeepEqual(got, []string{mgmtAgentPrefix + "i1", mgmtAgentPrefix + "i2"}) || len(out.AgentsReady) != 1 {
		t.Fatalf("deploy requests to %v, ready %v", got, out.AgentsReady)
	}
	ready := h.c.Snapshot().Configs.Ready
	for _, r := range reqs {
		if r.Force || !r.Config.Equal(*ready) {
			t.Errorf("deploy_request %+v: want the READY configuration, force F", r)
		}
	}
	// Agent Results keep the agent-side reqid; the controller's own comes
	// last.
	outputs, err := api.Mgmt.NodeOutputsValue(api.NodeOutputs{Stdout: "out", Stderr: "err"})
	if err != nil {
		t.Fatal(err)
	}
	i1 := []api.Result{{Reqid: reqs[0].Reqid, Success: true, Instance: "i1", Node: api.Some("manager")}}
	i2 := []api.Result{
		{Reqid: reqs[1].Reqid, Success: false, Instance: "i2", Error: "request timed out"},
		{Reqid: reqs[1].Reqid, Success: false, Instance: "i2", Node: api.Some("worker"), Data: outputs},
	}
	if out := h.agent(3*sec, "i2", api.AgentDeployResponse{Reqid: reqs[1].Reqid, Results: i2}); len(out.Publish) != 0 {
		t.Fatalf("responded before i1 answered: %s", describeAll(out.Publish))
	}
	out = h.agent(3*sec, "i1", api.AgentDeployResponse{Reqid: reqs[0].Reqid, Results: i1})
	r := only[api.DeployResponse](t, out)
	want := append(append(append([]api.Result{}, i2...), i1...), api.Result{Reqid: "D1", Success: true, Data: broker.String("c1")})
	if !api.MessagesEqual(r, api.DeployResponse{Reqid: "D1", Results: want}) {
		t.Errorf("deploy_response\n got %s\nwant %s", resultList(r.Results), resultList(want))
	}
	s := h.c.Snapshot()
	if s.Pending != "" || s.Configs.Deployed == nil || !s.Configs.Deployed.Equal(*ready) || out.Configs == nil {
		t.Errorf("after the deployment: %+v", s)
	}
	// A late duplicate answer changes nothing.
	if out := h.agent(4*sec, "i1", api.AgentDeployResponse{Reqid: reqs[0].Reqid, Results: i1}); len(out.Publish) != 0 {
		t.Errorf("late answer: %s", describeAll(out.Publish))
	}
}

func TestMgmtCoreDeployTimeoutKeepsPartialResults(t *testing.T) {
	h := newMgmtHarness(t, ModeZeek42, nil)
	h.hello(0, "a1")
	h.hello(0, "a2")
	h.stage(0, mcfg("c", []api.Instance{inst("a1"), inst("a2")}))
	reqs := all[api.AgentDeployRequest](h.welcome(0, h.client(0, api.DeployRequest{Reqid: "D"})))
	if len(reqs) != 2 {
		t.Fatalf("deploy requests %v", reqs)
	}
	a1 := api.Result{Reqid: reqs[0].Reqid, Success: true, Instance: "a1"}
	h.agent(sec, "a1", api.AgentDeployResponse{Reqid: reqs[0].Reqid, Results: []api.Result{a1}})
	if out := h.step(10*sec-time.Millisecond, Tick{}); len(out.Publish) != 0 {
		t.Fatalf("early: %s", describeAll(out.Publish))
	}
	r := only[api.DeployResponse](t, h.step(10*sec, Tick{}))
	want := []api.Result{a1, {Reqid: "D", Success: false, Error: "request timed out"}}
	if !api.MessagesEqual(r, api.DeployResponse{Reqid: "D", Results: want}) {
		t.Errorf("timeout response %s", resultList(r.Results))
	}
}

// --- get_nodes, get_id_value, restart ------------------------------------------------------

func TestMgmtCoreGetNodes(t *testing.T) {
	h := newMgmtHarness(t, ModeZeek42, nil)
	r := only[api.GetNodesResponse](t, h.client(0, api.GetNodesRequest{Reqid: "N0"}))
	if got := errorsOf(r.Results); !reflect.DeepEqual(got, []string{"no instances connected"}) || r.Results[0].Reqid != "N0" || r.Results[0].Instance != "" {
		t.Errorf("no instances: %s", resultList(r.Results))
	}
	if len(h.c.Snapshot().Requests) != 0 {
		t.Error("the early answer left a request behind")
	}
	// Every known agent is asked, configured or not.
	h.hello(0, "b")
	h.hello(0, "a")
	out := h.client(sec, api.GetNodesRequest{Reqid: "N1"})
	if got := topicsOf[api.AgentGetNodesRequest](out); !reflect.DeepEqual(got, []string{mgmtAgentPrefix + "a", mgmtAgentPrefix + "b"}) {
		t.Fatalf("asked %v", got)
	}
	asked := all[api.AgentGetNodesRequest](out)
	statuses, err := api.Mgmt.NodeStatusesValue([]api.NodeStatus{{Node: "b", State: api.StateRunning, MgmtRole: api.RoleAgent}})
	if err != nil {
		t.Fatal(err)
	}
	rb := api.Result{Reqid: asked[1].Reqid, Success: true, Instance: "b", Data: statuses}
	h.agent(2*sec, "b", api.AgentGetNodesResponse{Reqid: asked[1].Reqid, Result: rb})
	r = only[api.GetNodesResponse](t, h.step(11*sec, Tick{}))
	want := []api.Result{rb, {Reqid: "N1", Success: false, Error: "request timed out"}}
	if !api.MessagesEqual(r, api.GetNodesResponse{Reqid: "N1", Results: want}) {
		t.Errorf("partial get_nodes: %s", resultList(r.Results))
	}
}

// deployed brings up agents, stages and deploys cfg and answers the
// deployment with one success per node.
func (h *mgmtHarness) deployed(at time.Duration, cfg api.Configuration) {
	h.t.Helper()
	for _, in := range cfg.Instances {
		h.hello(at, in.Name)
	}
	h.stage(at, cfg)
	out := h.welcome(at, h.client(at, api.DeployRequest{Reqid: "deploy-" + cfg.ID}))
	for _, o := range out.Publish {
		if d, ok := o.Msg.(api.AgentDeployRequest); ok {
			name := strings.TrimPrefix(o.Topic, mgmtAgentPrefix)
			out = h.agent(at, name, api.AgentDeployResponse{Reqid: d.Reqid, Results: []api.Result{{Reqid: d.Reqid, Success: true, Instance: name}}})
		}
	}
	if s := h.c.Snapshot(); s.Configs.Deployed == nil || s.Configs.Deployed.ID != cfg.ID {
		h.t.Fatalf("deployment of %s did not complete: %+v", cfg.ID, s)
	}
}

func TestMgmtCoreGetIDValue(t *testing.T) {
	h := newMgmtHarness(t, ModeZeek42, nil)
	h.hello(0, "standby-only")
	r := only[api.GetIDValueResponse](t, h.client(0, api.GetIDValueRequest{Reqid: "V0", ID: "x"}))
	if got := errorsOf(r.Results); !reflect.DeepEqual(got, []string{"no cluster deployed"}) {
		t.Errorf("before a deployment: %s", resultList(r.Results))
	}
	cfg := mcfg("c", []api.Instance{inst("i1"), inst("i2")},
		node("manager", "i1", api.ClusterRoleManager, 0), node("worker", "i2", api.ClusterRoleWorker, 0))
	h.deployed(0, cfg)

	// Only unknown nodes: answered at once, one Result per node, sorted.
	r = only[api.GetIDValueResponse](t, h.client(sec, api.GetIDValueRequest{Reqid: "V1", ID: "x", Nodes: []string{"zz", "nope"}}))
	want := []api.Result{
		{Reqid: "V1", Success: false, Error: "unknown cluster node", Node: api.Some("nope")},
		{Reqid: "V1", Success: false, Error: "unknown cluster node", Node: api.Some("zz")},
	}
	if !api.MessagesEqual(r, api.GetIDValueResponse{Reqid: "V1", Results: want}) {
		t.Errorf("unknown nodes: %s", resultList(r.Results))
	}

	// Mixed: the unknown node's Result first, the dispatch carries only
	// the known ones, to every ready configured agent.
	out := h.client(2*sec, api.GetIDValueRequest{Reqid: "V2", ID: "Log::default_rotation_interval", Nodes: []string{"manager", "nosuch"}})
	ds := all[api.AgentNodeDispatchRequest](out)
	if got := topicsOf[api.AgentNodeDispatchRequest](out); !reflect.DeepEqual(got, []string{mgmtAgentPrefix + "i1", mgmtAgentPrefix + "i2"}) {
		t.Fatalf("dispatched to %v", got)
	}
	for _, d := range ds {
		if !reflect.DeepEqual(d.Action, []string{"get_id_value", "Log::default_rotation_interval"}) || !reflect.DeepEqual(d.Nodes, []string{"manager"}) {
			t.Errorf("dispatch %+v", d)
		}
	}
	val := api.Result{Reqid: ds[0].Reqid, Success: true, Instance: "i1", Node: api.Some("manager"), Data: broker.String(`"0 secs"`)}
	h.agent(2*sec, "i1", api.AgentNodeDispatchResponse{Reqid: ds[0].Reqid, Results: []api.Result{val}})
	out = h.agent(2*sec, "i2", api.AgentNodeDispatchResponse{Reqid: ds[1].Reqid})
	r = only[api.GetIDValueResponse](t, out)
	want = []api.Result{{Reqid: "V2", Success: false, Error: "unknown cluster node", Node: api.Some("nosuch")}, val}
	if !api.MessagesEqual(r, api.GetIDValueResponse{Reqid: "V2", Results: want}) {
		t.Errorf("mixed: %s", resultList(r.Results))
	}

	// All nodes: an empty node set goes out.
	out = h.client(3*sec, api.GetIDValueRequest{Reqid: "V3", ID: "x"})
	for _, d := range all[api.AgentNodeDispatchRequest](out) {
		if len(d.Nodes) != 0 {
			t.Errorf("dispatch for all nodes: %+v", d)
		}
	}
}

func TestMgmtCoreRestart(t *testing.T) {
	h := newMgmtHarness(t, ModeZeek42, nil)
	r := only[api.RestartResponse](t, h.client(0, api.RestartRequest{Reqid: "X0"}))
	if got := errorsOf(r.Results); !reflect.DeepEqual(got, []string{"no instances connected"}) {
		t.Errorf("no instances: %s", resultList(r.Results))
	}
	h.hello(0, "i1")
	r = only[api.RestartResponse](t, h.client(0, api.RestartRequest{Reqid: "X1"}))
	if got := errorsOf(r.Results); !reflect.DeepEqual(got, []string{"no active cluster deployment"}) {
		t.Errorf("no deployment: %s", resultList(r.Results))
	}
	h.deployed(0, mcfg("c", []api.Instance{inst("i1")}, node("manager", "i1", api.ClusterRoleManager, 0), node("logger", "i1", api.ClusterRoleLogger, 0)))
	r = only[api.RestartResponse](t, h.client(sec, api.RestartRequest{Reqid: "X2", Nodes: []string{"nosuchnode"}}))
	want := []api.Result{{Reqid: "X2", Success: false, Error: "unknown cluster node", Node: api.Some("nosuchnode")}}
	if !api.MessagesEqual(r, api.RestartResponse{Reqid: "X2", Results: want}) {
		t.Errorf("unknown node: %s", resultList(r.Results))
	}
	// Zeek forwards the node set as requested, the unknown one included.
	out := h.client(2*sec, api.RestartRequest{Reqid: "X3", Nodes: []string{"logger", "nosuchnode"}})
	rq := only[api.AgentRestartRequest](t, out)
	if !reflect.DeepEqual(rq.Nodes, []string{"logger", "nosuchnode"}) {
		t.Errorf("restart_request nodes %v", rq.Nodes)
	}
	fail := api.Result{Reqid: rq.Reqid, Success: false, Instance: "i1", Node: api.Some("logger"), Error: "could not restart node logger"}
	r = only[api.RestartResponse](t, h.agent(2*sec, "i1", api.AgentRestartResponse{Reqid: rq.Reqid, Results: []api.Result{fail}}))
	want = []api.Result{{Reqid: "X3", Success: false, Error: "unknown cluster node", Node: api.Some("nosuchnode")}, fail}
	if !api.MessagesEqual(r, api.RestartResponse{Reqid: "X3", Results: want}) {
		t.Errorf("restart: %s", resultList(r.Results))
	}
	// An unanswered restart times out with what it has.
	out = h.client(3*sec, api.RestartRequest{Reqid: "X4"})
	only[api.AgentRestartRequest](t, out)
	r = only[api.RestartResponse](t, h.step(13*sec, Tick{}))
	if got := errorsOf(r.Results); !reflect.DeepEqual(got, []string{"request timed out"}) {
		t.Errorf("restart timeout: %s", resultList(r.Results))
	}
}

func TestMgmtCoreTestTimeout(t *testing.T) {
	h := newMgmtHarness(t, ModeZeek42, nil)
	if out := h.client(0, api.TestTimeoutRequest{Reqid: "T0", WithState: false}); len(out.Publish) != 0 || len(h.c.Snapshot().Requests) != 0 {
		t.Fatalf("without state: %s", describeAll(out.Publish))
	}
	h.client(500*time.Millisecond, api.TestTimeoutRequest{Reqid: "T1", WithState: true})
	// Created at 0.5 s, due at 10.5 s, swept at 11 s (sweep 1 s).
	if out := h.step(10*sec+999*time.Millisecond, Tick{}); len(out.Publish) != 0 {
		t.Fatalf("early: %s", describeAll(out.Publish))
	}
	r := only[api.TestTimeoutResponse](t, h.step(11*sec, Tick{}))
	if r.Reqid != "T1" || !reflect.DeepEqual(r.Result, api.Result{Reqid: "T1", Success: false, Error: "request timed out"}) {
		t.Errorf("response %+v", r)
	}
}

// --- peer loss, startup, quirks ------------------------------------------------------------

func TestMgmtCorePeerLoss(t *testing.T) {
	forModes(t, bothModes, func(t *testing.T, mode Mode) {
		h := newMgmtHarness(t, mode, nil)
		h.deployed(0, mcfg("c", []api.Instance{inst("i1"), inst("i2")}))
		out := h.client(sec, api.GetIDValueRequest{Reqid: "V", ID: "x"})
		ds := all[api.AgentNodeDispatchRequest](out)
		h.agent(sec, "i1", api.AgentNodeDispatchResponse{Reqid: ds[0].Reqid})
		out = h.step(2*sec, PeerLost{Peer: h.peers["i2"]})
		s := h.c.Snapshot()
		if !reflect.DeepEqual(s.Known, []string{"i1"}) || !reflect.DeepEqual(s.Ready, []string{"i1"}) {
			t.Errorf("after i2's loss: known %v ready %v", s.Known, s.Ready)
		}
		if mode == ModeZeek42 {
			if len(out.Publish) != 0 {
				t.Errorf("zeek42 answered at once: %s", describeAll(out.Publish))
			}
			r := only[api.GetIDValueResponse](t, h.step(12*sec, Tick{}))
			if got := errorsOf(r.Results); !reflect.DeepEqual(got, []string{"request timed out"}) {
				t.Errorf("zeek42: %s", resultList(r.Results))
			}
			return
		}
		r := only[api.GetIDValueResponse](t, out)
		want := []api.Result{{Reqid: ds[1].Reqid, Success: false, Instance: "i2", Error: "agent i2 disconnected"}}
		if !api.MessagesEqual(r, api.GetIDValueResponse{Reqid: "V", Results: want}) {
			t.Errorf("fixed: %s", resultList(r.Results))
		}
	})
}

func TestMgmtCoreStartupRedeploysPersisted(t *testing.T) {
	deployed := mcfg("persisted", []api.Instance{inst("i1")}, node("manager", "i1", api.ClusterRoleManager, 2200))
	h := newMgmtHarness(t, ModeZeek42, func(c *Config) {
		c.Mgmt.Restore = &StoredConfigs{Staged: &deployed, Ready: &deployed, Deployed: &deployed}
	})
	out := h.step(0, Startup{})
	if !loggedLine(out, "deploying persisted configuration persisted, request a1") {
		t.Errorf("startup logs %v", out.Logs)
	}
	if again := h.step(0, Startup{}); len(again.Logs) != 0 {
		t.Errorf("a second Startup did something: %v", again.Logs)
	}
	s := h.c.Snapshot()
	if s.Pending != "a1" || len(s.Instances) != 1 {
		t.Fatalf("after startup: pending %q instances %v", s.Pending, s.Instances)
	}
	// The agent comes, is welcomed and gets the configuration; the
	// internal deployment completes without a client response.
	out = h.welcome(sec, h.hello(sec, "i1"))
	d := only[api.AgentDeployRequest](t, out)
	if !d.Config.Equal(deployed) {
		t.Errorf("redeployed %+v", d.Config)
	}
	out = h.agent(sec, "i1", api.AgentDeployResponse{Reqid: d.Reqid, Results: []api.Result{{Reqid: d.Reqid, Success: true, Instance: "i1"}}})
	if len(out.Publish) != 0 || out.Configs == nil || h.c.Snapshot().Pending != "" {
		t.Errorf("internal deployment: %s configs %v", describeAll(out.Publish), out.Configs)
	}
}

// loggedLine reports whether out logged msg.
func loggedLine(out Output, msg string) bool {
	for _, l := range out.Logs {
		if l.Msg == msg {
			return true
		}
	}
	return false
}

func TestMgmtCoreAgentBackRedeploys(t *testing.T) {
	h := newMgmtHarness(t, ModeZeek42, nil)
	cfg := mcfg("c", []api.Instance{inst("i1")})
	h.deployed(0, cfg)
	// The agent restarts: a new connection, a new hello, and with nothing
	// pending the controller redeploys DEPLOYED by itself.
	h.step(sec, PeerLost{Peer: h.peers["i1"]})
	delete(h.peers, "i1")
	out := h.welcome(2*sec, h.hello(2*sec, "i1"))
	d := only[api.AgentDeployRequest](t, out)
	if d.Config.ID != "c" || !loggedLine(out, "no deployment in progress, triggering via "+h.c.Snapshot().Pending) {
		t.Errorf("redeploy %+v logs %v", d, out.Logs)
	}
	if out := h.agent(2*sec, "i1", api.AgentDeployResponse{Reqid: d.Reqid}); len(out.Publish) != 0 {
		t.Errorf("the internal deployment answered a client: %s", describeAll(out.Publish))
	}
}

func TestMgmtCoreDuplicateReqid(t *testing.T) {
	forModes(t, bothModes, func(t *testing.T, mode Mode) {
		h := newMgmtHarness(t, mode, nil)
		h.stage(0, mcfg("c", []api.Instance{inst("a1")}))
		h.client(0, api.DeployRequest{Reqid: "D"})
		r := only[api.DeployResponse](t, h.client(sec, api.DeployRequest{Reqid: "D"}))
		if got := errorsOf(r.Results); !reflect.DeepEqual(got, []string{"earlier deployment D still pending"}) {
			t.Fatalf("reused reqid: %s", resultList(r.Results))
		}
		out := h.step(20*sec, Tick{})
		if mode == ModeZeek42 {
			// The rejection deleted the pending request: it never expires,
			// and every later deploy is refused.
			if len(out.Publish) != 0 || h.c.Snapshot().Pending != "D" {
				t.Fatalf("zeek42: %s pending %q", describeAll(out.Publish), h.c.Snapshot().Pending)
			}
			r = only[api.DeployResponse](t, h.client(21*sec, api.DeployRequest{Reqid: "E"}))
			if got := errorsOf(r.Results); !reflect.DeepEqual(got, []string{"earlier deployment D still pending"}) {
				t.Errorf("zeek42 later deploy: %s", resultList(r.Results))
			}
			return
		}
		if r := only[api.DeployResponse](t, out); r.Reqid != "D" || errorsOf(r.Results)[0] != "request timed out" {
			t.Errorf("fixed: the pending deploy must time out: %s", resultList(r.Results))
		}
	})
	// Two live get_nodes with one reqid: fixed gives each its response.
	forModes(t, bothModes, func(t *testing.T, mode Mode) {
		h := newMgmtHarness(t, mode, nil)
		h.hello(0, "a1")
		first := only[api.AgentGetNodesRequest](t, h.client(0, api.GetNodesRequest{Reqid: "N"}))
		second := only[api.AgentGetNodesRequest](t, h.client(0, api.GetNodesRequest{Reqid: "N"}))
		res := func(id string) api.Result {
			v, _ := api.Mgmt.NodeStatusesValue(nil)
			return api.Result{Reqid: id, Success: true, Instance: "a1", Data: v}
		}
		n := len(all[api.GetNodesResponse](h.agent(sec, "a1", api.AgentGetNodesResponse{Reqid: first.Reqid, Result: res(first.Reqid)})))
		n += len(all[api.GetNodesResponse](h.agent(sec, "a1", api.AgentGetNodesResponse{Reqid: second.Reqid, Result: res(second.Reqid)})))
		n += len(all[api.GetNodesResponse](h.step(30*sec, Tick{})))
		want := 2
		if mode == ModeZeek42 {
			want = 1 // one shared state, one response with both Results
		}
		if n != want {
			t.Errorf("%d get_nodes responses, want %d", n, want)
		}
	})
}

func TestMgmtCoreDuplicateWelcome(t *testing.T) {
	forModes(t, bothModes, func(t *testing.T, mode Mode) {
		h := newMgmtHarness(t, mode, nil)
		h.stage(0, mcfg("c", []api.Instance{inst("a1")}))
		h.client(0, api.DeployRequest{Reqid: "D"})
		w1 := h.hello(sec, "a1")
		w2 := h.hello(sec, "a1") // repeated before the first welcome is answered
		out := h.welcome(sec, w1)
		out2 := h.welcome(sec, w2)
		n := len(all[api.AgentDeployRequest](out)) + len(all[api.AgentDeployRequest](out2))
		want := 1
		if mode == ModeZeek42 {
			want = 2
		}
		if n != want {
			t.Errorf("%d deploy_requests, want %d", n, want)
		}
	})
}

func TestMgmtCoreConnectivityChange(t *testing.T) {
	forModes(t, bothModes, func(t *testing.T, mode Mode) {
		h := newMgmtHarness(t, mode, nil)
		h.deployed(0, mcfg("c1", []api.Instance{inst("i1")}))
		h.stage(sec, mcfg("c2", []api.Instance{listenInst("i1", 2151)}))
		out := h.client(sec, api.DeployRequest{Reqid: "D2"})
		if got := topicsOf[api.AgentStandbyRequest](out); len(got) != 1 {
			t.Errorf("standby %v", got)
		}
		readded := len(h.c.Snapshot().Instances) == 1
		if readded != (mode == ModeFixed) || (len(out.Dials) == 1) != (mode == ModeFixed) {
			t.Errorf("instances %v dials %v: re-added must be %v", h.c.Snapshot().Instances, out.Dials, mode == ModeFixed)
		}
	})
}

func TestMgmtCoreNodesBeforeDeployment(t *testing.T) {
	forModes(t, bothModes, func(t *testing.T, mode Mode) {
		h := newMgmtHarness(t, mode, nil)
		h.stage(0, mcfg("c", []api.Instance{inst("a1")}, node("manager", "a1", api.ClusterRoleManager, 0)))
		h.client(0, api.DeployRequest{Reqid: "D"}) // pending: a1 never comes
		out := h.client(sec, api.GetIDValueRequest{Reqid: "V", ID: "x", Nodes: []string{"manager"}})
		if mode == ModeZeek42 {
			if len(out.Publish) != 0 {
				t.Fatalf("zeek42: %s", describeAll(out.Publish))
			}
			var timedOut []string
			for _, r := range all[api.GetIDValueResponse](h.step(12*sec, Tick{})) {
				timedOut = append(timedOut, errorsOf(r.Results)...)
			}
			if !reflect.DeepEqual(timedOut, []string{"request timed out"}) {
				t.Errorf("zeek42 timeout %v", timedOut)
			}
			return
		}
		r := only[api.GetIDValueResponse](t, out)
		if got := errorsOf(r.Results); !reflect.DeepEqual(got, []string{"unknown cluster node"}) {
			t.Errorf("fixed: %s", resultList(r.Results))
		}
	})
}

func TestMgmtCoreAgentDataType(t *testing.T) {
	forModes(t, bothModes, func(t *testing.T, mode Mode) {
		h := newMgmtHarness(t, mode, nil)
		h.hello(0, "a1")
		q := only[api.AgentGetNodesRequest](t, h.client(0, api.GetNodesRequest{Reqid: "N"}))
		out := h.agent(sec, "a1", api.AgentGetNodesResponse{Reqid: q.Reqid,
			Result: api.Result{Reqid: q.Reqid, Success: true, Instance: "a1", Data: broker.String("not statuses")}})
		if mode == ModeZeek42 {
			if len(out.Publish) != 0 {
				t.Fatalf("zeek42 answered: %s", describeAll(out.Publish))
			}
			r := only[api.GetNodesResponse](t, h.step(11*sec, Tick{}))
			if got := errorsOf(r.Results); !reflect.DeepEqual(got, []string{"request timed out"}) {
				t.Errorf("zeek42: %s", resultList(r.Results))
			}
			return
		}
		r := only[api.GetNodesResponse](t, out)
		if len(r.Results) != 1 || !r.Results[0].Data.IsNone() || r.Results[0].Instance != "a1" {
			t.Errorf("fixed: %s", resultList(r.Results))
		}
	})
}

func TestMgmtCoreRedeployReadyInstances(t *testing.T) {
	forModes(t, bothModes, func(t *testing.T, mode Mode) {
		h := newMgmtHarness(t, mode, nil)
		h.deployed(0, mcfg("c1", []api.Instance{inst("i1")}))
		h.stage(sec, mcfg("c2", []api.Instance{inst("i1"), inst("i2")}))
		// i1 comes back: nothing pending, so DEPLOYED (c1) is redeployed.
		h.step(2*sec, PeerLost{Peer: h.peers["i1"]})
		delete(h.peers, "i1")
		out := h.welcome(3*sec, h.hello(3*sec, "i1"))
		// c1 goes to the ready i1 either way.
		got := len(all[api.AgentDeployRequest](out))
		if mode == ModeZeek42 {
			// Reconciled against READY (c2): i2 is added as well.
			if got != 1 || len(h.c.Snapshot().Instances) != 2 {
				t.Errorf("zeek42: %d deploy_requests, instances %v", got, h.c.Snapshot().Instances)
			}
			return
		}
		if got != 1 || len(h.c.Snapshot().Instances) != 1 {
			t.Errorf("fixed: %d deploy_requests, instances %v", got, h.c.Snapshot().Instances)
		}
	})
}

func TestMgmtCoreDefects(t *testing.T) {
	for _, tc := range []struct {
		defect Defect
		check  func(t *testing.T, h *mgmtHarness)
	}{
		{DefectWrongReqidEcho, func(t *testing.T, h *mgmtHarness) {
			if r := only[api.GetNodesResponse](t, h.client(0, api.GetNodesRequest{Reqid: "N"})); r.Reqid == "N" {
				t.Error("reqid echoed")
			}
		}},
		{DefectWrongPendingText, func(t *testing.T, h *mgmtHarness) {
			h.stage(0, mcfg("c", []api.Instance{inst("a")}))
			h.client(0, api.DeployRequest{Reqid: "D1"})
			r := only[api.DeployResponse](t, h.client(0, api.DeployRequest{Reqid: "D2"}))
			if errorsOf(r.Results)[0] == "earlier deployment D1 still pending" {
				t.Error("right text")
			}
		}},
		{DefectNoTimeoutResponse, func(t *testing.T, h *mgmtHarness) {
			h.client(0, api.TestTimeoutRequest{Reqid: "T", WithState: true})
			if out := h.step(30*sec, Tick{}); len(out.Publish) != 0 {
				t.Error("timeout answered")
			}
		}},
		{DefectGetInstancesNoneData, func(t *testing.T, h *mgmtHarness) {
			if r := only[api.GetInstancesResponse](t, h.client(0, api.GetInstancesRequest{Reqid: "I"})); !r.Result.Data.IsNone() {
				t.Error("data set")
			}
		}},
	} {
		t.Run(tc.defect.String(), func(t *testing.T) {
			tc.check(t, newMgmtHarness(t, ModeZeek42, func(c *Config) { c.Defects = []Defect{tc.defect} }))
		})
	}
}

func TestMgmtCoreDefaultTimings(t *testing.T) {
	h := newMgmtHarness(t, ModeZeek42, func(c *Config) { c.RequestTimeout, c.SweepInterval = 0, 0 })
	h.client(0, api.TestTimeoutRequest{Reqid: "T", WithState: true})
	// Zeek 5.0+: timeout_interval 10 s, table_expire_interval 2 s.
	if out := h.step(0, Tick{}); !out.Wake.Equal(t0.Add(10 * sec)) {
		t.Errorf("wake %v, want t0+10s", offset(out.Wake))
	}
	if out := h.step(10*sec, Tick{}); len(all[api.TestTimeoutResponse](out)) != 1 {
		t.Errorf("no timeout at 10 s: %s", describeAll(out.Publish))
	}
	h.client(11*sec, api.TestTimeoutRequest{Reqid: "T2", WithState: true})
	if out := h.step(21*sec, Tick{}); len(out.Publish) != 0 || !out.Wake.Equal(t0.Add(22*sec)) {
		t.Errorf("at 21 s: %s, wake %v (want the 22 s sweep)", describeAll(out.Publish), offset(out.Wake))
	}
}
