package api_test

import (
	"encoding/json"
	"net/netip"
	"os"
	"testing"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// vectorEntry is one entry of testdata/vectors/cc42/events.json.
type vectorEntry struct {
	Name    string          `json:"name"`
	Event   string          `json:"event"`
	Variant string          `json:"variant"`
	Topic   string          `json:"topic"`
	OnWire  bool            `json:"on_wire"`
	Frame   json.RawMessage `json:"frame"`
}

func loadVectors(tb testing.TB) []vectorEntry {
	tb.Helper()
	raw, err := os.ReadFile("../testdata/vectors/cc42/events.json")
	if err != nil {
		tb.Fatal(err)
	}
	var entries []vectorEntry
	if err := json.Unmarshal(raw, &entries); err != nil {
		tb.Fatal(err)
	}
	return entries
}

// decodeVector turns an entry's frame (re-encoded by encoding/json, so the
// broker decoder sees ordinary compact JSON) into a broker frame.
func decodeVector(tb testing.TB, e vectorEntry) broker.Frame {
	tb.Helper()
	compact, err := json.Marshal(e.Frame)
	if err != nil {
		tb.Fatalf("%s: re-encode frame: %v", e.Name, err)
	}
	f, err := broker.DecodeFrame(compact)
	if err != nil {
		tb.Fatalf("%s: broker.DecodeFrame: %v", e.Name, err)
	}
	return f
}

// The values every vector uses (spec clustercontroller-v1.md §4, §5, §9;
// the README of testdata/vectors, section cc42).
const (
	clientReqid = "8c4a1f32-6a5b-11ec-9d1e-0242ac110002"
	configID    = "8c49f7b4-6a5b-11ec-9d1e-0242ac110002"
	agentReqid  = "Pw3Zj7Lm0Qs9Ye4Ud"
	welcomeID   = "Hn5Vq2Rk8Xc1Tb6Ma"
)

func tcp(n uint16) api.Opt[broker.Port] { return api.Some(broker.TCPPort(n)) }

// zeekClientConfig is the Configuration zeek-client v0.2.0 sends for a
// two-instance cluster (§9): connecting instance-1 with manager, logger
// and proxy; listening instance-2 with two workers. Scripts and options
// are unset and env is empty, as that client always sends them. Listed in
// Broker's set order (records compare field by field, so by name).
func zeekClientConfig() api.Configuration {
	return api.Configuration{
		ID: configID,
		Instances: []api.Instance{
			{Name: "instance-1", Host: netip.MustParseAddr("0.0.0.0")},
			{Name: "instance-2", Host: netip.MustParseAddr("10.0.0.2"), ListenPort: tcp(2151)},
		},
		Nodes: []api.Node{
			{Name: "logger", Instance: "instance-1", Port: tcp(5001), Role: api.ClusterRoleLogger, State: api.StateRunning},
			{Name: "manager", Instance: "instance-1", Port: tcp(5000), Role: api.ClusterRoleManager, State: api.StateRunning},
			{Name: "proxy-01", Instance: "instance-1", Port: tcp(5002), Role: api.ClusterRoleProxy, State: api.StateRunning},
			{Name: "worker-01", Instance: "instance-2", Port: tcp(5003), Role: api.ClusterRoleWorker, State: api.StateRunning,
				Interface: api.Some("eth0")},
			{Name: "worker-02", Instance: "instance-2", Port: tcp(5004), Role: api.ClusterRoleWorker, State: api.StateRunning,
				Interface: api.Some("eth1"), CPUAffinity: api.Some[int64](3)},
		},
	}
}

// expectedMessages maps every vector entry to the typed message it must
// decode to, written out from the spec rather than from the codec.
func expectedMessages() map[string]api.Message {
	timedOut := api.Result{Reqid: clientReqid, Success: false, Error: "request timed out"}
	return map[string]api.Message{
		"get_instances_request": api.GetInstancesRequest{Reqid: clientReqid},
		"get_instances_response": api.GetInstancesResponse{Reqid: clientReqid, Result: api.Result{
			Reqid: clientReqid, Success: true,
			// Data is a vector of Instance records exactly as configured.
			Data: broker.Vector(
				broker.Vector(broker.String("instance-1"), broker.Address(netip.MustParseAddr("0.0.0.0")), broker.None()),
				broker.Vector(broker.String("instance-2"), broker.Address(netip.MustParseAddr("10.0.0.2")), broker.FromPort(broker.TCPPort(2151))),
			),
		}},
		"get_instances_response--no-config": api.GetInstancesResponse{Reqid: clientReqid, Result: api.Result{
			Reqid: clientReqid, Success: true, Data: broker.Vector(),
		}},
		"set_configuration_request": api.SetConfigurationRequest{Reqid: clientReqid, Config: zeekClientConfig()},
		"set_configuration_response": api.SetConfigurationResponse{Reqid: clientReqid, Results: []api.Result{
			{Reqid: clientReqid, Instance: "instance-1", Success: true},
			{Reqid: clientReqid, Instance: "instance-2", Success: true},
		}},
		"set_configuration_response--node-failed": api.SetConfigurationResponse{Reqid: clientReqid, Results: []api.Result{
			{Reqid: clientReqid, Instance: "instance-1", Success: true},
			{Reqid: clientReqid, Instance: "instance-2", Success: false, Error: "node worker-01 failed: could not launch"},
		}},
		"set_configuration_response--timeout": api.SetConfigurationResponse{Reqid: clientReqid, Results: []api.Result{timedOut}},
		"set_configuration_response--pending": api.SetConfigurationResponse{Reqid: "91d0c2aa-6a5b-11ec-9d1e-0242ac110002", Results: []api.Result{{
			Reqid: "91d0c2aa-6a5b-11ec-9d1e-0242ac110002", Success: false,
			Error: "request " + clientReqid + " still pending",
		}}},
		"test_timeout_request":            api.TestTimeoutRequest{Reqid: clientReqid, WithState: true},
		"test_timeout_response":           api.TestTimeoutResponse{Reqid: clientReqid, Result: timedOut},
		"notify_agents_ready":             api.NotifyAgentsReady{Instances: []string{"instance-1", "instance-2"}},
		"agent_set_configuration_request": api.AgentSetConfigurationRequest{Reqid: agentReqid, Config: zeekClientConfig()},
		"agent_set_configuration_response": api.AgentSetConfigurationResponse{Reqid: agentReqid, Result: api.Result{
			Reqid: agentReqid, Instance: "instance-1", Success: true,
		}},
		"agent_set_configuration_response--failure": api.AgentSetConfigurationResponse{Reqid: agentReqid, Result: api.Result{
			Reqid: agentReqid, Instance: "instance-1", Success: false, Error: "could not launch", Node: api.Some("worker-01"),
		}},
		"agent_welcome_request": api.AgentWelcomeRequest{Reqid: welcomeID},
		"agent_welcome_response": api.AgentWelcomeResponse{Reqid: welcomeID, Result: api.Result{
			Reqid: welcomeID, Instance: "instance-1", Success: true,
		}},
		"agent_standby_request": api.AgentStandbyRequest{Reqid: ""},
		"agent_standby_response": api.AgentStandbyResponse{Reqid: "", Result: api.Result{
			Reqid: "", Instance: "instance-1", Success: true,
		}},
		"notify_agent_hello": api.NotifyAgentHello{Instance: "instance-1", Host: netip.MustParseAddr("127.0.0.1"), APIVersion: 1},
		"notify_agent_hello--bad-version": api.NotifyAgentHello{
			Instance: "instance-1", Host: netip.MustParseAddr("0.0.0.0"), APIVersion: 2,
		},
		"notify_change": api.NotifyChange{
			Instance: "instance-1",
			Node: api.Node{
				Name: "worker-01", Instance: "instance-2", Port: tcp(5003),
				Role: api.ClusterRoleWorker, State: api.StateRunning,
				Scripts:     api.Some([]string{"local.zeek", "site/extra.zeek"}),
				Options:     api.Some([]api.Option{{Name: "Site::local_nets", Value: "10.0.0.0/8"}}),
				Interface:   api.Some("eth0"),
				CPUAffinity: api.Some[int64](2),
				Env:         map[string]string{"LANG": "C", "ZEEK_DEBUG": "1"},
			},
			Old: api.StateRunning,
			New: api.StateCrashed,
		},
		"notify_error": api.NotifyError{
			Instance: "instance-1", Msg: "failed to create node worker-01: no such interface", Node: "worker-01",
		},
		"notify_error--no-node": api.NotifyError{Instance: "instance-1", Msg: "supervisor unreachable", Node: ""},
		"notify_log":            api.NotifyLog{Instance: "instance-1", Msg: "node worker-01 started", Node: "worker-01"},
	}
}

// TestGoldenVectors decodes every cc42 vector into its typed message,
// compares it with the message written out above, and encodes it back to
// the identical Broker value.
func TestGoldenVectors(t *testing.T) {
	entries := loadVectors(t)
	want := expectedMessages()
	if len(entries) != len(want) {
		t.Errorf("%d vector entries, %d expected messages: every entry needs an expectation", len(entries), len(want))
	}
	kindsSeen := map[api.EventKind]bool{}
	for _, e := range entries {
		t.Run(e.Name, func(t *testing.T) {
			exp, ok := want[e.Name]
			if !ok {
				t.Fatalf("no expected message for vector %q", e.Name)
			}
			f := decodeVector(t, e)
			if f.Topic != e.Topic {
				t.Errorf("topic %q, entry says %q", f.Topic, e.Topic)
			}
			ev, err := f.Event()
			if err != nil {
				t.Fatalf("Frame.Event: %v", err)
			}
			got, err := api.CC42.Decode(ev)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !api.MessagesEqual(got, exp) {
				t.Fatalf("Decode:\n got %+v\nwant %+v", got, exp)
			}
			if name, _ := api.CC42.EventName(got.Kind()); name != e.Event {
				t.Errorf("decoded kind %d is named %q, entry is %q", got.Kind(), name, e.Event)
			}
			if k, ok := api.CC42.KindOf(e.Event); !ok || k != got.Kind() {
				t.Errorf("KindOf(%q) = %d, %v; decoded kind %d", e.Event, k, ok, got.Kind())
			}
			kindsSeen[got.Kind()] = true

			// Encoding the expected message (not the decoded one) must give
			// the wire value back, so both directions are checked against
			// the spec-derived value.
			for _, m := range []api.Message{exp, got} {
				back, err := api.CC42.Encode(m)
				if err != nil {
					t.Fatalf("Encode: %v", err)
				}
				if !broker.Equal(back.Value(), f.Data) {
					t.Fatalf("Encode:\n got %s\nwant %s", back.Value(), f.Data)
				}
			}
		})
	}
	for _, k := range allKinds() {
		if api.CC42.Supports(k) && !kindsSeen[k] {
			name, _ := api.CC42.EventName(k)
			t.Errorf("no vector covers %s", name)
		}
	}
}

// allKinds lists every event kind, found through the profile's names so
// the test does not depend on the numbering.
func allKinds() []api.EventKind {
	var ks []api.EventKind
	for k := api.EventKind(1); k < 255; k++ {
		if _, ok := api.CC42.EventName(k); ok {
			ks = append(ks, k)
		}
	}
	return ks
}

// TestGoldenStrictOrder checks what MessagesEqual forgives: the decoded
// configuration lists instances and nodes in Broker's set order, and
// empty collections come out nil.
func TestGoldenStrictOrder(t *testing.T) {
	for _, e := range loadVectors(t) {
		if e.Name != "set_configuration_request" {
			continue
		}
		ev, err := decodeVector(t, e).Event()
		if err != nil {
			t.Fatal(err)
		}
		m, err := api.CC42.Decode(ev)
		if err != nil {
			t.Fatal(err)
		}
		cfg := m.(api.SetConfigurationRequest).Config
		exp := zeekClientConfig()
		for i := range exp.Nodes {
			if cfg.Nodes[i].Name != exp.Nodes[i].Name {
				t.Errorf("node %d is %q, want %q (Broker set order)", i, cfg.Nodes[i].Name, exp.Nodes[i].Name)
			}
			if cfg.Nodes[i].Env != nil {
				t.Errorf("node %d: empty env decoded as %#v, want nil", i, cfg.Nodes[i].Env)
			}
		}
		return
	}
	t.Fatal("vector set_configuration_request not found")
}
