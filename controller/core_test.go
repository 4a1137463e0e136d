package controller

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

const sec = time.Second

var bothModes = []Mode{ModeZeek42, ModeFixed}

func forModes(t *testing.T, modes []Mode, fn func(t *testing.T, mode Mode)) {
	for _, m := range modes {
		t.Run(m.String(), func(t *testing.T) { fn(t, m) })
	}
}

func TestCoreGetInstancesBeforeAnyConfiguration(t *testing.T) {
	forModes(t, bothModes, func(t *testing.T, mode Mode) {
		h := newCoreHarness(t, mode, 10*sec, 10*sec)
		runScript(t, h, []scriptStep{{
			at: 0, in: getInstances("R1"),
			want: want{
				Logs: []string{
					"INFO rx ClusterController::API::set_instances_request R1",
					"INFO tx ClusterController::API::get_instances_response R1",
				},
				Publish: []Outbound{toClient(instancesResult("R1"))},
				Wake:    noWake,
			},
		}})
		// The data must be an empty vector, not none (spec §5.9).
		out := h.step(0, getInstances("R2"))
		data := out.Publish[0].Msg.(api.GetInstancesResponse).Result.Data
		if data.Kind() != broker.KindVector || data.Len() != 0 {
			t.Errorf("get_instances data before any config = %v (kind %v), want an empty vector", data, data.Kind())
		}
	})
}

// happyPath is the §5.14 flow with a connecting agent that said hello
// before the configuration arrived.
func TestCoreHelloThenConfigurationThenResponse(t *testing.T) {
	forModes(t, bothModes, func(t *testing.T, mode Mode) {
		h := newCoreHarness(t, mode, 10*sec, 10*sec)
		cfg := config("cfg1", connecting("a1"))
		runScript(t, h, []scriptStep{
			{at: 0, in: hello("a1", hubPeer(1)), want: want{
				Logs: []string{"INFO rx ClusterAgent::API::notify_agent_hello a1 127.0.0.1"},
				Wake: noWake,
			}},
			{at: 1 * sec, in: setConfig("R1", cfg), want: want{
				Logs: []string{
					"INFO rx ClusterController::API::set_configuration_request R1",
					"INFO tx ClusterAgent::API::agent_welcome_request to a1",
				},
				Publish: []Outbound{toAgent("a1", welcomeReq("id1"))},
				Wake:    20 * sec, // created at 1 s, due at 11 s, first sweep at 20 s
			}},
			{at: 2 * sec, in: welcomeResp("id1", "a1", true), want: want{
				Logs: []string{
					"INFO rx ClusterAgent::API::agent_welcome_response id1",
					"INFO instance a1 ready",
					"INFO rx ClusterController::API:notify_agents_ready a1",
					"INFO tx ClusterAgent::API::set_configuration_request id2 to a1",
				},
				Publish: []Outbound{toAgent("a1", childReq("id2", cfg))},
				Ready:   [][]string{{"a1"}},
				Wake:    20 * sec,
			}},
			{at: 3 * sec, in: agentResp("id2", "a1", true, "", ""), want: want{
				Logs: []string{
					"INFO rx ClusterAgent::API::set_configuration_response id2",
					"INFO tx ClusterController::API::set_configuration_response [request R1 pending, results: success (reqid R1, instance a1)]",
				},
				Publish: []Outbound{toClient(setConfigResp("R1", okResult("R1", "a1")))},
				Wake:    noWake,
			}},
			{at: 4 * sec, in: getInstances("R2"), want: want{
				Logs: []string{
					"INFO rx ClusterController::API::set_instances_request R2",
					"INFO tx ClusterController::API::get_instances_response R2",
				},
				Publish: []Outbound{toClient(instancesResult("R2", connecting("a1")))},
				Wake:    noWake,
			}},
		})
		s := h.c.Snapshot()
		if s.Pending != "" || !reflect.DeepEqual(s.Ready, []string{"a1"}) || !reflect.DeepEqual(s.Known, []string{"a1"}) ||
			s.Current.ID != "cfg1" || len(s.Requests) != 0 || s.Speakers["a1"] != hubPeer(1) {
			t.Errorf("snapshot after success: %+v", s)
		}
	})
}

func TestCoreConfigurationThenHello(t *testing.T) {
	forModes(t, bothModes, func(t *testing.T, mode Mode) {
		h := newCoreHarness(t, mode, 10*sec, 10*sec)
		cfg := config("cfg1", connecting("a1"))
		runScript(t, h, []scriptStep{
			{at: 0, in: setConfig("R1", cfg), want: want{
				Logs: []string{"INFO rx ClusterController::API::set_configuration_request R1"},
				Wake: 10 * sec,
			}},
			{at: 1 * sec, in: hello("a1", hubPeer(1)), want: want{
				Logs: []string{
					"INFO rx ClusterAgent::API::notify_agent_hello a1 127.0.0.1",
					"INFO tx ClusterAgent::API::agent_welcome_request to a1",
				},
				Publish: []Outbound{toAgent("a1", welcomeReq("id1"))},
				Wake:    10 * sec,
			}},
			{at: 2 * sec, in: welcomeResp("id1", "a1", true), want: want{
				Logs: []string{
					"INFO rx ClusterAgent::API::agent_welcome_response id1",
					"INFO instance a1 ready",
					"INFO rx ClusterController::API:notify_agents_ready a1",
					"INFO tx ClusterAgent::API::set_configuration_request id2 to a1",
				},
				Publish: []Outbound{toAgent("a1", childReq("id2", cfg))},
				Ready:   [][]string{{"a1"}},
				Wake:    10 * sec,
			}},
			{at: 3 * sec, in: agentResp("id2", "a1", true, "", ""), want: want{
				Logs: []string{
					"INFO rx ClusterAgent::API::set_configuration_response id2",
					"INFO tx ClusterController::API::set_configuration_response [request R1 pending, results: success (reqid R1, instance a1)]",
				},
				Publish: []Outbound{toClient(setConfigResp("R1", okResult("R1", "a1")))},
				Wake:    noWake,
			}},
			// A hello from a READY instance does nothing (§5.3.7).
			{at: 4 * sec, in: hello("a1", hubPeer(1)), want: want{
				Logs: []string{"INFO rx ClusterAgent::API::notify_agent_hello a1 127.0.0.1"},
				Wake: noWake,
			}},
			// An unchanged configuration fires notify_agents_ready at once
			// (check point (a)) and pushes to every ready agent.
			{at: 5 * sec, in: setConfig("R2", cfg), want: want{
				Logs: []string{
					"INFO rx ClusterController::API::set_configuration_request R2",
					"INFO rx ClusterController::API:notify_agents_ready a1",
					"INFO tx ClusterAgent::API::set_configuration_request id3 to a1",
				},
				Publish: []Outbound{toAgent("a1", childReq("id3", cfg))},
				Ready:   [][]string{{"a1"}},
				Wake:    20 * sec,
			}},
		})
	})
}

