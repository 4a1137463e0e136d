package api_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

const (
	evSetConfig   = "ClusterController::API::set_configuration_request"
	evSetConfigR  = "ClusterController::API::set_configuration_response"
	evGetInst     = "ClusterController::API::get_instances_request"
	evGetInstR    = "ClusterController::API::get_instances_response"
	evTestTimeout = "ClusterController::API::test_timeout_request"
	evReady       = "ClusterController::API::notify_agents_ready"
	evHello       = "ClusterAgent::API::notify_agent_hello"
	evChange      = "ClusterAgent::API::notify_change"
	evError       = "ClusterAgent::API::notify_error"
)

var (
	s    = broker.String
	none = broker.None()
	vec  = broker.Vector
)

func addr(a string) broker.Value { return broker.Address(netip.MustParseAddr(a)) }
func port(n uint16) broker.Value { return broker.FromPort(broker.TCPPort(n)) }

// with returns a copy of the record vector elems with field i replaced.
func with(elems []broker.Value, i int, v broker.Value) []broker.Value {
	out := append([]broker.Value(nil), elems...)
	out[i] = v
	return out
}

// nodeFields is a valid cc42 Node record: name, instance, p, role, state,
// scripts, options, interface, cpu_affinity, env.
func nodeFields(name string) []broker.Value {
	return []broker.Value{s(name), s("instance-1"), port(5000), broker.Enum("Supervisor::WORKER"),
		broker.Enum("ClusterController::Types::Running"), none, none, none, none, broker.Table()}
}

// resultFields is a valid cc42 Result record.
func resultFields() []broker.Value {
	return []broker.Value{s("r1"), s("instance-1"), broker.Bool(true), none, s(""), none}
}

func instanceV() broker.Value { return vec(s("instance-1"), addr("0.0.0.0"), none) }

// configWithNodes is a set_configuration_request whose config holds the
// given nodes.
func configWithNodes(nodes ...broker.Value) broker.Event {
	return broker.NewEvent(evSetConfig, s("r1"), vec(s("c1"), broker.Set(instanceV()), broker.Set(nodes...)))
}

// fiveNodesBadFourth has nodes n0…n4; n3 (index 3 in set order) carries
// its port as a string.
func fiveNodesBadFourth() broker.Event {
	var nodes []broker.Value
	for _, n := range []string{"n0", "n1", "n2", "n3", "n4"} {
		f := nodeFields(n)
		if n == "n3" {
			f = with(f, 2, s("5003/tcp"))
		}
		nodes = append(nodes, vec(f...))
	}
	return configWithNodes(nodes...)
}

func nodeEvent(i int, v broker.Value) broker.Event {
	return configWithNodes(vec(with(nodeFields("n0"), i, v)...))
}

func resultEvent(i int, v broker.Value) broker.Event {
	return broker.NewEvent(evGetInstR, s("r1"), vec(with(resultFields(), i, v)...))
}

