package api_test

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/api/mgmtvectors"
	"github.com/zcc-harness/zcc/broker"
)

func mgmtDir(tb testing.TB) string {
	tb.Helper()
	d, err := mgmtvectors.Dir()
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

var (
	reqid0  = mgmtvectors.Placeholder("reqid", 0)
	reqid1  = mgmtvectors.Placeholder("reqid", 1)
	config0 = mgmtvectors.Placeholder("config_id", 0)
	any4    = netip.IPv4Unspecified()
)

// agentConnects is an instance whose agent connects to the controller, as
// zeek-client sends it: host 0.0.0.0, no port.
func agentConnects(name string) api.Instance { return api.Instance{Name: name, Host: any4} }

// mgmtNode is a Node as zeek-client 1.5 sends it: state RUNNING, env an
// empty table (nil here), everything else unset unless given.
func mgmtNode(name, instance string, role api.ClusterRole) api.Node {
	return api.Node{Name: name, Instance: instance, Role: role, State: api.StateRunning}
}

// iniConfigs are the configurations zeek-client 1.5 sends for the INI
// files of client-requests/ (keyed by the file name's variant), written out
// from the INI text and the vectors' notes.
func iniConfigs() map[string]api.Configuration {
	manager := mgmtNode("manager", "instance-1", api.ClusterRoleManager)
	full := func() api.Configuration {
		m := mgmtNode("manager", "instance-1", api.ClusterRoleManager)
		m.Port = tcp(5000)
		m.MetricsPort = tcp(9100)
		// zeek-client sorts the shlex-split scripts.
		m.Scripts = api.Some([]string{"local.zeek", "site/manager-extra.zeek"})
		m.Env = map[string]string{"ZEEK_DEBUG": "1", "GREETING": "hello world"}
		l := mgmtNode("logger-01", "instance-1", api.ClusterRoleLogger)
		l.Port = tcp(5001)
		p := mgmtNode("proxy-01", "instance-1", api.ClusterRoleProxy)
		p.Port = tcp(5002)
		w1 := mgmtNode("worker-01", "instance-2", api.ClusterRoleWorker)
		w1.Interface = api.Some("eth0")
		w1.CPUAffinity = api.Some[int64](2)
		w1.Scripts = api.Some([]string{"local.zeek", "site/with space.zeek"})
		w1.Env = map[string]string{"LD_LIBRARY_PATH": "/opt/zeek/lib"}
		w2 := mgmtNode("worker-02", "instance-2", api.ClusterRoleWorker)
		w2.Interface = api.Some("af_packet::eth1")
		w2.CPUAffinity = api.Some[int64](3)
		return api.Configuration{
			ID: config0,
			Instances: []api.Instance{agentConnects("instance-1"),
				{Name: "instance-2", Host: netip.MustParseAddr("10.0.0.2"), ListenPort: tcp(2151)}},
			Nodes: []api.Node{m, l, p, w1, w2},
		}
	}
	withIface := func(n api.Node, iface string) api.Node { n.Interface = api.Some(iface); return n }
	return map[string]api.Configuration{
		"minimal":      {ID: config0, Instances: []api.Instance{agentConnects("instance-1")}, Nodes: []api.Node{manager}},
		"full-cluster": full(),
		"instances-bare": {ID: config0,
			Instances: []api.Instance{agentConnects("agent-a"), agentConnects("agent-b")},
			Nodes: []api.Node{mgmtNode("manager", "agent-a", api.ClusterRoleManager),
				mgmtNode("logger", "agent-a", api.ClusterRoleLogger),
				withIface(mgmtNode("worker-01", "agent-b", api.ClusterRoleWorker), "eth0")}},
		"instances-hostport": {ID: config0,
			Instances: []api.Instance{
				{Name: "instance-1", Host: netip.MustParseAddr("127.0.0.1"), ListenPort: tcp(2151)},
				{Name: "instance-2", Host: netip.MustParseAddr("192.168.10.20"), ListenPort: tcp(2152)},
				{Name: "instance-3", Host: netip.MustParseAddr("2001:db8::3"), ListenPort: tcp(2151)}},
			Nodes: []api.Node{manager,
				withIface(mgmtNode("worker-01", "instance-2", api.ClusterRoleWorker), "eth0"),
				withIface(mgmtNode("worker-02", "instance-3", api.ClusterRoleWorker), "eth1")}},
		// The recording host was called zeek-host.
		"instanceless": {ID: config0,
			Instances: []api.Instance{agentConnects("agent-zeek-host")},
			Nodes: []api.Node{mgmtNode("manager", "agent-zeek-host", api.ClusterRoleManager),
				mgmtNode("logger", "agent-zeek-host", api.ClusterRoleLogger),
				withIface(mgmtNode("worker-01", "agent-zeek-host", api.ClusterRoleWorker), "lo")}},
		"empty":      {ID: config0},
		"agent-only": {ID: config0, Instances: []api.Instance{agentConnects("instance-1")}},
		// state, options and unknown keys are dropped; role is case-blind.
		"ignored-keys": {ID: config0, Instances: []api.Instance{agentConnects("instance-1")}, Nodes: []api.Node{manager}},
	}
}

// expectedRequests maps every client-requests file to the messages its
// frames must decode to, in order.
func expectedRequests(t *testing.T, files []mgmtvectors.Request) map[string][]api.Message {
	configs := iniConfigs()
	want := map[string][]api.Message{
		"deploy":                        {api.DeployRequest{Reqid: reqid0}},
		"get-config":                    {api.GetConfigurationRequest{Reqid: reqid0, Deployed: false}},
		"get-config--staged":            {api.GetConfigurationRequest{Reqid: reqid0, Deployed: false}},
		"get-config--deployed":          {api.GetConfigurationRequest{Reqid: reqid0, Deployed: true}},
		"get-config--deployed--as-json": {api.GetConfigurationRequest{Reqid: reqid0, Deployed: true}},
		"get-id-value":                  {api.GetIDValueRequest{Reqid: reqid0, ID: "bits_per_uid"}},
		// A set: the duplicate collapses, Broker's order is sorted.
		"get-id-value--nodes":      {api.GetIDValueRequest{Reqid: reqid0, ID: "bits_per_uid", Nodes: []string{"manager", "worker-01"}}},
		"get-instances":            {api.GetInstancesRequest{Reqid: reqid0}},
		"get-nodes":                {api.GetNodesRequest{Reqid: reqid0}},
		"restart":                  {api.RestartRequest{Reqid: reqid0}},
		"restart--nodes":           {api.RestartRequest{Reqid: reqid0, Nodes: []string{"manager", "worker-02"}}},
		"test-timeout":             {api.TestTimeoutRequest{Reqid: reqid0, WithState: false}},
		"test-timeout--with-state": {api.TestTimeoutRequest{Reqid: reqid0, WithState: true}},
	}
	for _, f := range files {
		cmd, variant, ok := strings.Cut(f.Name, "--")
		if !ok {
			continue
		}
		cfg, known := configs[variant]
		switch {
		case cmd == "stage-config" && known:
			want[f.Name] = []api.Message{api.StageConfigurationRequest{Reqid: reqid0, Config: cfg}}
		case cmd == "deploy-config" && known:
			want[f.Name] = []api.Message{
				api.StageConfigurationRequest{Reqid: reqid0, Config: cfg},
				api.DeployRequest{Reqid: reqid1},
			}
		}
	}
	return want
}

// TestMgmtGoldenRequests decodes every frame zeek-client 1.5.0 sent into
// the typed message written out above, and encodes that message back to
// the same Broker value.
func TestMgmtGoldenRequests(t *testing.T) {
	files, err := mgmtvectors.LoadRequests(mgmtDir(t))
	if err != nil {
		t.Fatal(err)
	}
	want := expectedRequests(t, files)
	if len(files) != len(want) {
		t.Errorf("%d request files, %d expectations: every file needs one", len(files), len(want))
	}
	kinds := map[api.EventKind]bool{}
	for _, f := range files {
		t.Run(f.Name, func(t *testing.T) {
			exp, ok := want[f.Name]
			if !ok {
				t.Fatalf("no expectation for %s", f.Name)
			}
			if len(f.Handshake) != 1 || f.Handshake[0] != api.Mgmt.ControllerTopic {
				t.Errorf("handshake %q, want [%q]", f.Handshake, api.Mgmt.ControllerTopic)
			}
			frames, err := f.NormalisedFrames()
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) != len(exp) {
				t.Fatalf("%d frames, %d expected messages", len(frames), len(exp))
			}
			for i, raw := range frames {
				fr, err := broker.DecodeFrame(raw)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if fr.Topic != api.Mgmt.ControllerTopic {
					t.Errorf("frame %d topic %q", i, fr.Topic)
				}
				got, err := api.Mgmt.DecodeFrame(fr)
				if err != nil {
					t.Fatalf("frame %d: Decode: %v", i, err)
				}
				if !api.MessagesEqual(got, exp[i]) {
					t.Fatalf("frame %d: Decode:\n got %+v\nwant %+v", i, got, exp[i])
				}
				kinds[got.Kind()] = true
				for _, m := range []api.Message{exp[i], got} {
					back, err := api.Mgmt.Encode(m)
					if err != nil {
						t.Fatalf("frame %d: Encode: %v", i, err)
					}
					if !broker.Equal(back.Value(), fr.Data) {
						t.Fatalf("frame %d: Encode:\n got %s\nwant %s", i, back.Value(), fr.Data)
					}
				}
			}
		})
	}
	for _, k := range []api.EventKind{api.KindGetInstancesRequest, api.KindStageConfigurationRequest,
		api.KindGetConfigurationRequest, api.KindDeployRequest, api.KindGetNodesRequest,
		api.KindGetIDValueRequest, api.KindRestartRequest, api.KindTestTimeoutRequest} {
		if !kinds[k] {
			t.Errorf("no vector covers %s", api.Mgmt.ShortName(k))
		}
	}
}

