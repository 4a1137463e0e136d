package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
	"github.com/zcc-harness/zcc/controller"
)

// `zcc agents` against the in-process reference controller: the fleet
// connects, a targeted --fail shows up in the client's Results as the spec
// words it (§5.7), and the summary and transcripts account for it.
func TestAgentsCommandRunsAFleet(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ctl, err := controller.Start(ctx, controller.Options{Name: "ctl-agents-test", RequestTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	dir := t.TempDir()

	cmdCtx, stopCmd := context.WithCancel(ctx)
	defer stopCmd()
	cmd := newAgentsCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"--controller", ctl.URL(), "--count", "3", "--name", "cli-%02d", "--seed", "5",
		"--fail", "cli-02:worker-2:disk full", "--transcript-dir", dir})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(cmdCtx) }()

	// Wait until the controller has heard every hello.
	for known := 0; known < 3; {
		select {
		case <-ctl.Logs():
			known = len(ctl.Snapshot().Known)
		case err := <-done:
			t.Fatalf("zcc agents ended early: %v\n%s", err, out.String())
		case <-ctx.Done():
			t.Fatalf("agents never checked in: %v", ctl.Snapshot().Known)
		}
	}
	client, err := broker.Dial(ctx, ctl.URL(), []string{api.CC42.ControllerTopic}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	cfg := api.Configuration{ID: "cli"}
	for _, n := range []string{"cli-01", "cli-02", "cli-03"} {
		cfg.Instances = append(cfg.Instances, api.Instance{Name: n, Host: netip.IPv4Unspecified()})
	}
	cfg.Nodes = []api.Node{{Name: "worker-2", Instance: "cli-02", Port: api.Some(broker.TCPPort(5002)), Role: api.ClusterRoleWorker}}
	ev, err := api.CC42.Encode(api.SetConfigurationRequest{Reqid: "R-cli", Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Publish(ctx, api.CC42.ControllerTopic, ev); err != nil {
		t.Fatal(err)
	}
	m, err := client.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rev, _ := m.Event()
	msg, err := api.CC42.Decode(rev)
	if err != nil {
		t.Fatal(err)
	}
	resp := msg.(api.SetConfigurationResponse)
	failed := 0
	for _, r := range resp.Results {
		if r.Instance == "cli-02" {
			if r.Success || r.Error != "node worker-2 failed: disk full" {
				t.Fatalf("cli-02 result = %+v", r)
			}
			failed++
		} else if !r.Success {
			t.Fatalf("unexpected failure %+v", r)
		}
	}
	if len(resp.Results) != 3 || failed != 1 {
		t.Fatalf("results = %+v", resp.Results)
	}

	stopCmd()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("zcc agents: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("zcc agents did not stop on cancel")
	}
	text := out.String()
	for _, want := range []string{"zcc agents: 3 agents cli-01 … cli-03, profile cc42, seed 5",
		"summary after", "agents 3  connected 3  welcomed 3  configs received 3  failures injected 1",
		"transcripts: " + dir + " (3 files)"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	for _, n := range []string{"cli-01", "cli-02", "cli-03"} {
		fh, err := os.Open(filepath.Join(dir, n+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		lines, sawConfig := 0, false
		for sc.Scan() {
			var e map[string]any
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("%s line %d: %v", n, lines+1, err)
			}
			lines++
			if e["event"] == "ClusterAgent::API::set_configuration_request" && e["dir"] == "in" {
				sawConfig = true
				if wantFault := n == "cli-02"; (e["fault"] == true) != wantFault {
					t.Errorf("%s: fault flag %v", n, e["fault"])
				}
			}
		}
		fh.Close()
		if !sawConfig {
			t.Errorf("%s transcript lacks the configuration (%d lines)", n, lines)
		}
	}
}

func TestAgentsCommandUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--count", "0"}, "--count must be at least 1"},
		{[]string{"--fail-rate", "1.5"}, "--fail-rate must be within 0..1"},
		{[]string{"--controller", "nowhere"}, "--controller: controller address \"nowhere\""},
		{[]string{"--count", "3", "--silent", "agent-009"}, "--silent agent-009: no such agent (the fleet is agent-001 … agent-003)"},
		{[]string{"--fail", "agent-001"}, "want AGENT:NODE:ERROR"},
		{[]string{"--on", "set_configuration_request=explode"}, `unknown action "explode"`},
		{[]string{"--on", "deploy_request=fail"}, "not a request an agent of profile cc42 receives"},
		{[]string{"--on", "nothing"}, "want [AGENT:]EVENT=ACTION"},
		{[]string{"--api-version", "agent-001=two"}, `"two" is not a count`},
		{[]string{"--behaviour", `{"on":{"set_configuration_request":{"acton":"fail"}}}`}, `unknown field "acton"`},
		{[]string{"--behaviour", "/no/such/file.json"}, "no such file"},
		{[]string{"--name", "fixed"}, "must hold exactly one integer verb"},
		{[]string{"--hello", "often"}, `hello: "often"`},
		{[]string{"--profile", "zeek9"}, `unknown profile "zeek9"`},
	} {
		var out, errb bytes.Buffer
		code := run(append([]string{"agents"}, tc.args...), &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("zcc agents %q: exit %d, stderr %q; want exit 2 mentioning %q", tc.args, code, errb.String(), tc.want)
		}
	}
}

// The behaviour flags land on the right agents.
func TestAgentsFlagsBuildBehaviours(t *testing.T) {
	s := &agentsSettings{controller: "127.0.0.1:1", count: 10, name: "agent-%03d", firstIndex: 1, profile: "cc42",
		hello: "once", failRate: 0.1, delay: 50 * time.Millisecond, silent: []string{"agent-007,agent-008"},
		fail: []string{"agent-003:worker-1:boom:with colon", "agent-004::nonode"}, apiVersion: []string{"agent-009=2", "0"},
		on: []string{"agent-010:agent_welcome_request=never"}}
	o, err := s.fleetOptions()
	if err != nil {
		t.Fatal(err)
	}
	opts := map[string]struct {
		b string
		v string
	}{}
	for i := 1; i <= 10; i++ {
		name := fmt.Sprintf("agent-%03d", i)
		ao := o.Template
		o.Customize(i, name, &ao)
		j, _ := json.Marshal(ao.Behaviour)
		v := "default"
		if ao.APIVersion != nil {
			v = strconv.FormatUint(*ao.APIVersion, 10)
		}
		opts[name] = struct{ b, v string }{string(j), v}
	}
	base := `{"on":{"*":{"action":"reply","delay":"50ms"},"set_configuration_request":{"action":"fail","delay":"50ms","probability":0.1,"otherwise":{"action":"reply","delay":"50ms"}}}}`
	for name, want := range map[string]string{
		"agent-001": base,
		"agent-003": `{"on":{"*":{"action":"reply","delay":"50ms"},"set_configuration_request":{"action":"fail","node":"worker-1","error":"boom:with colon"}}}`,
		"agent-004": `{"on":{"*":{"action":"reply","delay":"50ms"},"set_configuration_request":{"action":"fail_no_node","error":"nonode"}}}`,
		"agent-007": `{"on":{"*":{"action":"reply","delay":"50ms"},"set_configuration_request":{"action":"never"}}}`,
		"agent-010": `{"on":{"*":{"action":"reply","delay":"50ms"},"agent_welcome_request":{"action":"never"},"set_configuration_request":{"action":"fail","delay":"50ms","probability":0.1,"otherwise":{"action":"reply","delay":"50ms"}}}}`,
	} {
		if opts[name].b != want {
			t.Errorf("%s behaviour:\n got %s\nwant %s", name, opts[name].b, want)
		}
	}
	if opts["agent-009"].v != "2" || opts["agent-001"].v != "0" {
		t.Errorf("api versions: agent-009 %s, agent-001 %s", opts["agent-009"].v, opts["agent-001"].v)
	}
}