// TestDecodeRejects feeds malformed events to Decode and checks the exact
// error text and the error type callers branch on.
func TestDecodeRejects(t *testing.T) {
	type errKind int
	const (
		unknown errKind = iota
		argCount
		argErr
	)
	cases := []struct {
		name string
		ev   broker.Event
		kind errKind
		want string
	}{
		{"unknown event", broker.NewEvent("ClusterController::API::nope", s("r1")), unknown,
			`unknown event "ClusterController::API::nope" in profile cc42`},
		{"foreign-profile event", broker.NewEvent("Management::Controller::API::get_instances_request", s("r1")), unknown,
			`unknown event "Management::Controller::API::get_instances_request" in profile cc42`},
		{"too few args (&default node still required)", broker.NewEvent(evError, s("instance-1"), s("boom")), argCount,
			`notify_error: want 3 arguments (instance, msg, node), got 2`},
		{"too many args", broker.NewEvent(evGetInst, s("r1"), s("extra")), argCount,
			`get_instances_request: want 1 arguments (reqid), got 2`},
		{"no args", broker.NewEvent(evSetConfig), argCount,
			`set_configuration_request: want 2 arguments (reqid, config), got 0`},
		{"wrong arg type", broker.NewEvent(evGetInst, broker.Count(1)), argErr,
			`get_instances_request arg 0 (reqid): want string, got count`},
		{"none argument", broker.NewEvent(evTestTimeout, s("r1"), none), argErr,
			`test_timeout_request arg 1 (with_state): want boolean, got none`},
		{"integer where count is required", broker.NewEvent(evHello, s("instance-1"), addr("127.0.0.1"), broker.Integer(1)), argErr,
			`notify_agent_hello arg 2 (api_version): want count, got integer`},
		{"address as string", broker.NewEvent(evHello, s("instance-1"), s("127.0.0.1"), broker.Count(1)), argErr,
			`notify_agent_hello arg 1 (host): want address, got string`},
		{"node port as string, element index in set order", fiveNodesBadFourth(), argErr,
			`set_configuration_request arg 1 (config): Node 3 field 2 (p): want port, got string`},
		{"short node record", configWithNodes(vec(nodeFields("n0")[:9]...)), argErr,
			`set_configuration_request arg 1 (config): Node 0: record Node needs 10 fields, got 9`},
		{"short configuration", broker.NewEvent(evSetConfig, s("r1"), vec(s("c1"), broker.Set())), argErr,
			`set_configuration_request arg 1 (config): record Configuration needs 3 fields, got 2`},
		{"configuration not a record", broker.NewEvent(evSetConfig, s("r1"), broker.Set()), argErr,
			`set_configuration_request arg 1 (config): want vector (record Configuration), got set`},
		{"none in mandatory port", nodeEvent(2, none), argErr,
			`set_configuration_request arg 1 (config): Node 0 field 2 (p): none in mandatory field (want port)`},
		{"none in mandatory node name", nodeEvent(0, none), argErr,
			`set_configuration_request arg 1 (config): Node 0 field 0 (name): none in mandatory field (want string)`},
		{"none in mandatory result reqid", resultEvent(0, none), argErr,
			`get_instances_response arg 1 (result): field 0 (reqid): none in mandatory field (want string)`},
		{"none in mandatory instance host",
			broker.NewEvent(evSetConfig, s("r1"), vec(s("c1"), broker.Set(vec(s("i1"), none, none)), broker.Set())), argErr,
			`set_configuration_request arg 1 (config): Instance 0 field 1 (host): none in mandatory field (want address)`},
		{"bad role enum", nodeEvent(3, broker.Enum("Supervisor::worker")), argErr,
			`set_configuration_request arg 1 (config): Node 0 field 3 (role): unknown Supervisor::ClusterRole "Supervisor::worker" (want Supervisor::NONE, LOGGER, MANAGER, PROXY or WORKER)`},
		{"P2 state spelling", nodeEvent(4, broker.Enum("ClusterController::Types::RUNNING")), argErr,
			`set_configuration_request arg 1 (config): Node 0 field 4 (state): unknown ClusterController::Types::State "ClusterController::Types::RUNNING" (cc42 wants ClusterController::Types::Running, Stopped, Failed, Crashed or Unknown)`},
		{"foreign-profile state enum", nodeEvent(4, broker.Enum("Management::RUNNING")), argErr,
			`set_configuration_request arg 1 (config): Node 0 field 4 (state): unknown ClusterController::Types::State "Management::RUNNING" (cc42 wants ClusterController::Types::Running, Stopped, Failed, Crashed or Unknown)`},
		{"unqualified state enum", nodeEvent(4, broker.Enum("Running")), argErr,
			`set_configuration_request arg 1 (config): Node 0 field 4 (state): unknown ClusterController::Types::State "Running" (cc42 wants ClusterController::Types::Running, Stopped, Failed, Crashed or Unknown)`},
		{"state as string", nodeEvent(4, s("ClusterController::Types::Running")), argErr,
			`set_configuration_request arg 1 (config): Node 0 field 4 (state): want enum-value, got string`},
		{"count where integer is required", nodeEvent(8, broker.Count(3)), argErr,
			`set_configuration_request arg 1 (config): Node 0 field 8 (cpu_affinity): want integer, got count`},
		{"scripts element not a string", nodeEvent(5, vec(s("local.zeek"), broker.Count(1))), argErr,
			`set_configuration_request arg 1 (config): Node 0 field 5 (scripts) element 1: want string, got count`},
		{"scripts as set", nodeEvent(5, broker.StringSet("local.zeek")), argErr,
			`set_configuration_request arg 1 (config): Node 0 field 5 (scripts): want vector, got set`},
		{"option value not a string", nodeEvent(6, broker.Set(vec(s("a"), broker.Count(1)))), argErr,
			`set_configuration_request arg 1 (config): Node 0 Option 0 field 1 (value): want string, got count`},
		{"short option", nodeEvent(6, broker.Set(vec(s("a")))), argErr,
			`set_configuration_request arg 1 (config): Node 0 Option 0: record Option needs 2 fields, got 1`},
		{"options as vector", nodeEvent(6, vec()), argErr,
			`set_configuration_request arg 1 (config): Node 0 field 6 (options): want set, got vector`},
		{"env value not a string", nodeEvent(9, broker.Table(broker.TableEntry{Key: s("LANG"), Value: broker.Count(1)})), argErr,
			`set_configuration_request arg 1 (config): Node 0 field 9 (env) entry 0 value: want string, got count`},
		{"env key not a string", nodeEvent(9, broker.Table(broker.TableEntry{Key: broker.Count(1), Value: s("x")})), argErr,
			`set_configuration_request arg 1 (config): Node 0 field 9 (env) entry 0 key: want string, got count`},
		{"env as vector", nodeEvent(9, vec()), argErr,
			`set_configuration_request arg 1 (config): Node 0 field 9 (env): want table, got vector`},
		{"instances as vector", broker.NewEvent(evSetConfig, s("r1"), vec(s("c1"), vec(), broker.Set())), argErr,
			`set_configuration_request arg 1 (config): field 1 (instances): want set, got vector`},
		{"instance element not a record", broker.NewEvent(evSetConfig, s("r1"), vec(s("c1"), broker.StringSet("i1"), broker.Set())), argErr,
			`set_configuration_request arg 1 (config): Instance 0: want vector (record Instance), got string`},
		{"instance listen_port as count",
			broker.NewEvent(evSetConfig, s("r1"), vec(s("c1"), broker.Set(vec(s("i1"), addr("10.0.0.1"), broker.Count(2151))), broker.Set())), argErr,
			`set_configuration_request arg 1 (config): Instance 0 field 2 (listen_port): want port, got count`},
		{"config id not a string", broker.NewEvent(evSetConfig, s("r1"), vec(broker.Count(7), broker.Set(), broker.Set())), argErr,
			`set_configuration_request arg 1 (config): field 0 (id): want string, got count`},
		{"result success as string", resultEvent(2, s("T")), argErr,
			`get_instances_response arg 1 (result): field 2 (success): want boolean, got string`},
		{"result node as count", resultEvent(5, broker.Count(0)), argErr,
			`get_instances_response arg 1 (result): field 5 (node): want string, got count`},
		{"short result in vector",
			broker.NewEvent(evSetConfigR, s("r1"), vec(vec(resultFields()...), vec(resultFields()[:5]...))), argErr,
			`set_configuration_response arg 1 (result): Result 1: record Result needs 6 fields, got 5`},
		{"result vector as set", broker.NewEvent(evSetConfigR, s("r1"), broker.Set(vec(resultFields()...))), argErr,
			`set_configuration_response arg 1 (result): want vector, got set`},
		{"ready instances as vector", broker.NewEvent(evReady, broker.Strings("instance-1")), argErr,
			`notify_agents_ready arg 0 (instances): want set, got vector`},
		{"ready instance not a string", broker.NewEvent(evReady, broker.Set(broker.Count(1))), argErr,
			`notify_agents_ready arg 0 (instances): element 0: want string, got count`},
		{"notify_change bad old state", broker.NewEvent(evChange, s("instance-1"), vec(nodeFields("n0")...),
			broker.Enum("ClusterController::Types::Pending"), broker.Enum("ClusterController::Types::Running")), argErr,
			`notify_change arg 2 (old): unknown ClusterController::Types::State "ClusterController::Types::Pending" (cc42 wants ClusterController::Types::Running, Stopped, Failed, Crashed or Unknown)`},
		{"notify_change node short", broker.NewEvent(evChange, s("instance-1"), vec(nodeFields("n0")[:3]...),
			broker.Enum("ClusterController::Types::Running"), broker.Enum("ClusterController::Types::Running")), argErr,
			`notify_change arg 1 (n): record Node needs 10 fields, got 3`},
		{"first failing argument wins", broker.NewEvent(evHello, broker.Count(1), s("x"), broker.Integer(1)), argErr,
			`notify_agent_hello arg 0 (instance): want string, got count`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := api.CC42.Decode(c.ev)
			if err == nil {
				t.Fatalf("decoded %+v, want error %q", m, c.want)
			}
			if m != nil {
				t.Errorf("message %+v returned with the error", m)
			}
			if err.Error() != c.want {
				t.Errorf("error text\n got %s\nwant %s", err, c.want)
			}
			var (
				ue *api.UnknownEventError
				ce *api.ArgCountError
				ae *api.ArgError
			)
			switch c.kind {
			case unknown:
				if !errors.As(err, &ue) || ue.Name != c.ev.Name || ue.Profile != "cc42" {
					t.Errorf("want *UnknownEventError{%q, cc42}, got %T %+v", c.ev.Name, err, err)
				}
			case argCount:
				if !errors.As(err, &ce) || ce.Event != c.ev.Name || ce.Got != len(c.ev.Args) {
					t.Errorf("want *ArgCountError for %s with Got=%d, got %T %+v", c.ev.Name, len(c.ev.Args), err, err)
				}
			case argErr:
				if !errors.As(err, &ae) || ae.Event != c.ev.Name {
					t.Fatalf("want *ArgError for %s, got %T %+v", c.ev.Name, err, err)
				}
				prefix := ae.Name + "): "
				if !strings.Contains(err.Error(), prefix) {
					t.Errorf("ArgError.Name %q does not match the text %q", ae.Name, err)
				}
				var ve *api.ValueError
				if !errors.As(err, &ve) {
					t.Errorf("ArgError does not wrap a *ValueError: %T", ae.Err)
				}
			}
		})
	}
}