// decodeData checks a decoded message's any-typed Result.Data with the
// record helper that fits the response, and that the helper's encoding
// gives the wire value back. It reports which helpers ran.
func decodeData(t *testing.T, m api.Message, seen map[string]bool) {
	t.Helper()
	p := api.Mgmt
	check := func(what string, data broker.Value, back broker.Value, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v\n%s", what, err, data)
		}
		if !broker.Equal(back, data) {
			t.Fatalf("%s: re-encoded\n got %s\nwant %s", what, back, data)
		}
		seen[what] = true
	}
	switch m := m.(type) {
	case api.GetInstancesResponse:
		if m.Result.Success {
			in, err := p.DecodeInstances(m.Result.Data)
			var back broker.Value
			if err == nil {
				back, err = p.InstancesValue(in)
			}
			check("instances", m.Result.Data, back, err)
		}
	case api.GetConfigurationResponse:
		if m.Result.Success {
			cfg, err := p.DecodeConfiguration(m.Result.Data)
			var back broker.Value
			if err == nil {
				back, err = p.ConfigurationValue(cfg)
			}
			check("configuration", m.Result.Data, back, err)
		}
	case api.GetNodesResponse:
		for _, r := range m.Results {
			if r.Success && !r.Data.IsNone() {
				ns, err := p.DecodeNodeStatuses(r.Data)
				var back broker.Value
				if err == nil {
					back, err = p.NodeStatusesValue(ns)
				}
				check("node statuses", r.Data, back, err)
			}
		}
	case api.AgentGetNodesResponse:
		if m.Result.Success {
			ns, err := p.DecodeNodeStatuses(m.Result.Data)
			var back broker.Value
			if err == nil {
				back, err = p.NodeStatusesValue(ns)
			}
			check("node statuses", m.Result.Data, back, err)
		}
	case api.DeployResponse:
		for _, r := range m.Results {
			if !r.Success && r.Node.Set && !r.Data.IsNone() {
				o, err := p.DecodeNodeOutputs(r.Data)
				var back broker.Value
				if err == nil {
					back, err = p.NodeOutputsValue(o)
				}
				check("node outputs", r.Data, back, err)
			}
		}
	case api.GetIDValueResponse:
		for _, r := range m.Results {
			if r.Success {
				s, ok := r.Data.AsString()
				if !ok || !json.Valid([]byte(s)) {
					t.Fatalf("get_id_value data %s is not a JSON string", r.Data)
				}
				seen["id value"] = true
			}
		}
	}
}