func TestCorePendingGate(t *testing.T) {
	forModes(t, bothModes, func(t *testing.T, mode Mode) {
		h := newCoreHarness(t, mode, 10*sec, 10*sec)
		runScript(t, h, []scriptStep{
			{at: 0, in: setConfig("R1", config("c1", connecting("a1"))), want: want{
				Logs: []string{"INFO rx ClusterController::API::set_configuration_request R1"},
				Wake: 10 * sec,
			}},
			{at: 1 * sec, in: setConfig("R2", config("c2", connecting("a2"))), want: want{
				Logs: []string{
					"INFO rx ClusterController::API::set_configuration_request R2",
					"INFO tx ClusterController::API::set_configuration_response [request R2 pending, results: error (request R1 still pending) (reqid R2)]",
				},
				Publish: []Outbound{toClient(setConfigResp("R2", failResult("R2", "", "request R1 still pending")))},
				Wake:    10 * sec,
			}},
			// get_instances is never blocked and shows only R1's instances.
			{at: 2 * sec, in: getInstances("R3"), want: want{
				Logs: []string{
					"INFO rx ClusterController::API::set_instances_request R3",
					"INFO tx ClusterController::API::get_instances_response R3",
				},
				Publish: []Outbound{toClient(instancesResult("R3", connecting("a1")))},
				Wake:    10 * sec,
			}},
		})
		if s := h.c.Snapshot(); s.Pending != "R1" || len(s.Requests) != 1 || s.Requests[0].ID != "R1" || s.Requests[0].Kind != "set_configuration" {
			t.Errorf("snapshot: pending %q, requests %+v", s.Pending, s.Requests)
		}
	})
}

func TestCoreSetConfigurationTimeout(t *testing.T) {
	forModes(t, bothModes, func(t *testing.T, mode Mode) {
		h := newCoreHarness(t, mode, 10*sec, 10*sec)
		runScript(t, h, []scriptStep{
			{at: 3 * sec, in: setConfig("R1", config("c1", connecting("a1"))), want: want{
				Logs: []string{"INFO rx ClusterController::API::set_configuration_request R1"},
				Wake: 20 * sec,
			}},
			{at: 20*sec - time.Millisecond, in: Tick{}, want: want{Wake: 20 * sec}},
			{at: 20 * sec, in: Tick{}, want: want{
				Logs: []string{
					"INFO tx ClusterController::API::set_configuration_response [request R1 pending, results: error (request timed out) (reqid R1)]",
				},
				Publish: []Outbound{toClient(setConfigResp("R1", timedOut("R1")))},
				Wake:    noWake,
			}},
			// After the timeout the next request is accepted.
			{at: 21 * sec, in: setConfig("R2", config("c1", connecting("a1"))), want: want{
				Logs: []string{"INFO rx ClusterController::API::set_configuration_request R2"},
				Wake: 40 * sec,
			}},
		})
		s := h.c.Snapshot()
		if s.Pending != "R2" || len(s.Instances) != 1 || s.Instances[0].Name != "a1" || s.Current.ID != "" {
			t.Errorf("after timeout + new request: pending %q instances %v current %q", s.Pending, s.Instances, s.Current.ID)
		}
	})
}

func TestCoreTestTimeout(t *testing.T) {
	forModes(t, bothModes, func(t *testing.T, mode Mode) {
		h := newCoreHarness(t, mode, 10*sec, 10*sec)
		runScript(t, h, []scriptStep{
			{at: 0, in: testTimeout("R1", false), want: want{
				Logs: []string{"INFO rx ClusterController::API::test_timeout_request R1 F"},
				Wake: noWake,
			}},
			{at: 5 * sec, in: testTimeout("R2", true), want: want{
				Logs: []string{"INFO rx ClusterController::API::test_timeout_request R2 T"},
				Wake: 20 * sec,
			}},
			{at: 20 * sec, in: Tick{}, want: want{
				Logs:    []string{"INFO tx ClusterController::API::test_timeout_response R2"},
				Publish: []Outbound{toClient(api.TestTimeoutResponse{Reqid: "R2", Result: timedOut("R2")})},
				Wake:    noWake,
			}},
			// with_state F never answers.
			{at: 100 * sec, in: Tick{}, want: want{Wake: noWake}},
		})
	})
}

// The timeout lands at the first sweep at or after creation + timeout.
func TestCoreTimeoutWindow(t *testing.T) {
	h := newCoreHarness(t, ModeZeek42, 10*sec, sec)
	runScript(t, h, []scriptStep{
		{at: 500 * time.Millisecond, in: testTimeout("R1", true), want: want{
			Logs: []string{"INFO rx ClusterController::API::test_timeout_request R1 T"},
			Wake: 11 * sec,
		}},
		{at: 10*sec + 999*time.Millisecond, in: Tick{}, want: want{Wake: 11 * sec}},
		{at: 11 * sec, in: Tick{}, want: want{
			Logs:    []string{"INFO tx ClusterController::API::test_timeout_response R1"},
			Publish: []Outbound{toClient(api.TestTimeoutResponse{Reqid: "R1", Result: timedOut("R1")})},
			Wake:    noWake,
		}},
	})
	// Created exactly on a sweep point: expires exactly after the timeout.
	h = newCoreHarness(t, ModeZeek42, 2*sec, sec)
	h.step(3*sec, testTimeout("R2", true))
	if out := h.step(5*sec, Tick{}); len(out.Publish) != 1 {
		t.Errorf("request created on a sweep point did not expire exactly timeout later: %v", describeAll(out.Publish))
	}
	// A late wake-up (several sweep points missed) still expires it once.
	h = newCoreHarness(t, ModeFixed, 2*sec, sec)
	h.step(0, testTimeout("R3", true))
	if out := h.step(60*sec, Tick{}); len(out.Publish) != 1 {
		t.Errorf("late tick: %d responses, want 1", len(out.Publish))
	}
}

func TestCoreHelloWithWrongVersion(t *testing.T) {
	forModes(t, bothModes, func(t *testing.T, mode Mode) {
		h := newCoreHarness(t, mode, 10*sec, 10*sec)
		runScript(t, h, []scriptStep{
			{at: 0, in: hello("a1", hubPeer(1)), want: want{
				Logs: []string{"INFO rx ClusterAgent::API::notify_agent_hello a1 127.0.0.1"},
				Wake: noWake,
			}},
			{at: 1 * sec, in: setConfig("R1", config("c1", connecting("a1"), connecting("a2"))), want: want{
				Logs: []string{
					"INFO rx ClusterController::API::set_configuration_request R1",
					"INFO tx ClusterAgent::API::agent_welcome_request to a1",
				},
				Publish: []Outbound{toAgent("a1", welcomeReq("id1"))},
				Wake:    20 * sec,
			}},
			{at: 2 * sec, in: helloV("a1", hubPeer(1), 2), want: want{
				Logs: []string{
					"INFO rx ClusterAgent::API::notify_agent_hello a1 127.0.0.1",
					"WARNING instance a1/127.0.0.1 has checked in with incompatible API version 2",
					"INFO tx ClusterAgent::API::agent_standby_request to a1",
					"INFO dropped instance a1",
				},
				Publish: []Outbound{toAgent("a1", standbyReq())},
				Wake:    20 * sec,
			}},
			// The outstanding welcome is answered, but a1 is no longer
			// configured: standby, never ready.
			{at: 3 * sec, in: welcomeResp("id1", "a1", true), want: want{
				Logs: []string{
					"INFO rx ClusterAgent::API::agent_welcome_response id1",
					"INFO tx ClusterAgent::API::agent_standby_request to a1",
				},
				Publish: []Outbound{toAgent("a1", standbyReq())},
				Wake:    20 * sec,
			}},
			// An unconfigured instance with the wrong version: only logs.
			{at: 4 * sec, in: helloV("a3", hubPeer(3), 0), want: want{
				Logs: []string{
					"INFO rx ClusterAgent::API::notify_agent_hello a3 127.0.0.1",
					"WARNING instance a3/127.0.0.1 has checked in with incompatible API version 0",
				},
				Wake: 20 * sec,
			}},
		})
		s := h.c.Snapshot()
		if len(s.Known) != 0 || len(s.Ready) != 0 || len(s.Instances) != 1 || s.Instances[0].Name != "a2" {
			t.Errorf("snapshot: known %v ready %v instances %v", s.Known, s.Ready, s.Instances)
		}
	})
}