// TestDecodeRecordRules checks the accepting side of spec §1.3: extra
// trailing elements are ignored, none leaves &optional fields unset and
// &default fields at their default, and elements that convert to the
// same record collapse as in a Zeek set.
func TestDecodeRecordRules(t *testing.T) {
	t.Run("trailing elements ignored", func(t *testing.T) {
		n := append(nodeFields("n0"), s("metrics?"), broker.Count(9))
		m, err := api.CC42.Decode(configWithNodes(vec(n...)))
		if err != nil {
			t.Fatal(err)
		}
		got := m.(api.SetConfigurationRequest).Config.Nodes
		want := api.Node{Name: "n0", Instance: "instance-1", Port: tcp(5000), Role: api.ClusterRoleWorker, State: api.StateRunning}
		if len(got) != 1 || !got[0].Equal(want) {
			t.Fatalf("nodes %+v, want [%+v]", got, want)
		}
	})
	t.Run("none gives result defaults", func(t *testing.T) {
		ev := broker.NewEvent(evGetInstR, s("r1"), vec(s("r1"), none, none, none, none, none))
		m, err := api.CC42.Decode(ev)
		if err != nil {
			t.Fatal(err)
		}
		got := m.(api.GetInstancesResponse).Result
		if got.Instance != "" || !got.Success || !got.Data.IsNone() || got.Error != "" || got.Node.Set {
			t.Fatalf("result %+v: want instance \"\", success T, no data, error \"\", node unset", got)
		}
		// The defaults travel with their value when encoded again.
		back, err := api.CC42.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		want := vec(s("r1"), s(""), broker.Bool(true), none, s(""), none)
		if !broker.Equal(back.Args[1], want) {
			t.Fatalf("re-encoded result %s, want %s", back.Args[1], want)
		}
	})
	t.Run("none gives configuration and env defaults", func(t *testing.T) {
		ev := broker.NewEvent(evSetConfig, s("r1"), vec(none, none, broker.Set(vec(with(nodeFields("n0"), 9, none)...))))
		m, err := api.CC42.Decode(ev)
		if err != nil {
			t.Fatal(err)
		}
		cfg := m.(api.SetConfigurationRequest).Config
		if cfg.ID != "" || cfg.Instances != nil || len(cfg.Nodes) != 1 || cfg.Nodes[0].Env != nil {
			t.Fatalf("config %+v: want id \"\", no instances, one node with empty env", cfg)
		}
	})
	t.Run("converted duplicates collapse", func(t *testing.T) {
		// Three distinct wire elements, one record: env none and {} are the
		// same default, and trailing elements do not count.
		a := vec(with(nodeFields("n0"), 9, none)...)
		b := vec(nodeFields("n0")...)
		c := vec(append(nodeFields("n0"), s("extra"))...)
		d := vec(nodeFields("n1")...)
		m, err := api.CC42.Decode(configWithNodes(a, b, c, d))
		if err != nil {
			t.Fatal(err)
		}
		nodes := m.(api.SetConfigurationRequest).Config.Nodes
		if len(nodes) != 2 || nodes[0].Name != "n0" || nodes[1].Name != "n1" {
			t.Fatalf("nodes %+v, want n0 and n1 once each", nodes)
		}
	})
	t.Run("metadata ignored", func(t *testing.T) {
		ev := broker.NewEvent(evGetInst, s("r1"))
		ev.Metadata = []broker.MetadataEntry{{Key: broker.MetadataNetworkTimestamp, Value: broker.Count(0)}}
		m, err := api.CC42.Decode(ev)
		if err != nil {
			t.Fatal(err)
		}
		if m != (api.GetInstancesRequest{Reqid: "r1"}) {
			t.Fatalf("got %+v", m)
		}
	})
}

