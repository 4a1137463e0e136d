package api_test

import (
	"net/netip"
	"testing"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// TestInstancesData reads the get_instances_response vector's Result.Data
// with DecodeInstances, and builds the same data with InstancesValue.
func TestInstancesData(t *testing.T) {
	want := []api.Instance{
		{Name: "instance-1", Host: netip.MustParseAddr("0.0.0.0")},
		{Name: "instance-2", Host: netip.MustParseAddr("10.0.0.2"), ListenPort: tcp(2151)},
	}
	for _, e := range loadVectors(t) {
		if e.Name != "get_instances_response" {
			continue
		}
		m, err := api.CC42.DecodeFrame(decodeVector(t, e))
		if err != nil {
			t.Fatal(err)
		}
		data := m.(api.GetInstancesResponse).Result.Data
		got, err := api.CC42.DecodeInstances(data)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) || !got[0].Equal(want[0]) || !got[1].Equal(want[1]) {
			t.Fatalf("instances %+v, want %+v", got, want)
		}
		built, err := api.CC42.InstancesValue(want)
		if err != nil {
			t.Fatal(err)
		}
		if !broker.Equal(built, data) {
			t.Fatalf("InstancesValue %s, vector data %s", built, data)
		}
		return
	}
	t.Fatal("vector get_instances_response not found")
}