func TestCoreDuplicateWelcome(t *testing.T) {
	cfg := config("c1", connecting("a1"))
	prefix := []scriptStep{
		{at: 0, in: setConfig("R1", cfg), want: want{
			Logs: []string{"INFO rx ClusterController::API::set_configuration_request R1"},
			Wake: 10 * sec,
		}},
		{at: 1 * sec, in: hello("a1", hubPeer(1)), want: want{
			Logs: []string{
				"INFO rx ClusterAgent::API::notify_agent_hello a1 127.0.0.1",
				"INFO tx ClusterAgent::API::agent_welcome_request to a1",
			},
			Publish: []Outbound{toAgent("a1", welcomeReq("id1"))},
			Wake:    10 * sec,
		}},
		// A duplicate hello before READY: another welcome with a new id.
		{at: 1 * sec, in: hello("a1", hubPeer(1)), want: want{
			Logs: []string{
				"INFO rx ClusterAgent::API::notify_agent_hello a1 127.0.0.1",
				"INFO tx ClusterAgent::API::agent_welcome_request to a1",
			},
			Publish: []Outbound{toAgent("a1", welcomeReq("id2"))},
			Wake:    10 * sec,
		}},
		{at: 2 * sec, in: welcomeResp("id1", "a1", true), want: want{
			Logs: []string{
				"INFO rx ClusterAgent::API::agent_welcome_response id1",
				"INFO instance a1 ready",
				"INFO rx ClusterController::API:notify_agents_ready a1",
				"INFO tx ClusterAgent::API::set_configuration_request id3 to a1",
			},
			Publish: []Outbound{toAgent("a1", childReq("id3", cfg))},
			Ready:   [][]string{{"a1"}},
			Wake:    10 * sec,
		}},
	}
	t.Run("zeek42", func(t *testing.T) {
		h := newCoreHarness(t, ModeZeek42, 10*sec, 10*sec)
		runScript(t, h, append(prefix,
			scriptStep{at: 2 * sec, in: welcomeResp("id2", "a1", true), want: want{
				Logs: []string{
					"INFO rx ClusterAgent::API::agent_welcome_response id2",
					"INFO instance a1 ready",
					"INFO rx ClusterController::API:notify_agents_ready a1",
					"INFO tx ClusterAgent::API::set_configuration_request id4 to a1",
				},
				Publish: []Outbound{toAgent("a1", childReq("id4", cfg))},
				Ready:   [][]string{{"a1"}},
				Wake:    10 * sec,
			}},
			scriptStep{at: 3 * sec, in: agentResp("id3", "a1", true, "", ""), want: want{
				Logs: []string{"INFO rx ClusterAgent::API::set_configuration_response id3"},
				Wake: 10 * sec,
			}},
			scriptStep{at: 3 * sec, in: agentResp("id4", "a1", true, "", ""), want: want{
				Logs: []string{
					"INFO rx ClusterAgent::API::set_configuration_response id4",
					"INFO tx ClusterController::API::set_configuration_response [request R1 pending, results: success (reqid R1, instance a1),success (reqid R1, instance a1)]",
				},
				Publish: []Outbound{toClient(setConfigResp("R1", okResult("R1", "a1"), okResult("R1", "a1")))},
				Wake:    noWake,
			}},
		))
	})
	t.Run("fixed", func(t *testing.T) {
		h := newCoreHarness(t, ModeFixed, 10*sec, 10*sec)
		runScript(t, h, append(prefix,
			scriptStep{at: 2 * sec, in: welcomeResp("id2", "a1", true), want: want{
				Logs: []string{"INFO rx ClusterAgent::API::agent_welcome_response id2"},
				Wake: 10 * sec,
			}},
			scriptStep{at: 3 * sec, in: agentResp("id3", "a1", true, "", ""), want: want{
				Logs: []string{
					"INFO rx ClusterAgent::API::set_configuration_response id3",
					"INFO tx ClusterController::API::set_configuration_response [request R1 pending, results: success (reqid R1, instance a1)]",
				},
				Publish: []Outbound{toClient(setConfigResp("R1", okResult("R1", "a1")))},
				Wake:    noWake,
			}},
		))
	})
}

func TestCoreWelcomeFailureForeignAndUnknown(t *testing.T) {
	forModes(t, bothModes, func(t *testing.T, mode Mode) {
		h := newCoreHarness(t, mode, 10*sec, 10*sec)
		runScript(t, h, []scriptStep{
			{at: 0, in: setConfig("R1", config("c1", connecting("a1"))), want: want{
				Logs: []string{"INFO rx ClusterController::API::set_configuration_request R1"},
				Wake: 10 * sec,
			}},
			{at: 1 * sec, in: hello("a1", hubPeer(1)), want: want{
				Logs: []string{
					"INFO rx ClusterAgent::API::notify_agent_hello a1 127.0.0.1",
					"INFO tx ClusterAgent::API::agent_welcome_request to a1",
				},
				Publish: []Outbound{toAgent("a1", welcomeReq("id1"))},
				Wake:    10 * sec,
			}},
			{at: 2 * sec, in: welcomeResp("id1", "a1", false), want: want{
				Logs: []string{
					"INFO rx ClusterAgent::API::agent_welcome_response id1",
					"INFO tx ClusterAgent::API::agent_standby_request to a1",
				},
				Publish: []Outbound{toAgent("a1", standbyReq())},
				Wake:    10 * sec,
			}},
			{at: 3 * sec, in: hello("a1", hubPeer(1)), want: want{
				Logs: []string{
					"INFO rx ClusterAgent::API::notify_agent_hello a1 127.0.0.1",
					"INFO tx ClusterAgent::API::agent_welcome_request to a1",
				},
				Publish: []Outbound{toAgent("a1", welcomeReq("id2"))},
				Wake:    10 * sec,
			}},
			// A welcome answered in the name of an unconfigured instance:
			// standby goes to the instance the result names.
			{at: 4 * sec, in: welcomeResp("id2", "intruder", true), want: want{
				Logs: []string{
					"INFO rx ClusterAgent::API::agent_welcome_response id2",
					"INFO tx ClusterAgent::API::agent_standby_request to intruder",
				},
				Publish: []Outbound{toAgent("intruder", standbyReq())},
				Wake:    10 * sec,
			}},
			// An unknown id (and the already finished id1) are ignored.
			{at: 5 * sec, in: welcomeResp("nope", "a1", true), want: want{
				Logs: []string{"INFO rx ClusterAgent::API::agent_welcome_response nope"},
				Wake: 10 * sec,
			}},
			{at: 5 * sec, in: welcomeResp("id1", "a1", true), want: want{
				Logs: []string{"INFO rx ClusterAgent::API::agent_welcome_response id1"},
				Wake: 10 * sec,
			}},
		})
		if s := h.c.Snapshot(); len(s.Ready) != 0 {
			t.Errorf("ready = %v, want none", s.Ready)
		}
	})
}