// TestEncodeRejects: messages that cc42 cannot express fail to encode
// with an error naming the event, argument and record.
func TestEncodeRejects(t *testing.T) {
	node := api.Node{Name: "w1", Instance: "i1", Port: tcp(5000), Role: api.ClusterRoleWorker}
	noPort := node
	noPort.Port = api.Opt[broker.Port]{}
	pending := node
	pending.State = api.StatePending
	badRole := node
	badRole.Role = api.ClusterRole(42)
	cases := []struct {
		name string
		m    api.Message
		want string
	}{
		{"node without port", api.SetConfigurationRequest{Reqid: "r1", Config: api.Configuration{Nodes: []api.Node{noPort}}},
			`encode set_configuration_request arg 1 (config): Node "w1": port is unset, but mandatory in cc42`},
		{"pending state", api.NotifyChange{Instance: "i1", Node: pending},
			`encode notify_change arg 1 (n): Node "w1": state PENDING does not exist in profile cc42`},
		{"pending state argument", api.NotifyChange{Instance: "i1", Node: node, New: api.StatePending},
			`encode notify_change arg 3 (new): state PENDING does not exist in profile cc42`},
		{"bad role", api.AgentSetConfigurationRequest{Config: api.Configuration{Nodes: []api.Node{badRole}}},
			`encode set_configuration_request arg 1 (config): Node "w1": cluster role 42 does not exist`},
		{"instance without host", api.SetConfigurationRequest{Config: api.Configuration{Instances: []api.Instance{{Name: "i1"}}}},
			`encode set_configuration_request arg 1 (config): Instance "i1": host: address is not set`},
		{"hello without host", api.NotifyAgentHello{Instance: "i1", APIVersion: 1},
			`encode notify_agent_hello arg 1 (host): address is not set`},
		{"mgmt-only event", api.DeployRequest{Reqid: "r1"},
			`profile cc42 has no event for api.DeployRequest`},
		{"nil message", nil, `profile cc42: cannot encode a nil message`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev, err := api.CC42.Encode(c.m)
			if err == nil {
				t.Fatalf("encoded %s, want error %q", ev, c.want)
			}
			if err.Error() != c.want {
				t.Errorf("error text\n got %s\nwant %s", err, c.want)
			}
		})
	}
}

// TestEncodePointer: a message passed by pointer encodes like its value.
func TestEncodePointer(t *testing.T) {
	m := api.TestTimeoutRequest{Reqid: "r1", WithState: true}
	byValue, err := api.CC42.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	byPointer, err := api.CC42.Encode(&m)
	if err != nil {
		t.Fatal(err)
	}
	if !broker.Equal(byValue.Value(), byPointer.Value()) {
		t.Fatalf("by pointer %s, by value %s", byPointer, byValue)
	}
	if _, err := api.CC42.Encode((*api.TestTimeoutRequest)(nil)); err == nil {
		t.Fatal("nil pointer encoded without error")
	}
}
