package suites

import (
	"strings"
	"testing"

	"github.com/zcc-harness/zcc/api/mgmtvectors"
	"github.com/zcc-harness/zcc/broker"
)

// eventOf decodes a frame's text as a Zeek event; ok is false for
// anything else (acks, errors, pings).
func eventOf(text string) (broker.Event, bool) {
	f, err := broker.DecodeFrame([]byte(text))
	if err != nil || f.Type != broker.FrameDataMessage {
		return broker.Event{}, false
	}
	ev, err := broker.EventFromValue(f.Data)
	return ev, err == nil
}

func reqidArg(ev broker.Event) string {
	if len(ev.Args) == 0 {
		return ""
	}
	s, _ := ev.Args[0].AsString()
	return s
}

// TestShapeCheckerAcceptsRealZeek runs the checker over every response a
// real Zeek 8.1.2 controller sent to a client in the recorded transcripts:
// what zeek-client read from Zeek itself must pass, or the checker is
// stricter than reality.
func TestShapeCheckerAcceptsRealZeek(t *testing.T) {
	dir, err := mgmtvectors.Dir()
	if err != nil {
		t.Fatal(err)
	}
	ts, err := mgmtvectors.LoadTranscripts(dir)
	if err != nil {
		t.Fatal(err)
	}
	checked := map[string]int{}
	for _, tr := range ts {
		requests := map[string]string{} // reqid → request short name
		for _, f := range tr.Frames {
			if f.Kind != "" {
				continue
			}
			ev, ok := eventOf(f.Text)
			if !ok {
				continue
			}
			short, isAPI := strings.CutPrefix(ev.Name, mgmtAPI)
			switch {
			case !isAPI:
			case f.Dir == mgmtvectors.DirClientToController:
				requests[reqidArg(ev)] = short
			case f.Dir == mgmtvectors.DirControllerToClient:
				req, ok := requests[reqidArg(ev)]
				if !ok {
					continue // another client's request (§1.7)
				}
				if problems := mgmtShapeProblems(req, reqidArg(ev), ev); len(problems) > 0 {
					t.Errorf("%s: real Zeek's %s fails the checker:\n  %s", tr.Case, short, strings.Join(problems, "\n  "))
				}
				checked[req]++
			}
		}
	}
	for req := range mgmtResponseOf {
		if checked[req] == 0 {
			t.Errorf("no real Zeek response to %s in the transcripts was checked", req)
		}
	}
	t.Logf("checked real Zeek responses: %v", checked)
}