// readyAgents brings instances up (hello from hub peer i+1, config R1,
// welcomes answered) and returns the child ids in send order.
func readyAgents(t *testing.T, h *coreHarness, cfg api.Configuration) []string {
	t.Helper()
	for i, in := range cfg.Instances {
		h.step(0, hello(in.Name, hubPeer(uint64(i+1))))
	}
	out := h.step(1*sec, setConfig("R1", cfg))
	var children []string
	for _, o := range out.Publish {
		w, ok := o.Msg.(api.AgentWelcomeRequest)
		if !ok {
			t.Fatalf("unexpected publish %s", describe(o))
		}
		name := o.Topic[len(agentPrefix):]
		out := h.step(2*sec, welcomeResp(w.Reqid, name, true))
		for _, o := range out.Publish {
			if c, ok := o.Msg.(api.AgentSetConfigurationRequest); ok {
				children = append(children, c.Reqid)
			}
		}
	}
	if len(children) != len(cfg.Instances) {
		t.Fatalf("got %d children, want %d", len(children), len(cfg.Instances))
	}
	return children
}

func TestCoreAggregationInSendOrder(t *testing.T) {
	forModes(t, bothModes, func(t *testing.T, mode Mode) {
		h := newCoreHarness(t, mode, 10*sec, 10*sec)
		ch := readyAgents(t, h, config("c1", connecting("a1"), connecting("a2")))
		if !reflect.DeepEqual(ch, []string{"id3", "id4"}) {
			t.Fatalf("children %v", ch)
		}
		runScript(t, h, []scriptStep{
			{at: 3 * sec, in: agentResp("id4", "a2", true, "", ""), want: want{
				Logs: []string{"INFO rx ClusterAgent::API::set_configuration_response id4"},
				Wake: 20 * sec,
			}},
			// A duplicate answer before the end changes nothing.
			{at: 3 * sec, in: agentResp("id4", "a2", true, "", ""), want: want{
				Logs: []string{"INFO rx ClusterAgent::API::set_configuration_response id4"},
				Wake: 20 * sec,
			}},
			{at: 4 * sec, in: agentResp("id3", "a1", false, "worker-1", "boom"), want: want{
				Logs: []string{
					"INFO rx ClusterAgent::API::set_configuration_response id3",
					"INFO tx ClusterController::API::set_configuration_response [request R1 pending, results: error (node worker-1 failed: boom) (reqid R1, instance a1),success (reqid R1, instance a2)]",
				},
				Publish: []Outbound{toClient(setConfigResp("R1",
					failResult("R1", "a1", "node worker-1 failed: boom"), okResult("R1", "a2")))},
				Wake: noWake,
			}},
			// Late and stale answers are ignored.
			{at: 5 * sec, in: agentResp("id3", "a1", true, "", ""), want: want{
				Logs: []string{"INFO rx ClusterAgent::API::set_configuration_response id3"},
				Wake: noWake,
			}},
			{at: 5 * sec, in: agentResp("bogus", "a1", true, "", ""), want: want{
				Logs: []string{"INFO rx ClusterAgent::API::set_configuration_response bogus"},
				Wake: noWake,
			}},
		})
	})
}

func TestCoreLateAnswerAfterTimeoutIgnored(t *testing.T) {
	forModes(t, bothModes, func(t *testing.T, mode Mode) {
		// A 1 s sweep lets the parent (created at 1 s) expire before its
		// child (created at 2 s).
		h := newCoreHarness(t, mode, 10*sec, sec)
		readyAgents(t, h, config("c1", connecting("a1")))
		runScript(t, h, []scriptStep{
			{at: 11 * sec, in: Tick{}, want: want{
				Logs: []string{
					"INFO tx ClusterController::API::set_configuration_response [request R1 pending, results: error (request timed out) (reqid R1)]",
				},
				Publish: []Outbound{toClient(setConfigResp("R1", timedOut("R1")))},
				Wake:    12 * sec,
			}},
			// The child is still known, its parent is gone: ignored.
			{at: 11*sec + 500*time.Millisecond, in: agentResp("id2", "a1", true, "", ""), want: want{
				Logs: []string{"INFO rx ClusterAgent::API::set_configuration_response id2"},
				Wake: 12 * sec,
			}},
			{at: 12 * sec, in: Tick{}, want: want{Wake: noWake}},
		})
		if s := h.c.Snapshot(); s.Current.ID != "" || s.Pending != "" {
			t.Errorf("after timeout: current %q pending %q", s.Current.ID, s.Pending)
		}
	})
}

func TestCoreDropAndAddKnown(t *testing.T) {
	forModes(t, bothModes, func(t *testing.T, mode Mode) {
		h := newCoreHarness(t, mode, 10*sec, 10*sec)
		ch := readyAgents(t, h, config("c1", connecting("a1"), connecting("a2")))
		h.step(3*sec, agentResp(ch[0], "a1", true, "", ""))
		h.step(3*sec, agentResp(ch[1], "a2", true, "", ""))
		h.step(3*sec, hello("a3", hubPeer(3))) // known, not configured
		cfg2 := config("c2", connecting("a1"), connecting("a3"))
		runScript(t, h, []scriptStep{
			{at: 4 * sec, in: setConfig("R2", cfg2), want: want{
				Logs: []string{
					"INFO rx ClusterController::API::set_configuration_request R2",
					"INFO tx ClusterAgent::API::agent_standby_request to a2",
					"INFO dropped instance a2",
					"INFO tx ClusterAgent::API::agent_welcome_request to a3",
				},
				Publish: []Outbound{toAgent("a2", standbyReq()), toAgent("a3", welcomeReq("id5"))},
				Wake:    20 * sec,
			}},
			{at: 5 * sec, in: welcomeResp("id5", "a3", true), want: want{
				Logs: []string{
					"INFO rx ClusterAgent::API::agent_welcome_response id5",
					"INFO instance a3 ready",
					"INFO rx ClusterController::API:notify_agents_ready a1,a3",
					"INFO tx ClusterAgent::API::set_configuration_request id6 to a1",
					"INFO tx ClusterAgent::API::set_configuration_request id7 to a3",
				},
				Publish: []Outbound{toAgent("a1", childReq("id6", cfg2)), toAgent("a3", childReq("id7", cfg2))},
				Ready:   [][]string{{"a1", "a3"}},
				Wake:    20 * sec,
			}},
		})
		// get_instances follows the accepted configuration: a2 is gone.
		out := h.step(6*sec, getInstances("R3"))
		check(t, "get_instances after drop", out, want{
			Logs: []string{
				"INFO rx ClusterController::API::set_instances_request R3",
				"INFO tx ClusterController::API::get_instances_response R3",
			},
			Publish: []Outbound{toClient(instancesResult("R3", connecting("a1"), connecting("a3")))},
			Wake:    20 * sec,
		})
		s := h.c.Snapshot()
		if !reflect.DeepEqual(s.Known, []string{"a1", "a2", "a3"}) || !reflect.DeepEqual(s.Ready, []string{"a1", "a3"}) {
			t.Errorf("known %v ready %v", s.Known, s.Ready)
		}
	})
}

