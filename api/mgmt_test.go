package api_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

const (
	evMStage    = "Management::Controller::API::stage_configuration_request"
	evMDeployR  = "Management::Controller::API::deploy_response"
	evMGetIDVal = "Management::Controller::API::get_id_value_request"
	evMHello    = "Management::Agent::API::notify_agent_hello"
	evMAgentDep = "Management::Agent::API::deploy_request"
	evMDispatch = "Management::Agent::API::node_dispatch_request"
	evMNodesR   = "Management::Agent::API::get_nodes_response"
)

// mgmtNodeFields is a valid 11-field mgmt Node: name, instance, role,
// state, p, scripts, options, interface, cpu_affinity, env, metrics_port.
func mgmtNodeFields(name string) []broker.Value {
	return []broker.Value{s(name), s("instance-1"), broker.Enum("Supervisor::WORKER"),
		broker.Enum("Management::RUNNING"), none, none, none, none, none, broker.Table(), none}
}

func mgmtResultFields() []broker.Value {
	return []broker.Value{s("r1"), broker.Bool(true), s("instance-1"), none, none, none}
}

func mgmtConfig(nodes ...broker.Value) broker.Event {
	return broker.NewEvent(evMStage, s("r1"), vec(s("c1"), broker.Set(instanceV()), broker.Set(nodes...)))
}

func mgmtNodeEvent(i int, v broker.Value) broker.Event {
	return mgmtConfig(vec(with(mgmtNodeFields("n0"), i, v)...))
}

func nodeStatusFields() []broker.Value {
	return []broker.Value{s("manager"), broker.Enum("Management::RUNNING"), broker.Enum("Management::NONE"),
		broker.Enum("Supervisor::MANAGER"), broker.Integer(4711), port(2200), none}
}

func TestMgmtProfile(t *testing.T) {
	p, err := api.Lookup("mgmt")
	if err != nil || p != api.Mgmt {
		t.Fatalf("Lookup(mgmt) = %v, %v", p, err)
	}
	if got := strings.Join(api.ProfileNames(), ","); got != "cc42,mgmt" {
		t.Errorf("ProfileNames = %s", got)
	}
	if p.DefaultPort != 2149 || p.ControllerTopic != "zeek/management/controller" ||
		p.AgentTopic("fake-1") != "zeek/management/agent/fake-1" {
		t.Errorf("profile %+v", p)
	}
	n := 0
	for k := api.EventKind(1); k < 255; k++ {
		name, ok := p.EventName(k)
		if !ok {
			continue
		}
		n++
		if back, ok := p.KindOf(name); !ok || back != k {
			t.Errorf("KindOf(%s) = %d, %v; want %d", name, back, ok, k)
		}
		if !strings.HasPrefix(name, "Management::Controller::API::") && !strings.HasPrefix(name, "Management::Agent::API::") {
			t.Errorf("event %s outside the Management modules", name)
		}
	}
	// §2.4 lists 17 controller events (8 request/response pairs and
	// notify_agents_ready), §2.5 16 agent events.
	if n != 33 {
		t.Errorf("mgmt has %d events, want 33", n)
	}
	for _, k := range []api.EventKind{api.KindSetConfigurationRequest, api.KindAgentSetConfigurationRequest} {
		if p.Supports(k) {
			t.Errorf("mgmt claims the cc42-only %d", k)
		}
	}
	if got := p.ShortName(api.KindAgentDeployRequest); got != "deploy_request" {
		t.Errorf("ShortName = %q", got)
	}
}

