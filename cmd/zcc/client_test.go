package main

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
	"github.com/zcc-harness/zcc/client"
)

const clientTestWait = 5 * time.Second

// fakeController answers `zcc client` requests from a script, in-process.
type fakeController struct {
	t      *testing.T
	srv    *broker.Server
	hub    *broker.Hub
	local  *broker.Local
	got    chan api.Message
	peers  chan broker.PeerID
	answer func(api.Message) []api.Message
}

func newFakeController(t *testing.T, answer func(api.Message) []api.Message) *fakeController {
	t.Helper()
	f := &fakeController{t: t, got: make(chan api.Message, 16), peers: make(chan broker.PeerID, 16), answer: answer}
	f.hub = broker.NewHub(broker.HubOptions{})
	f.hub.OnPeer(func(ev broker.PeerEvent) {
		if ev.Connected {
			f.peers <- ev.ID
		}
	})
	f.local = f.hub.Subscribe([]string{api.CC42.ControllerTopic}, func(d broker.Delivery) {
		ev, err := broker.EventFromValue(d.Data)
		if err != nil {
			return
		}
		m, err := api.CC42.Decode(ev)
		if err != nil {
			return
		}
		f.got <- m
		if f.answer == nil {
			return
		}
		for _, resp := range f.answer(m) {
			f.publish(resp)
		}
	})
	srv, err := broker.Serve(context.Background(), "127.0.0.1:0", f.hub)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	t.Cleanup(func() { srv.Close() })
	return f
}

func (f *fakeController) publish(m api.Message) {
	ev, err := api.CC42.Encode(m)
	if err != nil {
		f.t.Error(err)
		return
	}
	if err := f.local.PublishEvent(api.CC42.ControllerTopic, ev); err != nil {
		f.t.Error(err)
	}
}

// addr is the HOST:PORT form zeek-client users type.
func (f *fakeController) addr() string { return f.srv.Addr().String() }

func (f *fakeController) request() api.Message {
	f.t.Helper()
	select {
	case m := <-f.got:
		return m
	case <-time.After(clientTestWait):
		f.t.Fatal("the controller received no request")
		return nil
	}
}

type cliResult struct {
	stdout, stderr string
	code           int
}

func runCLI(args ...string) cliResult {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return cliResult{out.String(), errb.String(), code}
}

func (r cliResult) check(t *testing.T, code int, stdout, stderr string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d (stderr %q)", r.code, code, r.stderr)
	}
	if r.stdout != stdout {
		t.Errorf("stdout\n got: %q\nwant: %q", r.stdout, stdout)
	}
	if r.stderr != stderr {
		t.Errorf("stderr\n got: %q\nwant: %q", r.stderr, stderr)
	}
}