func TestCoreConnectivityChange(t *testing.T) {
	cfg1 := config("c1", listening("a1", 2151))
	cfg2 := config("c2", listening("a1", 2152))
	prefix := []scriptStep{
		{at: 0, in: setConfig("R1", cfg1), want: want{
			Logs:  []string{"INFO rx ClusterController::API::set_configuration_request R1"},
			Dials: []DialRequest{{Instance: "a1", Host: localhost, Port: broker.TCPPort(2151)}},
			Wake:  10 * sec,
		}},
		{at: 1 * sec, in: hello("a1", Peer{Kind: PeerDialed, ID: 1}), want: want{
			Logs: []string{
				"INFO rx ClusterAgent::API::notify_agent_hello a1 127.0.0.1",
				"INFO tx ClusterAgent::API::agent_welcome_request to a1",
			},
			Publish: []Outbound{toAgent("a1", welcomeReq("id1"))},
			Wake:    10 * sec,
		}},
		{at: 2 * sec, in: welcomeResp("id1", "a1", true), want: want{
			Logs: []string{
				"INFO rx ClusterAgent::API::agent_welcome_response id1",
				"INFO instance a1 ready",
				"INFO rx ClusterController::API:notify_agents_ready a1",
				"INFO tx ClusterAgent::API::set_configuration_request id2 to a1",
			},
			Publish: []Outbound{toAgent("a1", childReq("id2", cfg1))},
			Ready:   [][]string{{"a1"}},
			Wake:    10 * sec,
		}},
		{at: 3 * sec, in: agentResp("id2", "a1", true, "", ""), want: want{
			Logs: []string{
				"INFO rx ClusterAgent::API::set_configuration_response id2",
				"INFO tx ClusterController::API::set_configuration_response [request R1 pending, results: success (reqid R1, instance a1)]",
			},
			Publish: []Outbound{toClient(setConfigResp("R1", okResult("R1", "a1")))},
			Wake:    noWake,
		}},
	}
	t.Run("zeek42", func(t *testing.T) {
		h := newCoreHarness(t, ModeZeek42, 10*sec, 10*sec)
		runScript(t, h, append(prefix,
			scriptStep{at: 4 * sec, in: setConfig("R2", cfg2), want: want{
				Logs: []string{
					"INFO rx ClusterController::API::set_configuration_request R2",
					"INFO tx ClusterAgent::API::agent_standby_request to a1",
					"INFO dropped instance a1",
					// Nothing configured any more equals nothing ready.
					"INFO rx ClusterController::API:notify_agents_ready ",
				},
				Publish: []Outbound{toAgent("a1", standbyReq())},
				Ready:   [][]string{{}},
				Wake:    20 * sec,
			}},
			scriptStep{at: 20 * sec, in: Tick{}, want: want{
				Logs: []string{
					"INFO tx ClusterController::API::set_configuration_response [request R2 pending, results: error (request timed out) (reqid R2)]",
				},
				Publish: []Outbound{toClient(setConfigResp("R2", timedOut("R2")))},
				Wake:    noWake,
			}},
		))
		if s := h.c.Snapshot(); len(s.Instances) != 0 {
			t.Errorf("instances %v, want none (dropped, never re-added)", s.Instances)
		}
	})
	t.Run("fixed", func(t *testing.T) {
		h := newCoreHarness(t, ModeFixed, 10*sec, 10*sec)
		runScript(t, h, append(prefix,
			scriptStep{at: 4 * sec, in: setConfig("R2", cfg2), want: want{
				Logs: []string{
					"INFO rx ClusterController::API::set_configuration_request R2",
					"INFO tx ClusterAgent::API::agent_standby_request to a1",
					"INFO dropped instance a1",
					"INFO tx ClusterAgent::API::agent_welcome_request to a1",
				},
				Publish: []Outbound{toAgent("a1", standbyReq()), toAgent("a1", welcomeReq("id3"))},
				Dials:   []DialRequest{{Instance: "a1", Host: localhost, Port: broker.TCPPort(2152)}},
				Wake:    20 * sec,
			}},
			scriptStep{at: 5 * sec, in: welcomeResp("id3", "a1", true), want: want{
				Logs: []string{
					"INFO rx ClusterAgent::API::agent_welcome_response id3",
					"INFO instance a1 ready",
					"INFO rx ClusterController::API:notify_agents_ready a1",
					"INFO tx ClusterAgent::API::set_configuration_request id4 to a1",
				},
				Publish: []Outbound{toAgent("a1", childReq("id4", cfg2))},
				Ready:   [][]string{{"a1"}},
				Wake:    20 * sec,
			}},
		))
	})
	// A connecting agent may change host to 0.0.0.0 without a change.
	forModes(t, bothModes, func(t *testing.T, mode Mode) {
		h := newCoreHarness(t, mode, 10*sec, 10*sec)
		withHost := api.Instance{Name: "a1", Host: localhost}
		h.step(0, setConfig("R1", config("c1", withHost)))
		h.step(10*sec, Tick{})
		out := h.step(11*sec, setConfig("R2", config("c2", connecting("a1"))))
		for _, l := range out.Logs {
			if l.Msg == "dropped instance a1" {
				t.Errorf("0.0.0.0 host counted as a connectivity change")
			}
		}
	})
}

func TestCoreZeroInstances(t *testing.T) {
	empty := api.Configuration{ID: "empty"}
	t.Run("zeek42", func(t *testing.T) {
		h := newCoreHarness(t, ModeZeek42, 10*sec, 10*sec)
		runScript(t, h, []scriptStep{
			{at: 0, in: setConfig("R1", empty), want: want{
				Logs: []string{
					"INFO rx ClusterController::API::set_configuration_request R1",
					"INFO rx ClusterController::API:notify_agents_ready ",
				},
				Ready: [][]string{{}},
				Wake:  10 * sec,
			}},
			{at: 10 * sec, in: Tick{}, want: want{
				Logs: []string{
					"INFO tx ClusterController::API::set_configuration_response [request R1 pending, results: error (request timed out) (reqid R1)]",
				},
				Publish: []Outbound{toClient(setConfigResp("R1", timedOut("R1")))},
				Wake:    noWake,
			}},
		})
	})
	t.Run("fixed", func(t *testing.T) {
		h := newCoreHarness(t, ModeFixed, 10*sec, 10*sec)
		runScript(t, h, []scriptStep{
			{at: 0, in: setConfig("R1", empty), want: want{
				Logs: []string{
					"INFO rx ClusterController::API::set_configuration_request R1",
					"INFO rx ClusterController::API:notify_agents_ready ",
					"INFO tx ClusterController::API::set_configuration_response [request R1 pending, results: ]",
				},
				Publish: []Outbound{toClient(setConfigResp("R1"))},
				Ready:   [][]string{{}},
				Wake:    noWake,
			}},
		})
		if s := h.c.Snapshot(); s.Current.ID != "empty" || s.Pending != "" {
			t.Errorf("current %q pending %q", s.Current.ID, s.Pending)
		}
	})
}