// TestMgmtZeek81Frames decodes every frame a real Zeek 8.1.2 controller
// sent (to clients and to the WebSocket fake agent) and every frame the
// fake agent sent, re-encodes it to the same value, and reads the
// Result.Data of each response with the matching record helper.
func TestMgmtZeek81Frames(t *testing.T) {
	transcripts, err := mgmtvectors.LoadTranscripts(mgmtDir(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(transcripts) != 71 {
		t.Errorf("%d transcripts, the README says 71", len(transcripts))
	}
	decoded := 0
	kinds := map[string]bool{}
	seen := map[string]bool{}
	for _, tr := range transcripts {
		t.Run(tr.Case, func(t *testing.T) {
			for i, fr := range tr.Frames {
				switch fr.Dir {
				case mgmtvectors.DirControllerToClient, mgmtvectors.DirControllerToFakeAgent, mgmtvectors.DirFakeAgentToController:
				default:
					continue
				}
				if fr.Kind != "" {
					continue
				}
				if strings.HasPrefix(fr.Text, "[") {
					// The fake agent's subscription list.
					if _, err := broker.DecodeHandshake([]byte(fr.Text)); err != nil {
						t.Fatalf("frame %d: handshake: %v", i, err)
					}
					continue
				}
				f, err := broker.DecodeFrame([]byte(fr.Text))
				if err != nil {
					t.Fatalf("frame %d (%s): %v\n%s", i, fr.Dir, err, fr.Text)
				}
				if f.Type != broker.FrameDataMessage {
					continue // ack or error frame
				}
				m, err := api.Mgmt.DecodeFrame(f)
				if err != nil {
					t.Fatalf("frame %d (%s): %v\n%s", i, fr.Dir, err, fr.Text)
				}
				back, err := api.Mgmt.Encode(m)
				if err != nil {
					t.Fatalf("frame %d: Encode %+v: %v", i, m, err)
				}
				if !broker.Equal(back.Value(), f.Data) {
					t.Fatalf("frame %d: re-encoded\n got %s\nwant %s", i, back.Value(), f.Data)
				}
				decodeData(t, m, seen)
				kinds[api.Mgmt.ShortName(m.Kind())+"@"+fr.Dir] = true
				decoded++
			}
		})
	}
	t.Logf("%d frames decoded; events: %d distinct", decoded, len(kinds))
	if decoded < 100 {
		t.Errorf("only %d frames decoded", decoded)
	}
	for _, what := range []string{"instances", "configuration", "node statuses", "node outputs", "id value"} {
		if !seen[what] {
			t.Errorf("no transcript exercised the %s helper", what)
		}
	}
	for _, k := range []string{"agent_welcome_request@" + mgmtvectors.DirControllerToFakeAgent,
		"deploy_request@" + mgmtvectors.DirControllerToFakeAgent,
		"notify_agent_hello@" + mgmtvectors.DirFakeAgentToController,
		"deploy_response@" + mgmtvectors.DirFakeAgentToController,
		"deploy_response@" + mgmtvectors.DirControllerToClient} {
		if !kinds[k] {
			t.Errorf("no transcript frame decoded as %s", k)
		}
	}
}

// TestMgmtCannedResponses decodes the hand-built controller responses of
// client-outputs/ (server_frames of client-requests/ too). The ones built
// to be broken fail in the expected way; the others decode and re-encode.
func TestMgmtCannedResponses(t *testing.T) {
	dir := mgmtDir(t)
	outputs, err := mgmtvectors.LoadOutputs(dir)
	if err != nil {
		t.Fatal(err)
	}
	requests, err := mgmtvectors.LoadRequests(dir)
	if err != nil {
		t.Fatal(err)
	}
	type frame struct {
		where string
		text  string
	}
	var frames []frame
	for _, o := range outputs {
		for i, raw := range o.ResponseFramesRaw {
			if raw != nil {
				frames = append(frames, frame{o.Name + "#" + string(rune('0'+i)), *raw})
			}
		}
	}
	for _, r := range requests {
		for i, sf := range r.ServerFrames[1:] {
			frames = append(frames, frame{r.Name + "#" + string(rune('0'+i)), sf.Text})
		}
	}
	// What must not decode, and the start of the reason.
	broken := map[string]string{
		"transport--invalid-json-response#0": "frame",
		"transport--not-an-event#0":          "event",
		"transport--wrong-arg-type#0":        "get_instances_response arg 1 (result): want vector (record Result), got string",
	}
	seen := map[string]bool{}
	for _, fr := range frames {
		t.Run(fr.where, func(t *testing.T) {
			f, err := broker.DecodeFrame([]byte(fr.text))
			if err == nil && f.Type != broker.FrameDataMessage {
				return
			}
			var m api.Message
			if err == nil {
				m, err = api.Mgmt.DecodeFrame(f)
			}
			if want, bad := broken[fr.where]; bad {
				if err == nil {
					t.Fatalf("decoded %+v, want a failure (%s)", m, want)
				}
				if want != "frame" && want != "event" && err.Error() != want {
					t.Fatalf("error %q, want %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, fr.text)
			}
			// Metadata is not part of the typed message.
			ev, _ := f.Event()
			want := broker.NewEvent(ev.Name, ev.Args...).Value()
			back, err := api.Mgmt.Encode(m)
			if err != nil || !broker.Equal(back.Value(), want) {
				t.Fatalf("re-encode: %v\n got %s\nwant %s", err, back.Value(), want)
			}
			decodeDataLenient(m, seen)
		})
	}
	if !seen["node statuses"] {
		t.Error("no canned get_nodes_response carried node statuses that decode")
	}
}

// decodeDataLenient reads Data like decodeData but without failing: the
// canned responses include deliberately odd data (a bad enum, port 0/?)
// that only the client's rendering has to survive.
func decodeDataLenient(m api.Message, seen map[string]bool) {
	if r, ok := m.(api.GetNodesResponse); ok {
		for _, res := range r.Results {
			if _, err := api.Mgmt.DecodeNodeStatuses(res.Data); err == nil {
				seen["node statuses"] = true
			}
		}
	}
}