func instancesData(t *testing.T, instances ...api.Instance) broker.Value {
	t.Helper()
	v, err := api.CC42.InstancesValue(instances)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestClientGetInstances(t *testing.T) {
	var data broker.Value
	f := newFakeController(t, func(m api.Message) []api.Message {
		r := m.(api.GetInstancesRequest)
		return []api.Message{api.GetInstancesResponse{Reqid: r.Reqid, Result: api.Result{Reqid: r.Reqid, Success: true, Data: data}}}
	})
	data = instancesData(t,
		api.Instance{Name: "instance-2", Host: netip.IPv4Unspecified()},
		api.Instance{Name: "instance-1", Host: netip.MustParseAddr("127.0.0.1"), ListenPort: api.Some(broker.TCPPort(2151))},
	)
	runCLI("client", "--controller", f.addr(), "get-instances").check(t, 0, `[
  {
    "addr": "127.0.0.1",
    "name": "instance-1",
    "port": "2151/tcp"
  },
  {
    "addr": "0.0.0.0",
    "name": "instance-2",
    "port": null
  }
]
`, "")
	m := f.request().(api.GetInstancesRequest)
	if len(m.Reqid) != 36 || m.Reqid[14] != '1' {
		t.Errorf("reqid %q is not a uuid1 string", m.Reqid)
	}

	// No configuration yet: an empty vector, printed as an empty array.
	data = instancesData(t)
	runCLI("client", "--controller", "ws://"+f.addr(), "get-instances", "--reqid", "R").check(t, 0, "[]\n", "")
	if m := f.request(); !reflect.DeepEqual(m, api.GetInstancesRequest{Reqid: "R"}) {
		t.Errorf("request %#v", m)
	}
}

func TestClientGetInstancesFailures(t *testing.T) {
	var result api.Result
	f := newFakeController(t, func(m api.Message) []api.Message {
		r := m.(api.GetInstancesRequest)
		result.Reqid = r.Reqid
		return []api.Message{api.GetInstancesResponse{Reqid: r.Reqid, Result: result}}
	})
	for _, tc := range []struct {
		result api.Result
		stderr string
	}{
		{api.Result{Error: "boom"}, "failure: boom\n"},
		{api.Result{}, "failure: no reason given\n"},
		{api.Result{Success: true}, "the result carries no instance data\n"},
		{api.Result{Success: true, Data: broker.Vector(broker.String("x"))},
			"malformed instance data: Instance 0: want vector (record Instance), got string\n"},
	} {
		result = tc.result
		runCLI("client", "--controller", f.addr(), "get-instances").check(t, 1, "", tc.stderr)
		f.request()
	}
}

const goodINI = `[instances]
instance-1 = 127.0.0.1:2151
instance-2

[manager]
instance = instance-1
role = manager
port = 5000

[worker-01]
instance = instance-2
type = worker
port = 5001
interface = eth0
`

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestClientSetConfig(t *testing.T) {
	var results []api.Result
	f := newFakeController(t, func(m api.Message) []api.Message {
		r := m.(api.SetConfigurationRequest)
		return []api.Message{api.SetConfigurationResponse{Reqid: r.Reqid, Results: results}}
	})
	path := writeFile(t, "cluster.ini", goodINI)

	results = []api.Result{{Reqid: "R", Instance: "instance-1", Success: true}}
	runCLI("client", "--controller", f.addr(), "--reqid", "R", "set-config", path).check(t, 0, `[
  {
    "data": null,
    "error": "",
    "instance": "instance-1",
    "node": null,
    "reqid": "R",
    "success": true
  }
]
`, "")
	got := f.request().(api.SetConfigurationRequest)
	want := api.Configuration{
		ID: got.Config.ID,
		Instances: []api.Instance{
			{Name: "instance-1", Host: netip.MustParseAddr("127.0.0.1"), ListenPort: api.Some(broker.TCPPort(2151))},
			{Name: "instance-2", Host: netip.IPv4Unspecified()},
		},
		Nodes: []api.Node{
			{Name: "manager", Instance: "instance-1", Port: api.Some(broker.TCPPort(5000)), Role: api.ClusterRoleManager, State: api.StateRunning, Env: map[string]string{}},
			{Name: "worker-01", Instance: "instance-2", Port: api.Some(broker.TCPPort(5001)), Role: api.ClusterRoleWorker, State: api.StateRunning, Interface: api.Some("eth0"), Env: map[string]string{}},
		},
	}
	if got.Reqid != "R" || !got.Config.Equal(want) || len(got.Config.ID) != 36 {
		t.Errorf("controller got %#v", got)
	}

	// Failures: zeek-client's lines on stderr, every Result on stdout.
	results = []api.Result{
		{Reqid: "R", Instance: "instance-1", Success: true},
		{Reqid: "R", Instance: "instance-2", Error: "node worker-01 failed: boom", Node: api.Some("worker-01")},
		{Reqid: "R", Error: "request timed out"},
		{Reqid: "R", Instance: "instance-3"},
	}
	r := runCLI("client", "--controller", f.addr(), "--reqid", "R", "set-config", path)
	r.check(t, 1, r.stdout, "instance instance-2 failure: node worker-01 failed: boom\ninstance  failure: request timed out\ninstance instance-3 failure\n")
	if !strings.Contains(r.stdout, `"node": "worker-01"`) || strings.Count(r.stdout, `"reqid": "R"`) != 4 {
		t.Errorf("stdout lacks the Results:\n%s", r.stdout)
	}
	f.request()
}

func TestClientSetConfigFromStdin(t *testing.T) {
	f := newFakeController(t, func(m api.Message) []api.Message {
		r := m.(api.SetConfigurationRequest)
		return []api.Message{api.SetConfigurationResponse{Reqid: r.Reqid, Results: []api.Result{{Reqid: r.Reqid, Instance: "i", Success: true}}}}
	})
	stdin, err := os.Open(writeFile(t, "stdin.ini", "[instances]\ni\n"))
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	saved := os.Stdin
	os.Stdin = stdin
	defer func() { os.Stdin = saved }()
	r := runCLI("client", "--controller", f.addr(), "set-config", "-")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	got := f.request().(api.SetConfigurationRequest)
	if len(got.Config.Instances) != 1 || got.Config.Instances[0].Name != "i" || len(got.Config.Nodes) != 0 {
		t.Errorf("controller got %#v", got.Config)
	}

	// A broken file on stdin is named <stdin> and nothing is sent.
	bad, err := os.Open(writeFile(t, "bad.ini", "[instances]\ni = nohost:1\n"))
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	os.Stdin = bad
	runCLI("client", "--controller", f.addr(), "set-config", "-").check(t, 2, "",
		"<stdin>:2: instance \"i\": host \"nohost\" is not an IP address (zeek-client takes addresses, not names)\n")
}

func TestClientSetConfigBadFileSendsNothing(t *testing.T) {
	f := newFakeController(t, nil)
	path := writeFile(t, "bad.ini", "[instances]\ni\n[w]\ninstance = i\nrole = boss\n")
	runCLI("client", "--controller", f.addr(), "set-config", path).check(t, 2, "",
		path+":3: node [w] has no port key (the cc42 Node record requires a port)\n"+
			path+":5: node [w]: role \"boss\" is not one of manager, logger, proxy, worker, none\n")
	missing := filepath.Join(t.TempDir(), "missing.ini")
	runCLI("client", "--controller", f.addr(), "set-config", missing).check(t, 2, "",
		"zcc: client set-config: open "+missing+": no such file or directory\n")
	if n := f.hub.Stats().Accepted; n != 0 {
		t.Errorf("%d connections were made for a broken file", n)
	}
}

func TestClientTestTimeout(t *testing.T) {
	f := newFakeController(t, func(m api.Message) []api.Message {
		r := m.(api.TestTimeoutRequest)
		if !r.WithState {
			return nil // as a conforming controller: never answer
		}
		return []api.Message{api.TestTimeoutResponse{Reqid: r.Reqid, Result: api.Result{Reqid: r.Reqid, Error: "request timed out"}}}
	})
	runCLI("client", "--controller", f.addr(), "--reqid", "T", "test-timeout", "--with-state").check(t, 0, `{
  "data": null,
  "error": "request timed out",
  "instance": "",
  "node": null,
  "reqid": "T",
  "success": false
}
`, "response is failure, error string: request timed out\n")
	if m := f.request(); !reflect.DeepEqual(m, api.TestTimeoutRequest{Reqid: "T", WithState: true}) {
		t.Errorf("request %#v", m)
	}

	runCLI("client", "--controller", f.addr(), "--reqid", "T", "--timeout", "200ms", "test-timeout").check(t, 1, "",
		"no response received: no test_timeout_response for reqid \"T\" within 200ms\n")
	if m := f.request(); !reflect.DeepEqual(m, api.TestTimeoutRequest{Reqid: "T"}) {
		t.Errorf("request %#v", m)
	}
}

func TestClientMonitor(t *testing.T) {
	f := newFakeController(t, nil)
	data := instancesData(t, api.Instance{Name: "i<1>", Host: netip.MustParseAddr("10.0.0.1"), ListenPort: api.Some(broker.TCPPort(2151))})
	go func() {
		select {
		case <-f.peers:
		case <-time.After(clientTestWait):
			return
		}
		f.publish(api.GetInstancesRequest{Reqid: "other-client"})
		f.publish(api.GetInstancesResponse{Reqid: "other-client", Result: api.Result{Reqid: "other-client", Success: true, Data: data}})
		f.local.PublishEvent(api.CC42.ControllerTopic, broker.NewEvent("Foo::bar", broker.Count(7), broker.StringTable(map[string]string{"k": "v"})))
		f.local.Publish(api.CC42.ControllerTopic+"/sub", broker.Set(broker.Enum("Supervisor::WORKER"), broker.Real(1.5)))
	}()
	runCLI("client", "--controller", f.addr(), "monitor", "--count", "4").check(t, 0,
		`{"args":["other-client"],"event":"ClusterController::API::get_instances_request","topic":"zeek/cluster-control/controller","type":"event"}
{"args":["other-client",["other-client","",true,[["i<1>","10.0.0.1","2151/tcp"]],"",null]],"event":"ClusterController::API::get_instances_response","topic":"zeek/cluster-control/controller","type":"event"}
{"args":[7,{"k":"v"}],"event":"Foo::bar","topic":"zeek/cluster-control/controller","type":"event"}
{"data":[1.5,"Supervisor::WORKER"],"topic":"zeek/cluster-control/controller/sub","type":"data"}
`, "")
}

func TestClientMonitorErrorFramesAndLostConnection(t *testing.T) {
	f := newFakeController(t, nil)
	go func() {
		var id broker.PeerID
		select {
		case id = <-f.peers:
		case <-time.After(clientTestWait):
			return
		}
		f.hub.SendError(id, broker.CodeDeserializationFailed, "failed to create Zeek event: <test>")
	}()
	runCLI("client", "--controller", f.addr(), "monitor", "--count", "1").check(t, 0,
		`{"code":"deserialization_failed","context":"failed to create Zeek event: <test>","type":"error"}`+"\n", "")

	// The hub does not flush queued frames when it closes, so close it
	// only once the CLI has printed the message.
	out := &notifyWriter{wrote: make(chan struct{})}
	go func() {
		select {
		case <-f.peers:
		case <-time.After(clientTestWait):
			return
		}
		f.publish(api.GetInstancesRequest{Reqid: "last"})
		select {
		case <-out.wrote:
		case <-time.After(clientTestWait):
		}
		f.srv.Close()
	}()
	var errb bytes.Buffer
	code := run([]string{"client", "--controller", f.addr(), "monitor"}, out, &errb)
	r := cliResult{out.String(), errb.String(), code}
	if r.code != 1 || !strings.HasPrefix(r.stderr, "connection to the controller lost: ") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if want := `{"args":["last"],"event":"ClusterController::API::get_instances_request","topic":"zeek/cluster-control/controller","type":"event"}` + "\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
}

func TestMonitorPrinterInvalidFrame(t *testing.T) {
	var out bytes.Buffer
	p := &monitorPrinter{w: &out, enough: make(chan struct{})}
	p.message(client.Received{Raw: []byte(`{"type":"data-message"`), Err: errTest("undecodable frame: unexpected end")})
	if want := `{"error":"undecodable frame: unexpected end","raw":"{\"type\":\"data-message\"","type":"invalid"}` + "\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

// notifyWriter is a goroutine-safe buffer that signals its first write.
type notifyWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	once  sync.Once
	wrote chan struct{}
}

func (w *notifyWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	defer w.once.Do(func() { close(w.wrote) })
	return w.buf.Write(b)
}

func (w *notifyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

type errTest string

func (e errTest) Error() string { return string(e) }

func TestClientConnectionRefused(t *testing.T) {
	f := newFakeController(t, nil)
	addr := f.addr()
	f.srv.Close()
	r := runCLI("client", "--controller", addr, "--connect-attempts", "2", "get-instances")
	want := "connect to controller: dial ws://" + addr + "/v1/messages/json: dial tcp " + addr + ": connect: connection refused\n"
	r.check(t, 1, "", want)
}

func TestClientUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"client"}, "zcc: client: missing command (get-instances, set-config, test-timeout or monitor; see zcc client --help)\n"},
		{[]string{"client", "frobnicate"}, "zcc: client: unknown command \"frobnicate\" (see zcc client --help)\n"},
		{[]string{"client", "set-config"}, "zcc: client set-config: want exactly one FILE argument, or - for standard input\n"},
		{[]string{"client", "set-config", "a", "b"}, "zcc: client set-config: want exactly one FILE argument, or - for standard input\n"},
		{[]string{"client", "get-instances", "extra"}, "zcc: unknown command \"extra\" for \"zcc client get-instances\"\n"},
		{[]string{"client", "--profile", "zeek9", "get-instances"}, "zcc: client: --profile: unknown profile \"zeek9\" (known: " + strings.Join(api.ProfileNames(), ", ") + ")\n"},
		{[]string{"client", "--timeout", "0s", "get-instances"}, "zcc: client: --timeout must be positive, got 0s\n"},
		{[]string{"client", "--timeout", "soon", "get-instances"}, "zcc: invalid argument \"soon\" for \"--timeout\" flag: time: invalid duration \"soon\"\n"},
		{[]string{"client", "--connect-attempts", "0", "get-instances"}, "zcc: client: --connect-attempts must be at least 1, got 0\n"},
		{[]string{"client", "--controller", "::1:2150", "get-instances"}, "zcc: client: --controller: controller address \"::1:2150\": write an IPv6 address in brackets, [ADDR]:PORT\n"},
		{[]string{"client", "monitor", "--count", "-1"}, "zcc: client monitor: --count must not be negative, got -1\n"},
		{[]string{"client", "test-timeout", "--with-sate"}, "zcc: unknown flag: --with-sate\n"},
	} {
		r := runCLI(tc.args...)
		if r.code != 2 || r.stderr != tc.stderr || r.stdout != "" {
			t.Errorf("%v: exit %d\nstderr %q\n  want %q\nstdout %q", tc.args, r.code, r.stderr, tc.stderr, r.stdout)
		}
	}
}

func TestClientHelpNamesOutputs(t *testing.T) {
	for cmd, want := range map[string]string{
		"get-instances": `each {"addr", "name", "port"}`,
		"set-config":    "instance <instance> failure: <error>",
		"test-timeout":  "Any response exits 0",
		"monitor":       `"type":"event"`,
	} {
		r := runCLI("client", cmd, "--help")
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("client %s --help (exit %d) lacks %q:\n%s", cmd, r.code, want, r.stdout)
		}
	}
	r := runCLI("client", "--help")
	for _, want := range []string{"get-instances", "set-config", "test-timeout", "monitor", "--controller", "Exit status"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("client --help lacks %q", want)
		}
	}
}