func TestCoreFailureWithoutNode(t *testing.T) {
	t.Run("zeek42 single agent", func(t *testing.T) {
		h := newCoreHarness(t, ModeZeek42, 10*sec, 10*sec)
		readyAgents(t, h, config("c1", connecting("a1")))
		runScript(t, h, []scriptStep{
			{at: 3 * sec, in: agentResp("id2", "a1", false, "", "boom"), want: want{
				Logs: []string{"INFO rx ClusterAgent::API::set_configuration_response id2"},
				Wake: 20 * sec,
			}},
			{at: 20 * sec, in: Tick{}, want: want{
				Logs: []string{
					"INFO tx ClusterController::API::set_configuration_response [request R1 pending, results: error (request timed out) (reqid R1)]",
				},
				Publish: []Outbound{toClient(setConfigResp("R1", timedOut("R1")))},
				Wake:    noWake,
			}},
		})
	})
	// Zeek appends each child's Result and finishes it before reading the
	// next one's node, so Results before the failing child survive the
	// abort and precede the timeout Result.
	t.Run("zeek42 second of two agents", func(t *testing.T) {
		h := newCoreHarness(t, ModeZeek42, 10*sec, 10*sec)
		readyAgents(t, h, config("c1", connecting("a1"), connecting("a2")))
		h.step(3*sec, agentResp("id3", "a1", true, "", ""))
		runScript(t, h, []scriptStep{
			{at: 3 * sec, in: agentResp("id4", "a2", false, "", "boom"), want: want{
				Logs: []string{"INFO rx ClusterAgent::API::set_configuration_response id4"},
				Wake: 20 * sec,
			}},
			{at: 20 * sec, in: Tick{}, want: want{
				Logs: []string{
					"INFO tx ClusterController::API::set_configuration_response [request R1 pending, results: success (reqid R1, instance a1),error (request timed out) (reqid R1)]",
				},
				Publish: []Outbound{toClient(setConfigResp("R1", okResult("R1", "a1"), timedOut("R1")))},
				Wake:    noWake,
			}},
		})
	})
	t.Run("fixed", func(t *testing.T) {
		h := newCoreHarness(t, ModeFixed, 10*sec, 10*sec)
		readyAgents(t, h, config("c1", connecting("a1")))
		runScript(t, h, []scriptStep{
			{at: 3 * sec, in: agentResp("id2", "a1", false, "", "boom"), want: want{
				Logs: []string{
					"INFO rx ClusterAgent::API::set_configuration_response id2",
					"INFO tx ClusterController::API::set_configuration_response [request R1 pending, results: error (node ? failed: boom) (reqid R1, instance a1)]",
				},
				Publish: []Outbound{toClient(setConfigResp("R1", failResult("R1", "a1", "node ? failed: boom")))},
				Wake:    noWake,
			}},
		})
	})
}

func TestCoreDuplicateReqid(t *testing.T) {
	cfg := config("c1", connecting("a1"))
	reject := scriptStep{at: 1 * sec, in: setConfig("R1", cfg), want: want{
		Logs: []string{
			"INFO rx ClusterController::API::set_configuration_request R1",
			"INFO tx ClusterController::API::set_configuration_response [request R1 pending, results: error (request R1 still pending) (reqid R1)]",
		},
		Publish: []Outbound{toClient(setConfigResp("R1", failResult("R1", "", "request R1 still pending")))},
	}}
	accept := scriptStep{at: 0, in: setConfig("R1", cfg), want: want{
		Logs: []string{"INFO rx ClusterController::API::set_configuration_request R1"},
		Wake: 10 * sec,
	}}
	t.Run("zeek42", func(t *testing.T) {
		h := newCoreHarness(t, ModeZeek42, 10*sec, 10*sec)
		r := reject
		r.want.Wake = noWake // the shared state is gone
		runScript(t, h, []scriptStep{accept, r,
			{at: 30 * sec, in: Tick{}, want: want{Wake: noWake}},
			{at: 31 * sec, in: setConfig("R2", cfg), want: want{
				Logs: []string{
					"INFO rx ClusterController::API::set_configuration_request R2",
					"INFO tx ClusterController::API::set_configuration_response [request R2 pending, results: error (request R1 still pending) (reqid R2)]",
				},
				Publish: []Outbound{toClient(setConfigResp("R2", failResult("R2", "", "request R1 still pending")))},
				Wake:    noWake,
			}},
		})
		if s := h.c.Snapshot(); s.Pending != "R1" || len(s.Requests) != 0 {
			t.Errorf("deadlock state: pending %q requests %v", s.Pending, s.Requests)
		}
	})
	t.Run("fixed", func(t *testing.T) {
		h := newCoreHarness(t, ModeFixed, 10*sec, 10*sec)
		r := reject
		r.want.Wake = 10 * sec
		runScript(t, h, []scriptStep{accept, r,
			{at: 10 * sec, in: Tick{}, want: want{
				Logs: []string{
					"INFO tx ClusterController::API::set_configuration_response [request R1 pending, results: error (request timed out) (reqid R1)]",
				},
				Publish: []Outbound{toClient(setConfigResp("R1", timedOut("R1")))},
				Wake:    noWake,
			}},
			{at: 11 * sec, in: setConfig("R2", cfg), want: want{
				Logs: []string{"INFO rx ClusterController::API::set_configuration_request R2"},
				Wake: 30 * sec,
			}},
		})
	})
}