// TestMgmtDecodeRejects: precise errors for events that Zeek would refuse.
func TestMgmtDecodeRejects(t *testing.T) {
	cases := []struct {
		name string
		ev   broker.Event
		want string
	}{
		{"cc42 event", broker.NewEvent("ClusterController::API::get_instances_request", s("r1")),
			`unknown event "ClusterController::API::get_instances_request" in profile mgmt`},
		{"test_noop is declared nowhere", broker.NewEvent("Management::Controller::API::test_noop_request", s("r1")),
			`unknown event "Management::Controller::API::test_noop_request" in profile mgmt`},
		{"hello with cc42 shape", broker.NewEvent(evMHello, s("i1"), addr("127.0.0.1"), broker.Count(1)),
			`notify_agent_hello: want 4 arguments (instance, id, connecting, api_version), got 3`},
		{"hello api_version as integer", broker.NewEvent(evMHello, s("i1"), s("id"), broker.Bool(true), broker.Integer(1)),
			`notify_agent_hello arg 3 (api_version): want count, got integer`},
		{"agent deploy without force", broker.NewEvent(evMAgentDep, s("r1"), vec(s("c1"), broker.Set(), broker.Set())),
			`deploy_request: want 3 arguments (reqid, config, force), got 2`},
		{"get_id_value nodes as vector", broker.NewEvent(evMGetIDVal, s("r1"), s("x"), broker.Strings("manager")),
			`get_id_value_request arg 2 (nodes): want set, got vector`},
		{"dispatch action as set", broker.NewEvent(evMDispatch, s("r1"), broker.StringSet("get_id_value"), broker.Set()),
			`node_dispatch_request arg 1 (action): want vector, got set`},
		{"node with 9 fields", mgmtConfig(vec(mgmtNodeFields("n0")[:9]...)),
			`stage_configuration_request arg 1 (config): Node 0: record Node needs at least 10 fields, got 9`},
		{"cc42 node layout (port third)", mgmtConfig(vec(nodeFields("n0")...)),
			`stage_configuration_request arg 1 (config): Node 0 field 2 (role): want enum-value, got port`},
		{"cc42 state spelling", mgmtNodeEvent(3, broker.Enum("ClusterController::Types::Running")),
			`stage_configuration_request arg 1 (config): Node 0 field 3 (state): unknown Management::State "ClusterController::Types::Running" (mgmt wants Management::PENDING, RUNNING, STOPPED, FAILED, CRASHED or UNKNOWN)`},
		{"lower-case state", mgmtNodeEvent(3, broker.Enum("Management::running")),
			`stage_configuration_request arg 1 (config): Node 0 field 3 (state): unknown Management::State "Management::running" (mgmt wants Management::PENDING, RUNNING, STOPPED, FAILED, CRASHED or UNKNOWN)`},
		{"metrics port as count", mgmtNodeEvent(10, broker.Count(9000)),
			`stage_configuration_request arg 1 (config): Node 0 field 10 (metrics_port): want port, got count`},
		{"port as string", mgmtNodeEvent(4, s("5000/tcp")),
			`stage_configuration_request arg 1 (config): Node 0 field 4 (p): want port, got string`},
		{"none state", mgmtNodeEvent(3, none),
			`stage_configuration_request arg 1 (config): Node 0 field 3 (state): none in mandatory field (want enum-value)`},
		{"result in cc42 order", broker.NewEvent(evMDeployR, s("r1"), vec(vec(resultFields()...))),
			`deploy_response arg 1 (results): Result 0 field 1 (success): want boolean, got string`},
		{"short result", broker.NewEvent(evMDeployR, s("r1"), vec(vec(mgmtResultFields()[:5]...))),
			`deploy_response arg 1 (results): Result 0: record Result needs 6 fields, got 5`},
		{"result error as count", broker.NewEvent(evMDeployR, s("r1"), vec(vec(with(mgmtResultFields(), 4, broker.Count(1))...))),
			`deploy_response arg 1 (results): Result 0 field 4 (error): want string, got count`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := api.Mgmt.Decode(c.ev)
			if err == nil {
				t.Fatalf("decoded %+v, want error %q", m, c.want)
			}
			if err.Error() != c.want {
				t.Errorf("error text\n got %s\nwant %s", err, c.want)
			}
			var ue *api.UnknownEventError
			var ce *api.ArgCountError
			var ae *api.ArgError
			if !errors.As(err, &ue) && !errors.As(err, &ce) && !errors.As(err, &ae) {
				t.Errorf("error type %T is none of the three Decode errors", err)
			}
		})
	}
}