// TestShapeCheckerRejects feeds the checker responses zeek-client cannot
// read; each must give a problem naming the right place.
func TestShapeCheckerRejects(t *testing.T) {
	s, n, b := broker.String, broker.None(), broker.Bool
	result := func(reqid string, ok bool, inst, data, errText, node broker.Value) broker.Value {
		return broker.Vector(s(reqid), b(ok), inst, data, errText, node)
	}
	okResult := result("r", true, n, n, n, n)
	instance := broker.Vector(s("i1"), broker.Address(mustAddr("127.0.0.1")), n)
	node11 := func(role, state broker.Value, port broker.Value) broker.Value {
		return broker.Vector(s("manager"), s("i1"), role, state, port, n, n, n, n, broker.Table(), n)
	}
	cfg := func(nodes ...broker.Value) broker.Value {
		return broker.Vector(s("cfg"), broker.Set(instance), broker.Set(nodes...))
	}
	cases := []struct {
		name, request string
		ev            broker.Event
		want          string
	}{
		{"wrong response name", "get_instances_request", broker.NewEvent(mgmtAPI+"get_nodes_response", s("r"), okResult), "want Management::Controller::API::get_instances_response"},
		{"reqid not echoed", "get_instances_request", broker.NewEvent(mgmtAPI+"get_instances_response", s("other"), result("r", true, n, broker.Vector(), n, n)), "args[0]: the reqid must be echoed"},
		{"five-field Result", "test_timeout_request", broker.NewEvent(mgmtAPI+"test_timeout_response", s("r"), broker.Vector(s("r"), b(false), n, n, s("x"))), "result: Result must have 6 fields"},
		{"cc42 Result order", "test_timeout_request", broker.NewEvent(mgmtAPI+"test_timeout_response", s("r"), broker.Vector(s("r"), s(""), b(false), n, s("x"), n)), "result.success: want boolean"},
		{"failure without error", "deploy_request", broker.NewEvent(mgmtAPI+"deploy_response", s("r"), broker.Vector(result("r", false, n, n, n, n))), "a failed Result needs an error text"},
		{"single Result for a vector", "deploy_request", broker.NewEvent(mgmtAPI+"deploy_response", s("r"), okResult), "results[0]: Result must be a record"},
		{"config id not last", "deploy_request", broker.NewEvent(mgmtAPI+"deploy_response", s("r"), broker.Vector(result("r", true, n, s("cfg"), n, n), result("a", true, s("i1"), n, n, s("w")))), "must come last"},
		{"config id not a string", "deploy_request", broker.NewEvent(mgmtAPI+"deploy_response", s("r"), broker.Vector(result("r", true, n, broker.Count(1), n, n))), "data (config id): want string"},
		{"NodeOutputs of one field", "deploy_request", broker.NewEvent(mgmtAPI+"deploy_response", s("r"), broker.Vector(result("a", false, s("i1"), broker.Vector(s("out")), n, s("w")))), "NodeOutputs must have 2 fields"},
		{"unqualified enum", "get_configuration_request", broker.NewEvent(mgmtAPI+"get_configuration_response", s("r"), result("r", true, n, cfg(node11(broker.Enum("MANAGER"), broker.Enum("Management::RUNNING"), n)), n, n)), `nodes[0].role: enum "MANAGER"`},
		{"cc42 state spelling", "get_configuration_request", broker.NewEvent(mgmtAPI+"get_configuration_response", s("r"), result("r", true, n, cfg(node11(broker.Enum("Supervisor::MANAGER"), broker.Enum("ClusterController::Types::Running"), n)), n, n)), "nodes[0].state"},
		{"udp port", "get_configuration_request", broker.NewEvent(mgmtAPI+"get_configuration_response", s("r"), result("r", true, n, cfg(node11(broker.Enum("Supervisor::MANAGER"), broker.Enum("Management::RUNNING"), broker.FromPort(broker.Port{Number: 53, Proto: broker.ProtoUDP}))), n, n)), "nodes[0].p: port 53/udp"},
		{"nine-field Node", "get_configuration_request", broker.NewEvent(mgmtAPI+"get_configuration_response", s("r"), result("r", true, n, cfg(broker.Vector(s("m"), s("i1"), n, n, n, n, n, n, n)), n, n)), "Node must have 11 or 10 fields"},
		{"NodeStatus without roles", "get_nodes_request", broker.NewEvent(mgmtAPI+"get_nodes_response", s("r"), broker.Vector(result("a", true, s("i1"), broker.Vector(broker.Vector(s("m"), broker.Enum("Management::RUNNING"))), n, n))), "NodeStatus must have 7 or 6 fields"},
		{"id value not text", "get_id_value_request", broker.NewEvent(mgmtAPI+"get_id_value_response", s("r"), broker.Vector(result("a", true, s("i1"), broker.Count(96), n, s("w")))), "data (JSON text): want string"},
		{"instance host not an address", "get_instances_request", broker.NewEvent(mgmtAPI+"get_instances_response", s("r"), result("r", true, n, broker.Vector(broker.Vector(s("i1"), s("127.0.0.1"), n)), n, n)), "data[0].host: want address"},
		{"extra argument", "restart_request", broker.NewEvent(mgmtAPI+"restart_response", s("r"), broker.Vector(), s("x")), "want 2 arguments"},
	}
	for _, c := range cases {
		problems := mgmtShapeProblems(c.request, "r", c.ev)
		if !strings.Contains(strings.Join(problems, "\n"), c.want) {
			t.Errorf("%s: problems %q, want one containing %q", c.name, problems, c.want)
		}
	}
}