// test_timeout reusing the pending set_configuration's reqid replaces its
// state in Zeek (§5.13); the fixed mode keeps both.
func TestCoreTestTimeoutReusingPendingReqid(t *testing.T) {
	cfg := config("c1", connecting("a1"))
	t.Run("zeek42", func(t *testing.T) {
		h := newCoreHarness(t, ModeZeek42, 10*sec, 10*sec)
		h.step(0, setConfig("R1", cfg))
		h.step(1*sec, testTimeout("R1", true))
		runScript(t, h, []scriptStep{
			// The overwrite kept the creation time of the original entry.
			{at: 10 * sec, in: Tick{}, want: want{
				Logs:    []string{"INFO tx ClusterController::API::test_timeout_response R1"},
				Publish: []Outbound{toClient(api.TestTimeoutResponse{Reqid: "R1", Result: timedOut("R1")})},
				Wake:    noWake,
			}},
		})
		if s := h.c.Snapshot(); s.Pending != "R1" {
			t.Errorf("pending %q, want the stuck R1", s.Pending)
		}
	})
	t.Run("fixed", func(t *testing.T) {
		h := newCoreHarness(t, ModeFixed, 10*sec, 10*sec)
		h.step(0, setConfig("R1", cfg))
		h.step(1*sec, testTimeout("R1", true))
		h.step(2*sec, testTimeout("R1", true)) // reused again: both answered
		runScript(t, h, []scriptStep{
			{at: 10 * sec, in: Tick{}, want: want{
				Logs: []string{
					"INFO tx ClusterController::API::set_configuration_response [request R1 pending, results: error (request timed out) (reqid R1)]",
				},
				Publish: []Outbound{toClient(setConfigResp("R1", timedOut("R1")))},
				Wake:    20 * sec,
			}},
			{at: 20 * sec, in: Tick{}, want: want{
				Logs: []string{
					"INFO tx ClusterController::API::test_timeout_response R1",
					"INFO tx ClusterController::API::test_timeout_response R1",
				},
				Publish: []Outbound{
					toClient(api.TestTimeoutResponse{Reqid: "R1", Result: timedOut("R1")}),
					toClient(api.TestTimeoutResponse{Reqid: "R1", Result: timedOut("R1")}),
				},
				Wake: noWake,
			}},
		})
	})
}

func TestCoreOverwriteKeepsCreationTime(t *testing.T) {
	h := newCoreHarness(t, ModeZeek42, 10*sec, sec)
	runScript(t, h, []scriptStep{
		{at: 500 * time.Millisecond, in: testTimeout("R1", true), want: want{
			Logs: []string{"INFO rx ClusterController::API::test_timeout_request R1 T"},
			Wake: 11 * sec,
		}},
		{at: 5 * sec, in: testTimeout("R1", true), want: want{
			Logs: []string{"INFO rx ClusterController::API::test_timeout_request R1 T"},
			Wake: 11 * sec,
		}},
		{at: 11 * sec, in: Tick{}, want: want{
			Logs:    []string{"INFO tx ClusterController::API::test_timeout_response R1"},
			Publish: []Outbound{toClient(api.TestTimeoutResponse{Reqid: "R1", Result: timedOut("R1")})},
			Wake:    noWake,
		}},
	})
}

func TestCorePeerLoss(t *testing.T) {
	cfg := config("c1", connecting("a1"), connecting("a2"))
	t.Run("zeek42", func(t *testing.T) {
		h := newCoreHarness(t, ModeZeek42, 10*sec, 10*sec)
		readyAgents(t, h, cfg)
		runScript(t, h, []scriptStep{
			{at: 3 * sec, in: PeerLost{Peer: hubPeer(2)}, want: want{Wake: 20 * sec}},
			{at: 4 * sec, in: agentResp("id3", "a1", true, "", ""), want: want{
				Logs: []string{"INFO rx ClusterAgent::API::set_configuration_response id3"},
				Wake: 20 * sec,
			}},
			{at: 20 * sec, in: Tick{}, want: want{
				Logs: []string{
					"INFO tx ClusterController::API::set_configuration_response [request R1 pending, results: error (request timed out) (reqid R1)]",
				},
				Publish: []Outbound{toClient(setConfigResp("R1", timedOut("R1")))},
				Wake:    noWake,
			}},
		})
		if s := h.c.Snapshot(); !reflect.DeepEqual(s.Ready, []string{"a1", "a2"}) {
			t.Errorf("ready %v: a vanished agent stays ready in zeek42", s.Ready)
		}
	})
	t.Run("fixed", func(t *testing.T) {
		h := newCoreHarness(t, ModeFixed, 10*sec, 10*sec)
		readyAgents(t, h, cfg)
		runScript(t, h, []scriptStep{
			{at: 3 * sec, in: PeerLost{Peer: hubPeer(2)}, want: want{
				Logs: []string{"INFO instance a2 disconnected (hub peer 2)"},
				Wake: 20 * sec,
			}},
			{at: 4 * sec, in: agentResp("id3", "a1", true, "", ""), want: want{
				Logs: []string{
					"INFO rx ClusterAgent::API::set_configuration_response id3",
					"INFO tx ClusterController::API::set_configuration_response [request R1 pending, results: success (reqid R1, instance a1),error (agent a2 disconnected) (reqid R1, instance a2)]",
				},
				Publish: []Outbound{toClient(setConfigResp("R1", okResult("R1", "a1"), failResult("R1", "a2", "agent a2 disconnected")))},
				Wake:    noWake,
			}},
			// An unknown peer going away changes nothing.
			{at: 5 * sec, in: PeerLost{Peer: hubPeer(9)}, want: want{Wake: noWake}},
		})
		s := h.c.Snapshot()
		if !reflect.DeepEqual(s.Ready, []string{"a1"}) || !reflect.DeepEqual(s.Known, []string{"a1"}) {
			t.Errorf("ready %v known %v after loss of a2", s.Ready, s.Known)
		}
	})
	t.Run("fixed, last answer outstanding", func(t *testing.T) {
		h := newCoreHarness(t, ModeFixed, 10*sec, 10*sec)
		readyAgents(t, h, cfg)
		h.step(3*sec, agentResp("id3", "a1", true, "", ""))
		runScript(t, h, []scriptStep{
			{at: 4 * sec, in: PeerLost{Peer: hubPeer(2)}, want: want{
				Logs: []string{
					"INFO instance a2 disconnected (hub peer 2)",
					"INFO tx ClusterController::API::set_configuration_response [request R1 pending, results: success (reqid R1, instance a1),error (agent a2 disconnected) (reqid R1, instance a2)]",
				},
				Publish: []Outbound{toClient(setConfigResp("R1", okResult("R1", "a1"), failResult("R1", "a2", "agent a2 disconnected")))},
				Wake:    noWake,
			}},
			// The agent comes back: it is welcomed again.
			{at: 5 * sec, in: hello("a2", hubPeer(7)), want: want{
				Logs: []string{
					"INFO rx ClusterAgent::API::notify_agent_hello a2 127.0.0.1",
					"INFO tx ClusterAgent::API::agent_welcome_request to a2",
				},
				Publish: []Outbound{toAgent("a2", welcomeReq("id5"))},
				Wake:    20 * sec,
			}},
		})
	})
}

