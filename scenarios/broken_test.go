package scenarios

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// brokenFixtures maps each file in testdata/broken to every error the
// loader must report for it, exactly (file:line:col: path: message), in
// order. The loader collects every problem, not just the first.
var brokenFixtures = map[string][]string{
	"agent-lifecycle.yaml": {
		"agent-lifecycle.yaml:11:11: agents[2].late: a listening agent cannot be late: configurations need its port from the start",
		"agent-lifecycle.yaml:13:11: steps[0].kill: agent \"late\" is not running at this step (it is late and not started yet)",
		"agent-lifecycle.yaml:14:12: steps[1].start: agent \"early\" is already running at this step",
		"agent-lifecycle.yaml:16:14: steps[3].restart: agent \"early\" is not running at this step (it was stopped by steps[2])",
		"agent-lifecycle.yaml:17:16: steps[4].say_hello: agent \"early\" is not running at this step (it was stopped by steps[2])",
		"agent-lifecycle.yaml:18:22: steps[5].expect_received: agent \"late\" has not been started at this step, so it cannot have received anything",
	},
	"agent-names.yaml": {
		"agent-names.yaml:7:11: agents[1].name: agent names \"w\" and \"w1\": one is a prefix of the other, so Broker's prefix subscriptions would deliver one's requests to the other (spec §12.1); rename one",
		"agent-names.yaml:10:14: agents[2].pattern: \"node-%s\": want exactly one integer verb such as %d or %03d",
		"agent-names.yaml:12:11: agents[4].name: \"dup\" is already declared by agents[3].name",
		"agent-names.yaml:13:12: agents[5].count: want 1 to 1000 agents, got 2000",
		"agent-names.yaml:15:11: agents[6].name: \"bad name\": want letters, digits, _ and -, starting with a letter or digit",
	},
	"bad-durations.yaml": {
		"bad-durations.yaml:8:21: agents[0].hello_interval: \"fast\" is not a duration: want an absolute one (50ms, 2s), a timing name (controller_timeout, expiry_sweep, slack, timeout_latest, consistency, response_wait, hello), a multiple of one (0.5x controller_timeout), or a sum of these joined by +",
		"bad-durations.yaml:11:44: agents[0].behaviour.on.set_configuration_request.delay: \"0.5 controller_timeout\" is not a duration: want an absolute one (50ms, 2s), a timing name (controller_timeout, expiry_sweep, slack, timeout_latest, consistency, response_wait, hello), a multiple of one (0.5x controller_timeout), or a sum of these joined by +",
		"bad-durations.yaml:13:12: steps[0].pause: duration \"-1s\" is negative",
		"bad-durations.yaml:14:12: steps[1].pause: \"0x controller_timeout\": the factor must be positive",
		"bad-durations.yaml:15:12: steps[2].pause: \"2x request_timeout\" is not a duration: want an absolute one (50ms, 2s), a timing name (controller_timeout, expiry_sweep, slack, timeout_latest, consistency, response_wait, hello), a multiple of one (0.5x controller_timeout), or a sum of these joined by +",
		"bad-durations.yaml:16:12: steps[3].pause: \"5\" is not a duration: want an absolute one (50ms, 2s), a timing name (controller_timeout, expiry_sweep, slack, timeout_latest, consistency, response_wait, hello), a multiple of one (0.5x controller_timeout), or a sum of these joined by +",
	},
	"bad-rules.yaml": {
		"bad-rules.yaml:11:17: agents[0].behaviour.on.set_configuration_request.node: only action fail takes a node, not \"never\"",
		"bad-rules.yaml:12:9: agents[0].behaviour.on.get_nodes_request: not a request an agent of profile cc42 receives (known: agent_standby_request, agent_welcome_request, set_configuration_request)",
		"bad-rules.yaml:15:15: agents[0].behaviour.on.agent_welcome_request.sequence[0].count: only the last step may handle all remaining messages (count 0); give this step a count",
		"bad-rules.yaml:17:46: agents[0].behaviour.on.agent_standby_request.probability: must be within (0, 1], got 2",
		"bad-rules.yaml:17:57: agents[0].behaviour.on.agent_standby_request.action: unknown value \"explode\" (want reply, fail, fail_no_node, never, twice, stale_reqid, unknown_reqid, other_instance, malformed, wrong_type, close_before, close_after, reset_before, reset_after)",
	},
	"catalogue.yaml": {
		"catalogue.yaml:4:10: covers[0]: \"set-config.one-fail\" is not in the cc42 behaviour catalogue (did you mean \"set-config.one-fails\"?)",
		"catalogue.yaml:4:56: covers[2]: quirk.zero-instances behaves differently per quirk mode: declare quirks: zeek42 or quirks: fixed",
		"catalogue.yaml:4:78: covers[3]: \"get-instances.no-config\" is listed twice",
		"catalogue.yaml:4:103: covers[4]: \"frobnicate\" is not in the cc42 behaviour catalogue (see suites/catalog/behaviors-cc42.md)",
	},
	"empty.yaml": {
		"empty.yaml:1:1: empty file: a scenario needs name, description, profile, covers and steps",
	},
	"expectations.yaml": {
		"expectations.yaml:13:16: steps[0].expect.success: timed_out already says what the response holds; drop success",
		"expectations.yaml:14:14: steps[0].expect.count: timed_out already says what the response holds; drop count",
		"expectations.yaml:17:18: steps[1].expect.timed_out: get_instances is answered at once; it never times out",
		"expectations.yaml:18:14: steps[1].expect.error: timed_out already says what the response holds; drop error",
		"expectations.yaml:19:22: steps[1].expect.error_matches: timed_out already says what the response holds; drop error_matches",
		"expectations.yaml:20:14: steps[1].expect.count: timed_out already says what the response holds; drop count",
		"expectations.yaml:21:16: steps[1].expect.results: timed_out already says what the response holds; drop results",
		"expectations.yaml:22:18: steps[1].expect.responses: must not be negative",
	},
	"impossible-timeouts.yaml": {
		"impossible-timeouts.yaml:6:13: timeouts.response: 0s must be longer than zero",
		"impossible-timeouts.yaml:19:15: steps[0].expect.within: waits 200ms for a timeout Result (200ms in-process), but the controller may send it as late as timeout_latest (375ms): wait at least timeout_latest",
		"impossible-timeouts.yaml:24:7: steps[1].expect: agent slow answers after 150ms (150ms in-process), but the controller gives up after controller_timeout (100ms): its success cannot be seen; make the delay relative, e.g. 0.5x controller_timeout",
		"impossible-timeouts.yaml:31:19: steps[2].expect.not_before: not_before timeout_latest (375ms in-process) leaves no time before within controller_timeout + expiry_sweep (125ms): nothing can arrive in between",
		"impossible-timeouts.yaml:32:15: steps[2].expect.within: waits controller_timeout + expiry_sweep for a timeout Result (125ms in-process), but the controller may send it as late as timeout_latest (375ms): wait at least timeout_latest",
		"impossible-timeouts.yaml:33:12: steps[3].pause: 0ms must be longer than zero",
		"impossible-timeouts.yaml:41:5: steps[7]: the steps since third was sent wait at least 200ms in-process (steps[5] consistency, steps[6] consistency), as long as the controller's request timeout (100ms): it will have timed out; shorten those waits or set timeouts.controller_at_least",
	},
	"ini-errors.yaml": {
		"bad.ini:4:1: node [worker-1] has no role (or type) key",
		"bad.ini:5:1: node [worker-1]: instance \"b\" is not declared in [instances]",
		"bad.ini:7:1: node [worker-1]: unknown key \"intreface\" (known: cpu_affinity, instance, interface, port, role, state, type)",
		"ini-errors.yaml:12:18: steps[1].config_file: cannot read testdata/broken/missing.ini: no such file or directory",
		"ini-errors.yaml:15:18: steps[2].config_file: \"../outside.ini\": give a path inside the scenario's directory",
	},
	"mgmt-expectations.yaml": {
		"mgmt-expectations.yaml:13:18: steps[1].expect.config_of: only get_configuration responses carry a configuration",
		"mgmt-expectations.yaml:14:14: steps[1].expect.ports: only get_configuration responses carry a configuration",
		"mgmt-expectations.yaml:16:32: steps[1].expect.results[0].data: {config:nope}: no request labelled \"nope\" is sent before this step",
		"mgmt-expectations.yaml:17:32: steps[1].expect.results[1].data: {config:deploy}: \"deploy\" is a deploy request, which sends no configuration",
		"mgmt-expectations.yaml:20:18: steps[2].expect.config_of: \"deploy\" is a deploy request, not stage_configuration",
		"mgmt-expectations.yaml:21:24: steps[2].expect.ports.manager: 70000 is not a port (0 means none)",
		"mgmt-expectations.yaml:24:16: steps[3].config_of: \"deploy\" is a deploy request, not stage_configuration",
	},
	"mgmt-profile-mix.yaml": {
		"mgmt-profile-mix.yaml:4:10: covers[0]: \"set-config.all-succeed\" is not in the mgmt behaviour catalogue (see suites/catalog/behaviors-mgmt.md)",
		"mgmt-profile-mix.yaml:9:9: agents[0].behaviour.on.set_configuration_request: not a request an agent of profile mgmt receives (known: agent_standby_request, agent_welcome_request, deploy_request, get_nodes_request, node_dispatch_request, restart_request)",
		"mgmt-profile-mix.yaml:11:50: agents[0].behaviour.on.restart_request.stderr: only action fail takes node outputs (stdout, stderr), not \"never\"",
		"mgmt-profile-mix.yaml:13:11: steps[0].send: scenarios cannot send \"set_configuration\" (profile mgmt: deploy, get_configuration, get_id_value, get_instances, get_nodes, restart, stage_configuration, test_timeout)",
		"mgmt-profile-mix.yaml:16:12: steps[1].event: \"set_configuration_request\" is not an event an agent receives (known: agent_standby_request, agent_welcome_request, deploy_request, get_nodes_request, node_dispatch_request, restart_request)",
	},
	"mgmt-requests.yaml": {
		"mgmt-requests.yaml:8:5: steps[0]: stage_configuration needs a config or a config_file",
		"mgmt-requests.yaml:9:5: steps[1]: get_id_value needs the id of a script identifier",
		"mgmt-requests.yaml:10:23: steps[1].nodes[1]: a node name must not be empty",
		"mgmt-requests.yaml:12:15: steps[2].deployed: only get_configuration takes deployed",
		"mgmt-requests.yaml:13:13: steps[2].config: only stage_configuration takes a configuration",
		"mgmt-requests.yaml:15:12: steps[3].nodes: only get_id_value and restart take nodes",
		"mgmt-requests.yaml:17:9: steps[4].id: only get_id_value takes an id",
		"mgmt-requests.yaml:18:17: steps[4].with_state: only test_timeout takes with_state",
		"mgmt-requests.yaml:21:18: steps[5].expect.timed_out: get_configuration is answered at once; it never times out",
		"mgmt-requests.yaml:22:17: steps[5].expect.in_order: in_order says the results entries come in order: list them",
	},
	"missing-required.yaml": {
		"missing-required.yaml:1:1: missing required key \"description\"",
		"missing-required.yaml:1:1: missing required key \"covers\"",
		"missing-required.yaml:4:5: agents[0]: an agent needs a name (or count, for a group)",
		"missing-required.yaml:5:5: agents[1]: a group needs a name or a pattern",
		"missing-required.yaml:7:5: steps[0]: set_configuration needs a config or a config_file",
		"missing-required.yaml:8:5: steps[1]: missing required key \"event\"",
		"missing-required.yaml:8:22: steps[1].expect_received: no agent or group \"a\" is declared (there are none)",
		"missing-required.yaml:9:5: steps[2].say_hello: needs a value",
	},
	"step-kinds.yaml": {
		"step-kinds.yaml:8:5: steps[0]: a step needs one of the keys send, expect_response, expect_no_response, expect_received, expect_sent, kill, stop, restart, start, pause, say_hello, set_behaviour",
		"step-kinds.yaml:9:5: steps[1]: a step does one thing, but this one has kill and stop: split it into steps",
		"step-kinds.yaml:11:5: steps[2]: a step needs one of the keys send, expect_response, expect_no_response, expect_received, expect_sent, kill, stop, restart, start, pause, say_hello, set_behaviour; did you mean \"send\"?",
		"step-kinds.yaml:13:13: steps[3].config: only set_configuration takes a configuration",
		"step-kinds.yaml:14:17: steps[3].with_state: only test_timeout takes with_state",
		"step-kinds.yaml:15:11: steps[4].send: scenarios cannot send \"deploy\" (profile cc42: get_instances, set_configuration, test_timeout)",
		"step-kinds.yaml:18:18: steps[5].expect.instances: only get_instances responses list instances",
		"step-kinds.yaml:19:20: steps[5].expect.from_agents: only set_configuration responses carry the agents' answers",
	},
	"syntax-error.yaml": {
		"syntax-error.yaml:5:1: YAML syntax: ',' or ']' must be specified",
	},
	"two-documents.yaml": {
		"two-documents.yaml:8:1: a file holds one scenario, but this is a second YAML document",
	},
	"undeclared-references.yaml": {
		"undeclared-references.yaml:10:22: steps[0].expect_response: no request labelled \"deploy\" is sent before this step (no request was sent before this step)",
		"undeclared-references.yaml:14:26: steps[1].config.instances[1]: no agent or group \"beta\" is declared (known: alpha, workers1, workers2, workers3)",
		"undeclared-references.yaml:17:31: steps[1].config.nodes[1].instance: \"gamma\" is not among this configuration's instances (set allow_unknown_instances: true to send it anyway)",
		"undeclared-references.yaml:20:22: steps[1].expect.results[0].instance: no agent \"alfa\" is declared (did you mean \"alpha\"?); use \"\" for a Result of the controller's own",
		"undeclared-references.yaml:21:14: steps[1].expect.error: {reqid:nope}: no request labelled \"nope\" is sent before this step",
		"undeclared-references.yaml:21:14: steps[1].expect.error: {agent:zed}: no agent \"zed\" is declared",
		"undeclared-references.yaml:22:11: steps[2].kill: no agent or group \"beta\" is declared (known: alpha, workers1, workers2, workers3)",
		"undeclared-references.yaml:24:12: steps[3].event: \"set_configuration_reqest\" is not an event an agent receives (did you mean \"set_configuration_request\"?)",
		"undeclared-references.yaml:27:16: steps[4].config_of: only a received set_configuration_request or deploy_request carries a configuration",
		"undeclared-references.yaml:29:15: steps[5].reqid_of: no request labelled \"first\" is sent before this step (known: deploy)",
	},
	"unknown-key.yaml": {
		"unknown-key.yaml:7:5: agents[0].behavior: unknown key in an agent (did you mean \"behaviour\"?)",
		"unknown-key.yaml:13:14: steps[0].expect.sucess: unknown key in an expectation (did you mean \"success\"?)",
	},
	"wrong-types.yaml": {
		"wrong-types.yaml:5:8: fresh: want true or false, got \"yes please\"",
		"wrong-types.yaml:8:12: agents[0].count: want a whole number, got \"three\"",
		"wrong-types.yaml:9:18: agents[0].api_version: must not be negative, got -1",
		"wrong-types.yaml:13:50: agents[1].behaviour.on.set_configuration_request.probability: want a number, got \"high\"",
		"wrong-types.yaml:17:18: steps[0].config.instances: want a list, got \"a\"",
		"wrong-types.yaml:19:14: steps[0].expect.count: want a whole number, got \"3\"",
		"wrong-types.yaml:20:16: steps[0].expect.success: want true or false, got the number 1",
	},
}

func TestBrokenFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/broken/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("want at least 10 broken fixtures, found %d", len(files))
	}
	seen := map[string]bool{}
	for _, f := range files {
		name := filepath.Base(f)
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			want, ok := brokenFixtures[name]
			if !ok {
				t.Fatalf("no expected errors listed for %s", f)
			}
			s, err := LoadFile(f)
			if err == nil {
				t.Fatalf("loaded without error: %+v", s)
			}
			if s != nil {
				t.Errorf("a broken file must not yield a scenario")
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, want ErrorList: %v", err, err)
			}
			var got []string
			for _, e := range list {
				got = append(got, strings.TrimPrefix(e.Error(), "testdata/broken/"))
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("errors differ\ngot:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
			// Every position is a real place in the file.
			src, _ := os.ReadFile(f)
			for _, e := range list {
				if !strings.HasSuffix(e.File, ".yaml") {
					continue // the INI file's own errors
				}
				lines := strings.Split(string(src), "\n")
				if e.Pos.Line < 1 || e.Pos.Line > len(lines) || e.Pos.Col < 1 || e.Pos.Col > len(lines[e.Pos.Line-1])+1 {
					t.Errorf("%v: position outside the file", e)
				}
			}
		})
	}
	var stale []string
	for name := range brokenFixtures {
		if !seen[name] {
			stale = append(stale, name)
		}
	}
	sort.Strings(stale)
	if len(stale) > 0 {
		t.Errorf("expected errors listed for missing fixtures: %v", stale)
	}
}