// TestMgmtRecordRules: the Zeek 5/6 layouts are accepted, none gives the
// &default values, and an empty instance or error travels as none.
func TestMgmtRecordRules(t *testing.T) {
	t.Run("10-field node", func(t *testing.T) {
		m, err := api.Mgmt.Decode(mgmtConfig(vec(mgmtNodeFields("n0")[:10]...)))
		if err != nil {
			t.Fatal(err)
		}
		n := m.(api.StageConfigurationRequest).Config.Nodes[0]
		if n.MetricsPort.Set || n.Name != "n0" || n.Role != api.ClusterRoleWorker {
			t.Fatalf("node %+v", n)
		}
		// It goes out in the Zeek ≥ 7 layout.
		back, err := api.Mgmt.NodeValue(n)
		if err != nil || back.Len() != 11 {
			t.Fatalf("re-encoded %s (%v), want 11 fields", back, err)
		}
	})
	t.Run("result defaults", func(t *testing.T) {
		ev := broker.NewEvent(evMDeployR, s("r1"), vec(vec(s("r1"), none, none, none, none, none)))
		m, err := api.Mgmt.Decode(ev)
		if err != nil {
			t.Fatal(err)
		}
		r := m.(api.DeployResponse).Results[0]
		if !r.Success || r.Instance != "" || r.Error != "" || r.Node.Set || !r.Data.IsNone() {
			t.Fatalf("result %+v", r)
		}
		back := api.Mgmt.ResultValue(api.Result{Reqid: "r1", Success: false, Error: "", Instance: ""})
		want := vec(s("r1"), broker.Bool(false), none, none, none, none)
		if !broker.Equal(back, want) {
			t.Fatalf("ResultValue %s, want %s", back, want)
		}
	})
	t.Run("node status", func(t *testing.T) {
		six := vec(nodeStatusFields()[:6]...)
		defaults := vec(s("worker"), broker.Enum("Management::PENDING"), none, none, none, none, none)
		got, err := api.Mgmt.DecodeNodeStatuses(vec(six, defaults))
		if err != nil {
			t.Fatal(err)
		}
		want := []api.NodeStatus{
			{Node: "manager", State: api.StateRunning, MgmtRole: api.RoleNone, ClusterRole: api.ClusterRoleManager,
				PID: api.Some[int64](4711), Port: tcp(2200)},
			{Node: "worker", State: api.StatePending},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("statuses\n got %+v\nwant %+v", got, want)
		}
		back, err := api.Mgmt.NodeStatusesValue(want)
		if err != nil {
			t.Fatal(err)
		}
		// &default fields go out with their value, the optional ones as none.
		wantBack := vec(vec(append(nodeStatusFields()[:6], none)...),
			vec(s("worker"), broker.Enum("Management::PENDING"), broker.Enum("Management::NONE"),
				broker.Enum("Supervisor::NONE"), none, none, none))
		if !broker.Equal(back, wantBack) {
			t.Fatalf("NodeStatusesValue\n got %s\nwant %s", back, wantBack)
		}
	})
	t.Run("node status errors", func(t *testing.T) {
		cases := map[string]struct {
			v    broker.Value
			want string
		}{
			"short":     {vec(vec(nodeStatusFields()[:5]...)), "NodeStatus 0: record NodeStatus needs at least 6 fields, got 5"},
			"cc42 enum": {vec(vec(with(nodeStatusFields(), 1, broker.Enum("ClusterController::Types::Running"))...)), `NodeStatus 0 field 1 (state): unknown Management::State "ClusterController::Types::Running" (mgmt wants Management::PENDING, RUNNING, STOPPED, FAILED, CRASHED or UNKNOWN)`},
			"role":      {vec(vec(with(nodeStatusFields(), 2, broker.Enum("Management::BOSS"))...)), `NodeStatus 0 field 2 (mgmt_role): unknown Management::Role "Management::BOSS" (want Management::NONE, AGENT, CONTROLLER or NODE)`},
			"pid count": {vec(vec(with(nodeStatusFields(), 4, broker.Count(1))...)), "NodeStatus 0 field 4 (pid): want integer, got count"},
		}
		for name, c := range cases {
			if _, err := api.Mgmt.DecodeNodeStatuses(c.v); err == nil || err.Error() != c.want {
				t.Errorf("%s: error %v, want %q", name, err, c.want)
			}
		}
	})
	t.Run("node outputs", func(t *testing.T) {
		o := api.NodeOutputs{Stdout: "out\n", Stderr: "\x1b[31merr\v"}
		v, err := api.Mgmt.NodeOutputsValue(o)
		if err != nil {
			t.Fatal(err)
		}
		back, err := api.Mgmt.DecodeNodeOutputs(v)
		if err != nil || back != o {
			t.Fatalf("round trip %+v (%v)", back, err)
		}
		if _, err := api.Mgmt.DecodeNodeOutputs(vec(s("only stdout"))); err == nil ||
			err.Error() != "record NodeOutputs needs 2 fields, got 1" {
			t.Errorf("short NodeOutputs: %v", err)
		}
	})
	t.Run("cc42 has none of them", func(t *testing.T) {
		if _, err := api.CC42.DecodeNodeStatuses(vec()); err == nil || err.Error() != "profile cc42 has no NodeStatus record" {
			t.Errorf("DecodeNodeStatuses: %v", err)
		}
		if _, err := api.CC42.NodeOutputsValue(api.NodeOutputs{}); err == nil || err.Error() != "profile cc42 has no NodeOutputs record" {
			t.Errorf("NodeOutputsValue: %v", err)
		}
	})
}