// check_instances_ready runs only at the end of an accepted
// set_configuration and after a welcome marks an instance ready (§5.5):
// a drop by a wrong-version hello that leaves ready == configured does not
// fire notify_agents_ready.
func TestCoreReadyCheckOnlyAtTheTwoPoints(t *testing.T) {
	forModes(t, bothModes, func(t *testing.T, mode Mode) {
		h := newCoreHarness(t, mode, 10*sec, 10*sec)
		h.step(0, hello("a1", hubPeer(1)))
		h.step(0, hello("a2", hubPeer(2)))
		// No validation: a node on an undeclared instance is accepted.
		cfg := config("c1", connecting("a1"), connecting("a2"))
		cfg.Nodes = append(cfg.Nodes, api.Node{Name: "ghost-1", Instance: "ghost", Port: api.Some(broker.TCPPort(6000)), Role: api.ClusterRoleProxy})
		out := h.step(1*sec, setConfig("R1", cfg))
		if len(out.Publish) != 2 {
			t.Fatalf("want two welcomes, got %s", describeAll(out.Publish))
		}
		out = h.step(2*sec, welcomeResp("id1", "a1", true))
		check(t, "a1 ready, a2 not", out, want{
			Logs: []string{"INFO rx ClusterAgent::API::agent_welcome_response id1", "INFO instance a1 ready"},
			Wake: 20 * sec,
		})
		out = h.step(3*sec, helloV("a2", hubPeer(2), 3))
		check(t, "a2 dropped by version", out, want{
			Logs: []string{
				"INFO rx ClusterAgent::API::notify_agent_hello a2 127.0.0.1",
				"WARNING instance a2/127.0.0.1 has checked in with incompatible API version 3",
				"INFO tx ClusterAgent::API::agent_standby_request to a2",
				"INFO dropped instance a2",
			},
			Publish: []Outbound{toAgent("a2", standbyReq())},
			Wake:    20 * sec,
		})
		if s := h.c.Snapshot(); !reflect.DeepEqual(s.Ready, []string{"a1"}) || len(s.Instances) != 1 {
			t.Errorf("ready %v instances %v: ready == configured, yet nothing may fire", s.Ready, s.Instances)
		}
	})
}

func TestCoreUndecodable(t *testing.T) {
	forModes(t, bothModes, func(t *testing.T, mode Mode) {
		h := newCoreHarness(t, mode, 10*sec, 10*sec)
		err := errors.New("get_instances_request: want 1 arguments (reqid), got 2")
		runScript(t, h, []scriptStep{
			{at: 0, in: Undecodable{Topic: controllerTopic, From: hubPeer(3), Err: err}, want: want{
				Logs: []string{"WARNING dropped event from hub peer 3 on topic zeek/cluster-control/controller: get_instances_request: want 1 arguments (reqid), got 2"},
				Errors: []ErrorReply{{To: hubPeer(3), Code: "deserialization_failed",
					Context: "failed to create Zeek event: get_instances_request: want 1 arguments (reqid), got 2"}},
				Wake: noWake,
			}},
		})
	})
}

func TestCoreIgnoredEvents(t *testing.T) {
	forModes(t, bothModes, func(t *testing.T, mode Mode) {
		h := newCoreHarness(t, mode, 10*sec, 10*sec)
		from := hubPeer(1)
		runScript(t, h, []scriptStep{
			{at: 0, in: Receive{Topic: agentPrefix + "a1", From: from, Msg: api.NotifyError{Instance: "a1", Msg: "disk full", Node: "worker-1"}}, want: want{
				Debug: []string{`notify_error from a1: disk full (node "worker-1") — ignored, as in Zeek`},
				Wake:  noWake,
			}},
			{at: 0, in: Receive{Topic: agentPrefix + "a1", From: from, Msg: api.NotifyLog{Instance: "a1", Msg: "hi"}}, want: want{
				Debug: []string{`notify_log from a1: hi (node "") — ignored, as in Zeek`},
				Wake:  noWake,
			}},
			{at: 0, in: Receive{Topic: agentPrefix + "a1", From: from, Msg: api.NotifyChange{Instance: "a1", Node: api.Node{Name: "w1"}, Old: api.StateRunning, New: api.StateFailed}}, want: want{
				Debug: []string{"notify_change from a1: node w1 RUNNING -> FAILED — ignored, as in Zeek"},
				Wake:  noWake,
			}},
			// Known events without a handler: nothing at all.
			{at: 0, in: Receive{Topic: agentPrefix + "a1", From: from, Msg: api.AgentStandbyResponse{Reqid: "", Result: api.Result{Instance: "a1", Success: true}}}, want: want{
				Debug: []string{}, Wake: noWake,
			}},
			{at: 0, in: Receive{Topic: controllerTopic, From: from, Msg: api.GetInstancesResponse{Reqid: "x"}}, want: want{
				Debug: []string{}, Wake: noWake,
			}},
		})
	})
}

// An agent answer naming a welcome id: Zeek's handler aborts reading the
// unset parent_id, and the welcome still works afterwards.
func TestCoreAgentAnswerWithWelcomeID(t *testing.T) {
	forModes(t, bothModes, func(t *testing.T, mode Mode) {
		h := newCoreHarness(t, mode, 10*sec, 10*sec)
		h.step(0, setConfig("R1", config("c1", connecting("a1"))))
		h.step(0, hello("a1", hubPeer(1)))
		out := h.step(1*sec, agentResp("id1", "a1", true, "", ""))
		check(t, "answer with welcome id", out, want{
			Logs: []string{"INFO rx ClusterAgent::API::set_configuration_response id1"},
			Wake: 10 * sec,
		})
		out = h.step(2*sec, welcomeResp("id1", "a1", true))
		if len(out.AgentsReady) != 1 || len(out.Publish) != 1 {
			t.Errorf("welcome after the bogus answer: ready %v publish %s", out.AgentsReady, describeAll(out.Publish))
		}
	})
}

func TestCoreConfigValidation(t *testing.T) {
	id := func() string { return "x" }
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{NewID: id, RequestTimeout: -1}, "request timeout"},
		{Config{NewID: id, SweepInterval: -1}, "sweep interval"},
		{Config{}, "NewID"},
		{Config{NewID: id, Mode: 7}, "unknown mode"},
		{Config{NewID: id, Mgmt: MgmtConfig{Restore: &StoredConfigs{}}}, "Restore needs the mgmt profile"},
		{Config{NewID: id, Profile: api.Mgmt, Mgmt: MgmtConfig{BrokerPeerIDs: []string{"x"}}}, "BrokerPeerIDs needs Identity IdentityBrokerID"},
		{Config{NewID: id, Profile: api.Mgmt, Mgmt: MgmtConfig{Identity: 7}}, "unknown agent identity 7"},
	}
	for _, c := range cases {
		_, err := NewCore(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewCore(%+v) error %v, want one mentioning %q", c.cfg, err, c.want)
		}
	}
}

func TestModeAndQuirkTable(t *testing.T) {
	for _, q := range Quirks {
		if !ModeZeek42.Has(q.Quirk) || ModeFixed.Has(q.Quirk) {
			t.Errorf("%s: zeek42 must reproduce it and fixed must not", q.ID)
		}
	}
	ids := map[string]bool{}
	for _, q := range Quirks {
		ids[q.ID] = true
	}
	for _, id := range []string{"quirk.zero-instances", "quirk.duplicate-welcome", "quirk.connectivity-change",
		"quirk.failure-without-node", "quirk.duplicate-reqid", "quirk.peer-loss"} {
		if !ids[id] {
			t.Errorf("quirk table lacks %s", id)
		}
	}
	for _, s := range []string{"zeek42", "fixed"} {
		m, err := ParseMode(s)
		if err != nil || m.String() != s {
			t.Errorf("ParseMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParseMode("zeek"); err == nil || !strings.Contains(err.Error(), "zeek42 or fixed") {
		t.Errorf("ParseMode(zeek) error %v", err)
	}
	if md := QuirkTableMarkdown(); !strings.Contains(md, "| quirk.peer-loss |") {
		t.Errorf("markdown table:\n%s", md)
	}
}