func TestRecordHelperErrors(t *testing.T) {
	cases := []struct {
		name string
		run  func() error
		want string
	}{
		{"instances data none", func() error { _, err := api.CC42.DecodeInstances(broker.None()); return err },
			"want vector, got none"},
		{"instance host as string", func() error {
			_, err := api.CC42.DecodeInstances(vec(instanceV(), vec(s("i2"), s("10.0.0.2"), none)))
			return err
		}, "Instance 1 field 1 (host): want address, got string"},
		{"node state", func() error {
			_, err := api.CC42.DecodeNode(vec(with(nodeFields("n0"), 4, broker.Enum("Management::RUNNING"))...))
			return err
		}, `field 4 (state): unknown ClusterController::Types::State "Management::RUNNING" (cc42 wants ClusterController::Types::Running, Stopped, Failed, Crashed or Unknown)`},
		{"results element", func() error {
			_, err := api.CC42.DecodeResults(vec(vec(resultFields()...), broker.Count(1)))
			return err
		}, "Result 1: want vector (record Result), got count"},
		{"configuration", func() error {
			_, err := api.CC42.DecodeConfiguration(vec(s("c1"), broker.Set(), broker.Set(vec(nodeFields("n0")[:2]...))))
			return err
		}, "Node 0: record Node needs 10 fields, got 2"},
		{"instances value without host", func() error {
			_, err := api.CC42.InstancesValue([]api.Instance{{Name: "i1"}})
			return err
		}, `Instance "i1": host: address is not set`},
		{"node value without port", func() error {
			_, err := api.CC42.NodeValue(api.Node{Name: "n1"})
			return err
		}, `Node "n1": port is unset, but mandatory in cc42`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.run()
			if err == nil || err.Error() != c.want {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

// TestRecordHelpersRoundTrip: each Value helper's output decodes to its
// input with the matching Decode helper.
func TestRecordHelpersRoundTrip(t *testing.T) {
	cfg := zeekClientConfig()
	cv, err := api.CC42.ConfigurationValue(cfg)
	if err != nil {
		t.Fatal(err)
	}
	gotCfg, err := api.CC42.DecodeConfiguration(cv)
	if err != nil || !gotCfg.Equal(cfg) {
		t.Fatalf("configuration %+v (%v), want %+v", gotCfg, err, cfg)
	}

	node := api.Node{Name: "w", Instance: "i", Port: tcp(1), Role: api.ClusterRoleWorker, State: api.StateCrashed,
		Scripts: api.Some[[]string](nil), Options: api.Some([]api.Option{{Name: "b", Value: "2"}, {Name: "a", Value: "1"}}),
		Env: map[string]string{"K": "V"}}
	nv, err := api.CC42.NodeValue(node)
	if err != nil {
		t.Fatal(err)
	}
	gotNode, err := api.CC42.DecodeNode(nv)
	if err != nil || !gotNode.Equal(node) {
		t.Fatalf("node %+v (%v), want %+v", gotNode, err, node)
	}
	if !gotNode.Scripts.Set || gotNode.Scripts.V != nil {
		t.Errorf("an empty scripts vector must decode as set and nil, got %+v", gotNode.Scripts)
	}

	results := []api.Result{
		{Reqid: "r", Instance: "i", Success: true, Data: broker.String("cfg-id")},
		{Reqid: "r", Success: false, Error: "boom", Node: api.Some("")},
	}
	rv := api.CC42.ResultsValue(results)
	gotResults, err := api.CC42.DecodeResults(rv)
	if err != nil || len(gotResults) != 2 || !gotResults[0].Equal(results[0]) || !gotResults[1].Equal(results[1]) {
		t.Fatalf("results %+v (%v), want %+v", gotResults, err, results)
	}
	// node "" is set, which is not the same as unset (§4.6).
	if !gotResults[1].Node.Set {
		t.Error("Node Some(\"\") decoded as unset")
	}
	one, err := api.CC42.DecodeResult(api.CC42.ResultValue(results[0]))
	if err != nil || !one.Equal(results[0]) {
		t.Fatalf("result %+v (%v)", one, err)
	}
}

// TestEquality makes sure the equality helpers can say no: each mutation
// of a node or configuration is noticed, while set order, nil versus empty
// and the V of an unset Opt are not.
func TestEquality(t *testing.T) {
	base := zeekClientConfig()
	base.Nodes[4].Scripts = api.Some([]string{"a.zeek"})
	base.Nodes[4].Options = api.Some([]api.Option{{Name: "x", Value: "1"}, {Name: "y", Value: "2"}})
	base.Nodes[4].Env = map[string]string{"K": "V"}
	clone := func() api.Configuration {
		c := zeekClientConfig()
		c.Nodes[4].Scripts = api.Some([]string{"a.zeek"})
		c.Nodes[4].Options = api.Some([]api.Option{{Name: "y", Value: "2"}, {Name: "x", Value: "1"}})
		c.Nodes[4].Env = map[string]string{"K": "V"}
		return c
	}
	same := map[string]func(c *api.Configuration){
		"as is":             func(c *api.Configuration) {},
		"nodes reversed":    func(c *api.Configuration) { reverse(c.Nodes) },
		"instances swapped": func(c *api.Configuration) { c.Instances[0], c.Instances[1] = c.Instances[1], c.Instances[0] },
		"duplicate node":    func(c *api.Configuration) { c.Nodes = append(c.Nodes, c.Nodes[0]) },
		"empty env":         func(c *api.Configuration) { c.Nodes[0].Env = map[string]string{} },
		"junk in unset opt": func(c *api.Configuration) { c.Nodes[0].Interface = api.Opt[string]{V: "junk"} },
	}
	differ := map[string]func(c *api.Configuration){
		"id":              func(c *api.Configuration) { c.ID = "other" },
		"missing node":    func(c *api.Configuration) { c.Nodes = c.Nodes[1:] },
		"port":            func(c *api.Configuration) { c.Nodes[2].Port = tcp(9) },
		"state":           func(c *api.Configuration) { c.Nodes[2].State = api.StateStopped },
		"role":            func(c *api.Configuration) { c.Nodes[2].Role = api.ClusterRoleWorker },
		"scripts unset":   func(c *api.Configuration) { c.Nodes[4].Scripts = api.Opt[[]string]{} },
		"scripts content": func(c *api.Configuration) { c.Nodes[4].Scripts = api.Some([]string{"b.zeek"}) },
		"option value":    func(c *api.Configuration) { c.Nodes[4].Options.V[0].Value = "3" },
		"env value":       func(c *api.Configuration) { c.Nodes[4].Env["K"] = "W" },
		"cpu":             func(c *api.Configuration) { c.Nodes[4].CPUAffinity = api.Some[int64](4) },
		"metrics port":    func(c *api.Configuration) { c.Nodes[4].MetricsPort = tcp(9000) },
		"instance host":   func(c *api.Configuration) { c.Instances[0].Host = netip.MustParseAddr("10.0.0.9") },
		"listen port":     func(c *api.Configuration) { c.Instances[0].ListenPort = tcp(2151) },
		"renamed node":    func(c *api.Configuration) { c.Nodes[1].Name = "manager-2" },
	}
	for name, mutate := range same {
		c := clone()
		mutate(&c)
		if !base.Equal(c) || !c.Equal(base) {
			t.Errorf("%s: configurations should be equal", name)
		}
		if !api.MessagesEqual(api.SetConfigurationRequest{Config: base}, api.SetConfigurationRequest{Config: c}) {
			t.Errorf("%s: MessagesEqual should agree", name)
		}
	}
	for name, mutate := range differ {
		c := clone()
		mutate(&c)
		if base.Equal(c) || c.Equal(base) {
			t.Errorf("%s: configurations should differ", name)
		}
		if api.MessagesEqual(api.AgentSetConfigurationRequest{Config: base}, api.AgentSetConfigurationRequest{Config: c}) {
			t.Errorf("%s: MessagesEqual should differ", name)
		}
	}

	r := api.Result{Reqid: "r", Success: true, Data: broker.StringSet("a", "b")}
	msgDiffer := map[string][2]api.Message{
		"kind":        {api.AgentWelcomeRequest{Reqid: "r"}, api.AgentStandbyRequest{Reqid: "r"}},
		"reqid":       {api.GetInstancesRequest{Reqid: "a"}, api.GetInstancesRequest{Reqid: "b"}},
		"nil":         {nil, api.GetInstancesRequest{}},
		"result data": {api.TestTimeoutResponse{Result: r}, api.TestTimeoutResponse{Result: api.Result{Reqid: "r", Success: true, Data: broker.StringSet("a")}}},
		"result node": {api.TestTimeoutResponse{Result: r}, api.TestTimeoutResponse{Result: api.Result{Reqid: "r", Success: true, Data: r.Data, Node: api.Some("")}}},
		"results len": {api.SetConfigurationResponse{Results: []api.Result{r}}, api.SetConfigurationResponse{Results: []api.Result{r, r}}},
		"hello host":  {api.NotifyAgentHello{Host: netip.MustParseAddr("::1")}, api.NotifyAgentHello{Host: netip.MustParseAddr("127.0.0.1")}},
		"ready set":   {api.NotifyAgentsReady{Instances: []string{"a"}}, api.NotifyAgentsReady{Instances: []string{"b"}}},
	}
	for name, pair := range msgDiffer {
		if api.MessagesEqual(pair[0], pair[1]) {
			t.Errorf("%s: messages should differ", name)
		}
	}
	if !api.MessagesEqual(api.NotifyAgentsReady{}, api.NotifyAgentsReady{Instances: []string{}}) {
		t.Error("nil and empty instance lists should be equal")
	}
	if !api.MessagesEqual(nil, nil) {
		t.Error("nil messages should be equal")
	}
}

func reverse[T any](s []T) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}