func TestMgmtEncode(t *testing.T) {
	hello, err := api.Mgmt.Encode(api.NotifyAgentHello{Instance: "fake-1", ID: "fake-broker-id-0001", Connecting: true, APIVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	// The hello a fake agent sent to a real Zeek 8.1.2 (fake-agent--websocket).
	want := broker.NewEvent(evMHello, s("fake-1"), s("fake-broker-id-0001"), broker.Bool(true), broker.Count(1))
	if !broker.Equal(hello.Value(), want.Value()) {
		t.Fatalf("hello %s, want %s", hello, want)
	}
	// A node without a port is fine here (the controller assigns one).
	n := api.Node{Name: "w1", Instance: "i1", Role: api.ClusterRoleWorker, State: api.StatePending}
	if _, err := api.Mgmt.Encode(api.StageConfigurationRequest{Reqid: "r", Config: api.Configuration{Nodes: []api.Node{n}}}); err != nil {
		t.Errorf("node without port: %v", err)
	}
	bad := []struct {
		m    api.Message
		want string
	}{
		{api.SetConfigurationRequest{Reqid: "r"}, "profile mgmt has no event for api.SetConfigurationRequest"},
		{api.NotifyChange{Instance: "i1", Node: n, New: api.State(9)},
			"encode notify_change arg 3 (new): state State(9) does not exist in profile mgmt"},
	}
	for _, c := range bad {
		if _, err := api.Mgmt.Encode(c.m); err == nil || err.Error() != c.want {
			t.Errorf("Encode(%T): %v, want %q", c.m, err, c.want)
		}
	}
	if _, err := api.Mgmt.NodeStatusesValue([]api.NodeStatus{{Node: "x", MgmtRole: api.Role(7)}}); err == nil ||
		err.Error() != `NodeStatus "x": management role 7 does not exist` {
		t.Errorf("bad role: %v", err)
	}
}
