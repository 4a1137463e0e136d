package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
	"github.com/zcc-harness/zcc/client"
	"github.com/zcc-harness/zcc/controller"
)

func TestControllerOptionsFromEnvironmentAndFlags(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		args    []string
		addr    string
		node    string
		timeout time.Duration
		sweep   time.Duration
		mode    controller.Mode
		err     string
	}{
		{name: "defaults", addr: "127.0.0.1:2150"},
		{name: "zeek env", env: map[string]string{
			"ZEEK_CONTROLLER_NAME": "ctl", "ZEEK_CONTROLLER_ADDR": "0.0.0.0", "ZEEK_CONTROLLER_PORT": "2160/tcp",
			"ZCC_REQUEST_TIMEOUT": "1s", "ZCC_SWEEP_INTERVAL": "200ms",
		}, addr: "0.0.0.0:2160", node: "ctl", timeout: time.Second, sweep: 200 * time.Millisecond},
		{name: "bare port number", env: map[string]string{"ZEEK_CONTROLLER_PORT": "2170"}, addr: "127.0.0.1:2170"},
		{name: "default listen address", env: map[string]string{"ZEEK_DEFAULT_LISTEN_ADDRESS": "::1"}, addr: "[::1]:2150"},
		{name: "flags win over env", env: map[string]string{"ZEEK_CONTROLLER_PORT": "2160/tcp", "ZCC_REQUEST_TIMEOUT": "1s"},
			args: []string{"--port", "0", "--addr", "127.0.0.1", "--request-timeout", "2s", "--mode", "fixed", "--name", "n1"},
			addr: "127.0.0.1:0", node: "n1", timeout: 2 * time.Second, mode: controller.ModeFixed},
		{name: "udp port", env: map[string]string{"ZEEK_CONTROLLER_PORT": "2150/udp"}, err: "ZEEK_CONTROLLER_PORT: port \"2150/udp\": the controller listens on TCP"},
		{name: "junk port", args: []string{"--port", "http"}, err: "--port: port \"http\": want a number from 0 to 65535"},
		{name: "port out of range", env: map[string]string{"ZEEK_CONTROLLER_PORT": "70000/tcp"}, err: "want a number from 0 to 65535"},
		{name: "bad timeout env", env: map[string]string{"ZCC_SWEEP_INTERVAL": "ten"}, err: `ZCC_SWEEP_INTERVAL="ten": want a duration`},
		{name: "negative timeout flag", args: []string{"--request-timeout", "-1s"}, err: "--request-timeout -1s: must be positive"},
		{name: "bad mode", args: []string{"--mode", "zeek41"}, err: `--mode: unknown controller mode "zeek41"`},
		{name: "bad profile", args: []string{"--profile", "nope"}, err: `--profile: unknown profile "nope"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd, settings := controllerCommand()
			if err := cmd.Flags().Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			opts, err := controllerOptions(cmd, settings, lookup)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if opts.ListenAddr != tc.addr || opts.Name != tc.node || opts.RequestTimeout != tc.timeout ||
				opts.SweepInterval != tc.sweep || opts.Mode != tc.mode || opts.Profile != api.CC42 {
				t.Errorf("options %+v", opts)
			}
		})
	}
}

// TestControllerCommandServes runs `zcc controller` in-process on port 0,
// talks to it, and stops it by cancelling its context (what SIGINT does).
func TestControllerCommandServes(t *testing.T) {
	t.Setenv("ZEEK_CONTROLLER_ADDR", "127.0.0.1")
	t.Setenv("ZEEK_CONTROLLER_PORT", "0/tcp")
	t.Setenv("ZEEK_CONTROLLER_NAME", "ctl-cli")
	t.Setenv("ZCC_REQUEST_TIMEOUT", "50ms")
	t.Setenv("ZCC_SWEEP_INTERVAL", "10ms")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()

	logR, logW := io.Pipe()
	root := newRootCmd(io.Discard, logW)
	root.SetArgs([]string{"controller", "--log-format", "json", "--mode", "fixed"})
	done := make(chan error, 1)
	go func() {
		done <- root.ExecuteContext(runCtx)
		_ = logW.Close()
	}()

	records := make(chan map[string]any, 64)
	go func() {
		defer close(records)
		sc := bufio.NewScanner(logR)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil {
				select {
				case records <- rec:
				default: // nobody needs the rest; keep the pipe drained
				}
			}
		}
	}()
	var url string
	for url == "" {
		select {
		case rec, ok := <-records:
			if !ok {
				t.Fatalf("command ended before it was live: %v", <-done)
			}
			if rec["msg"] == "controller is live" {
				url, _ = rec["url"].(string)
				if rec["node"] != "ctl-cli" || rec["mode"] != "fixed" || rec["role"] != "CONTROLLER" {
					t.Errorf("ready line %v", rec)
				}
			}
		case <-ctx.Done():
			t.Fatal("no ready line")
		}
	}
	if !strings.HasPrefix(url, "ws://127.0.0.1:") || strings.HasSuffix(url, ":0/v1/messages/json") {
		t.Fatalf("ready line url %q", url)
	}

	conn, err := broker.Dial(ctx, url, []string{"zeek/cluster-control/controller"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ev, err := api.CC42.Encode(api.TestTimeoutRequest{Reqid: "T1", WithState: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Publish(ctx, "zeek/cluster-control/controller", ev); err != nil {
		t.Fatal(err)
	}
	msg, err := conn.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := msg.Event()
	if err != nil {
		t.Fatal(err)
	}
	m, err := api.CC42.Decode(got)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := m.(api.TestTimeoutResponse); !ok || r.Reqid != "T1" || r.Result.Error != "request timed out" {
		t.Errorf("response %+v, want T1 timed out (ZCC_REQUEST_TIMEOUT applied)", m)
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("command returned %v after cancellation", err)
		}
	case <-ctx.Done():
		t.Fatal("command did not stop after cancellation")
	}
	for rec := range records {
		if rec["msg"] == "controller stopped" {
			if rec["node"] != "ctl-cli" {
				t.Errorf("stop line %v", rec)
			}
			return
		}
	}
	t.Error("no \"controller stopped\" line")
}

func TestControllerMgmtOptions(t *testing.T) {
	cases := []struct {
		name       string
		env        map[string]string
		args       []string
		addr       string
		brokerPort string
		stateDir   string
		noBroker   bool
		noMetrics  bool
		ping       time.Duration
		err        string
	}{
		{name: "defaults", addr: "127.0.0.1:2149", brokerPort: "2150/tcp", ping: 5 * time.Second},
		{name: "zeek env, /tcp ports", env: map[string]string{
			"ZEEK_CONTROLLER_WEBSOCKET_ADDR": "127.0.0.2", "ZEEK_CONTROLLER_WEBSOCKET_PORT": "2148/tcp",
			"ZEEK_CONTROLLER_PORT": "2160/tcp", "ZEEK_MANAGEMENT_STATE_DIR": "/tmp/st",
			// cc42's listen address does not apply to the WebSocket listener.
			"ZEEK_CONTROLLER_ADDR": "10.0.0.1",
		}, addr: "127.0.0.2:2148", brokerPort: "2160/tcp", stateDir: "/tmp/st", ping: 5 * time.Second},
		{name: "bare numbers", env: map[string]string{"ZEEK_CONTROLLER_WEBSOCKET_PORT": "2148", "ZEEK_CONTROLLER_PORT": "2161"},
			addr: "127.0.0.1:2148", brokerPort: "2161/tcp", ping: 5 * time.Second},
		{name: "default listen address", env: map[string]string{"ZEEK_DEFAULT_LISTEN_ADDRESS": "::1"}, addr: "[::1]:2149", brokerPort: "2150/tcp", ping: 5 * time.Second},
		{name: "flags", env: map[string]string{"ZEEK_MANAGEMENT_STATE_DIR": "/tmp/env"},
			args: []string{"--port", "0", "--broker-port", "2170/tcp", "--state-dir", "/tmp/flag", "--auto-assign-broker-ports=false",
				"--auto-assign-metrics-ports=false", "--ping-interval", "0"},
			addr: "127.0.0.1:0", brokerPort: "2170/tcp", stateDir: "/tmp/flag", noBroker: true, noMetrics: true},
		{name: "bad websocket port", env: map[string]string{"ZEEK_CONTROLLER_WEBSOCKET_PORT": "2149/udp"}, err: "ZEEK_CONTROLLER_WEBSOCKET_PORT: port \"2149/udp\""},
		{name: "bad broker port", args: []string{"--broker-port", "x"}, err: "--broker-port: port \"x\""},
		{name: "negative ping", args: []string{"--ping-interval", "-1s"}, err: "--ping-interval -1s: must not be negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd, settings := controllerCommand()
			if err := cmd.Flags().Parse(append([]string{"--profile", "mgmt"}, tc.args...)); err != nil {
				t.Fatal(err)
			}
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			opts, err := controllerOptions(cmd, settings, lookup)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if opts.Profile != api.Mgmt || opts.ListenAddr != tc.addr || opts.Mgmt.BrokerPort.String() != tc.brokerPort ||
				opts.StateDir != tc.stateDir || opts.Mgmt.NoBrokerPortAutoAssign != tc.noBroker ||
				opts.Mgmt.NoMetricsPortAutoAssign != tc.noMetrics || opts.Hub.PingInterval != tc.ping {
				t.Errorf("options %+v", opts)
			}
		})
	}
	// The Management-only flags are refused under cc42.
	for _, flag := range []string{"--state-dir=/tmp/x", "--broker-port=2150", "--auto-assign-broker-ports=false"} {
		cmd, settings := controllerCommand()
		if err := cmd.Flags().Parse([]string{flag}); err != nil {
			t.Fatal(err)
		}
		_, err := controllerOptions(cmd, settings, func(string) (string, bool) { return "", false })
		if err == nil || !strings.Contains(err.Error(), "only the mgmt profile has it") {
			t.Errorf("%s under cc42: error %v", flag, err)
		}
	}
}

// TestControllerCommandMgmtStateDir runs `zcc controller --profile mgmt
// --state-dir` twice: what the first run staged and deployed, the second
// run still has.
func TestControllerCommandMgmtStateDir(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ZEEK_CONTROLLER_WEBSOCKET_ADDR", "127.0.0.1")
	t.Setenv("ZEEK_CONTROLLER_WEBSOCKET_PORT", "0/tcp")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := api.Configuration{ID: "cfg-cli"}
	for run := 0; run < 2; run++ {
		url, stop := startControllerCommand(t, ctx, "--profile", "mgmt", "--state-dir", dir)
		cl, err := client.Dial(ctx, url, client.Options{Profile: api.Mgmt})
		if err != nil {
			t.Fatal(err)
		}
		if run == 0 {
			if rs, err := cl.StageConfiguration(ctx, cfg); err != nil || len(rs) != 1 || !rs[0].Success {
				t.Fatalf("stage: %+v %v", rs, err)
			}
			// An empty configuration deploys at once.
			if rs, err := cl.Deploy(ctx); err != nil || len(rs) != 1 || !rs[0].Success {
				t.Fatalf("deploy: %+v %v", rs, err)
			}
		}
		for _, deployed := range []bool{false, true} {
			res, err := cl.GetConfiguration(ctx, deployed)
			if err != nil || !res.Success {
				t.Fatalf("run %d get_configuration(deployed=%v): %+v %v", run, deployed, res, err)
			}
			got, err := api.Mgmt.DecodeConfiguration(res.Data)
			if err != nil || got.ID != "cfg-cli" {
				t.Errorf("run %d get_configuration(deployed=%v) = %+v %v", run, deployed, got, err)
			}
		}
		_ = cl.Close()
		stop()
	}
}

// startControllerCommand runs `zcc controller ARGS` in-process and returns
// its URL (from the "controller is live" log line) and a stop function
// that cancels it and waits for it to end.
func startControllerCommand(t *testing.T, ctx context.Context, args ...string) (string, func()) {
	t.Helper()
	runCtx, cancel := context.WithCancel(ctx)
	logR, logW := io.Pipe()
	root := newRootCmd(io.Discard, logW)
	root.SetArgs(append([]string{"controller", "--log-format", "json"}, args...))
	done := make(chan error, 1)
	go func() {
		done <- root.ExecuteContext(runCtx)
		_ = logW.Close()
	}()
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(logR)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == "controller is live" {
				u, _ := rec["url"].(string)
				urls <- u
			}
		}
	}()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("zcc controller %v: %v", args, err)
			}
		case <-ctx.Done():
			t.Fatalf("zcc controller %v did not stop", args)
		}
	}
	select {
	case u := <-urls:
		return u, stop
	case err := <-done:
		cancel()
		t.Fatalf("zcc controller %v ended before it was live: %v", args, err)
	case <-ctx.Done():
		cancel()
		t.Fatalf("zcc controller %v: no ready line", args)
	}
	return "", nil
}

func TestControllerCommandRejectsBadSettings(t *testing.T) {
	t.Setenv("ZEEK_CONTROLLER_PORT", "2150/udp")
	var out, errb strings.Builder
	if code := run([]string{"controller"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "ZEEK_CONTROLLER_PORT") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
	t.Setenv("ZEEK_CONTROLLER_PORT", "0")
	errb.Reset()
	if code := run([]string{"controller", "--log-format", "xml"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--log-format \"xml\"") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}
