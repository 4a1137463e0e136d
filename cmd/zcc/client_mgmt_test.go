package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/api/mgmtvectors"
	"github.com/zcc-harness/zcc/broker"
)

// replayFrame is one frame the scripted controller sends: text, or a close
// frame with code when text is nil.
type replayFrame struct {
	text  *string
	close int
}

// replayServer is a bare WebSocket server that plays a recorded controller:
// it reads the subscription frame, sends the ack text exactly as recorded,
// and after each request it receives sends the frames scripted for that
// request's event, with the recorded ids replaced by the request's own.
// Frames go out raw, so invalid JSON and close frames are possible.
type replayServer struct {
	t   *testing.T
	srv *httptest.Server
	ack *string
	// answers maps a request event name to the frames answering it, in
	// the order the requests arrive.
	answers map[string][][]replayFrame
	// subst turns the frame text for a request into what is sent: it gets
	// the request's decoded event.
	subst func(text string, req broker.Event) string

	mu        sync.Mutex
	handshake []string
	requests  [][]byte
	done      chan struct{}
}

func newReplayServer(t *testing.T, ack *string, answers map[string][][]replayFrame, subst func(string, broker.Event) string) *replayServer {
	t.Helper()
	s := &replayServer{t: t, ack: ack, answers: answers, subst: subst, done: make(chan struct{})}
	up := websocket.Upgrader{}
	var once sync.Once
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer once.Do(func() { close(s.done) })
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, hs, err := ws.ReadMessage()
		if err != nil {
			return
		}
		topics, _ := broker.DecodeHandshake(hs)
		s.mu.Lock()
		s.handshake = topics
		s.mu.Unlock()
		if s.ack == nil {
			return
		}
		if ws.WriteMessage(websocket.TextMessage, []byte(*s.ack)) != nil {
			return
		}
		used := map[string]int{}
		for {
			_, raw, err := ws.ReadMessage()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.requests = append(s.requests, raw)
			s.mu.Unlock()
			f, err := broker.DecodeFrame(raw)
			if err != nil {
				t.Errorf("client sent an undecodable frame: %v\n%s", err, raw)
				return
			}
			ev, err := f.Event()
			if err != nil {
				t.Errorf("client sent a frame that is not an event: %v", err)
				return
			}
			sets := s.answers[ev.Name]
			n := used[ev.Name]
			used[ev.Name]++
			if n >= len(sets) {
				continue
			}
			for _, fr := range sets[n] {
				if fr.text == nil {
					_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(fr.close, ""), time.Now().Add(time.Second))
					return
				}
				if ws.WriteMessage(websocket.TextMessage, []byte(s.subst(*fr.text, ev))) != nil {
					return
				}
			}
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *replayServer) addr() string { return strings.TrimPrefix(s.srv.URL, "http://") }

// seen returns what the client sent, once its connection has ended.
func (s *replayServer) seen(t *testing.T) ([]string, [][]byte) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the client's connection did not end")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handshake, s.requests
}

// reqidOf returns an event's first argument when it is a string.
func reqidOf(ev broker.Event) string {
	if len(ev.Args) == 0 {
		return ""
	}
	s, _ := ev.Args[0].AsString()
	return s
}

// mgmtArgs turns zeek-client arguments into `zcc client --profile mgmt`
// arguments against addr, with the INI (if any) written to a file.
func mgmtArgs(t *testing.T, addr string, argv []string, ini *string, extra ...string) []string {
	t.Helper()
	args := append([]string{"client", "--profile", "mgmt", "--controller", addr, "--connect-retry-delay", "50ms"}, extra...)
	path := ""
	if ini != nil {
		path = filepath.Join(t.TempDir(), "cluster.ini")
		if err := os.WriteFile(path, []byte(*ini), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range argv {
		if a == "cluster.ini" && path != "" {
			a = path
		}
		args = append(args, a)
	}
	return args
}

// useRecordingHost makes instance-less configurations name the host the
// vectors were recorded on.
func useRecordingHost(t *testing.T) {
	saved := mgmtHostname
	mgmtHostname = func() string { return "zeek-host" }
	t.Cleanup(func() { mgmtHostname = saved })
}

// clientOutputDeviations are the client-outputs vectors where zcc
// deliberately prints something else than zeek-client 1.5.0, each with the
// reason and what zcc does instead.
var clientOutputDeviations = map[string]struct {
	why   string
	check func(t *testing.T, r cliResult)
}{
	"deploy--nodeoutputs-broker-raw-control": {
		why: "Zeek's Broker writes control bytes raw in NodeOutputs; zeek-client cannot parse that JSON and gives up, zcc reads it (spec §1.5) and shows the outputs",
		check: func(t *testing.T, r cliResult) {
			if r.code != 1 || !strings.Contains(r.stdout, `"success": false`) || !strings.Contains(r.stdout, `\u001b[31m`) || r.stderr != "" {
				t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
		}},
	"deploy--nodeoutputs-broker-vt-escape": {
		why: "Broker's \\v escape is not JSON; zeek-client gives up, zcc reads it as U+000B (spec §1.5)",
		check: func(t *testing.T, r cliResult) {
			if r.code != 1 || !strings.Contains(r.stdout, `\u000b`) || r.stderr != "" {
				t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
		}},
	"get-nodes--port-zero": {
		why: "zeek-client dies with a traceback on port 0/? (Zeek's 0/unknown); zcc prints the port as 0",
		check: func(t *testing.T, r cliResult) {
			if r.code != 0 || !strings.Contains(r.stdout, `"port": 0`) || r.stderr != "" {
				t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
		}},
}

// TestMgmtClientOutputs replays the controller side of every
// client-outputs vector to `zcc client --profile mgmt` and compares its
// stdout, stderr and exit code with what zeek-client 1.5.0 printed.
func TestMgmtClientOutputs(t *testing.T) {
	useRecordingHost(t)
	dir, err := mgmtvectors.Dir()
	if err != nil {
		t.Fatal(err)
	}
	outputs, err := mgmtvectors.LoadOutputs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(outputs) < 70 {
		t.Fatalf("only %d client-outputs vectors", len(outputs))
	}
	for _, o := range outputs {
		t.Run(o.Name, func(t *testing.T) {
			answers := map[string][][]replayFrame{}
			var batch []replayFrame
			for i, raw := range o.ResponseFramesRaw {
				fr := replayFrame{text: raw}
				if raw == nil {
					code, ok := o.CloseCode(i)
					if !ok {
						t.Fatalf("frame %d is neither text nor a close frame", i)
					}
					fr.close = code
				}
				batch = append(batch, fr)
				// Frames answering the same request go out together.
				if i == len(o.ResponseFramesRaw)-1 || o.ResponseTo[i+1] != o.ResponseTo[i] {
					answers[o.ResponseTo[i]] = append(answers[o.ResponseTo[i]], batch)
					batch = nil
				}
			}
			s := newReplayServer(t, o.AckRaw, answers, func(text string, req broker.Event) string {
				return strings.ReplaceAll(text, mgmtvectors.ReqidPlaceholder, reqidOf(req))
			})
			timeout := "5s"
			if len(o.ResponseFramesRaw) == 0 && o.Connected && len(o.RequestEvents) > 0 {
				timeout = "300ms" // nothing will answer; zeek-client waited 20 s
			}
			r := runCLI(mgmtArgs(t, s.addr(), o.Argv, o.INI, "--timeout", timeout)...)
			var ids []string
			if !o.Connected {
				// The client refused its input: it must not even connect.
				select {
				case <-s.done:
					t.Error("the client connected although zeek-client did not")
				default:
				}
			} else {
				_, requests := s.seen(t)
				if len(requests) != len(o.RequestEvents) {
					t.Errorf("client sent %d requests, zeek-client sent %d", len(requests), len(o.RequestEvents))
				}
				ids = sentReqids(t, requests)
			}
			// Our address and reqids, written as the recording has them.
			normalise := func(text string) string {
				text = strings.ReplaceAll(text, s.addr(), "127.0.0.1:2149")
				for _, id := range ids {
					text = strings.ReplaceAll(text, id, mgmtvectors.ReqidPlaceholder)
				}
				return text
			}
			r.stdout, r.stderr = normalise(r.stdout), normalise(r.stderr)
			if dev, ok := clientOutputDeviations[o.Name]; ok {
				t.Logf("deliberate deviation: %s", dev.why)
				dev.check(t, r)
				return
			}
			r.check(t, o.ExitCode, o.Stdout, o.Stderr)
		})
	}
}

// sentReqids returns the reqids of the requests a client sent.
func sentReqids(t *testing.T, requests [][]byte) []string {
	t.Helper()
	var ids []string
	for _, raw := range requests {
		f, err := broker.DecodeFrame(raw)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := f.Event()
		if err != nil {
			t.Fatal(err)
		}
		if id := reqidOf(ev); id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}

// sentConfigIDs returns the configuration ids a client staged.
func sentConfigIDs(t *testing.T, requests [][]byte) []string {
	t.Helper()
	var ids []string
	for _, raw := range requests {
		f, err := broker.DecodeFrame(raw)
		if err != nil {
			t.Fatal(err)
		}
		if m, err := api.Mgmt.DecodeFrame(f); err == nil {
			if sc, ok := m.(api.StageConfigurationRequest); ok {
				ids = append(ids, sc.Config.ID)
			}
		}
	}
	return ids
}

// TestMgmtClientRequests runs the zeek-client command line of every
// client-requests vector through `zcc client --profile mgmt` and checks
// that every frame it sends equals the one zeek-client 1.5.0 sent (modulo
// the random reqid and configuration id, and set order), and that it
// prints what zeek-client printed for the recorded answers.
func TestMgmtClientRequests(t *testing.T) {
	useRecordingHost(t)
	dir, err := mgmtvectors.Dir()
	if err != nil {
		t.Fatal(err)
	}
	reqs, err := mgmtvectors.LoadRequests(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range reqs {
		t.Run(v.Name, func(t *testing.T) {
			recordedReqids, err := v.Values("reqid")
			if err != nil {
				t.Fatal(err)
			}
			recordedConfigs, err := v.Values("config_id")
			if err != nil {
				t.Fatal(err)
			}
			answers := map[string][][]replayFrame{}
			var ack *string
			for _, sf := range v.ServerFrames {
				text := sf.Text
				if sf.Answering == "handshake" {
					ack = &text
					continue
				}
				answers[sf.Answering] = append(answers[sf.Answering], []replayFrame{{text: &text}})
			}
			// The server answers with the recorded frames, which carry the
			// recorded ids; it swaps in the ids of the requests so far.
			var mu sync.Mutex
			var ourReqids, ourConfigs []string
			s := newReplayServer(t, ack, answers, func(text string, req broker.Event) string {
				mu.Lock()
				defer mu.Unlock()
				ourReqids = append(ourReqids, reqidOf(req))
				if m, err := api.Mgmt.Decode(req); err == nil {
					if sc, ok := m.(api.StageConfigurationRequest); ok {
						ourConfigs = append(ourConfigs, sc.Config.ID)
					}
				}
				for i, id := range recordedReqids {
					if i < len(ourReqids) {
						text = strings.ReplaceAll(text, id, ourReqids[i])
					}
				}
				for i, id := range recordedConfigs {
					if i < len(ourConfigs) {
						text = strings.ReplaceAll(text, id, ourConfigs[i])
					}
				}
				return text
			})
			timeout := "5s"
			if v.ClientResult.ExitCode != 0 && strings.Contains(v.ClientResult.Stderr, "timed out") {
				timeout = "300ms"
			}
			r := runCLI(mgmtArgs(t, s.addr(), v.Argv, v.INI, "--timeout", timeout)...)
			handshake, sent := s.seen(t)
			if strings.Join(handshake, ",") != strings.Join(v.Handshake, ",") {
				t.Errorf("handshake %q, zeek-client sent %q", handshake, v.Handshake)
			}
			want, err := v.NormalisedFrames()
			if err != nil {
				t.Fatal(err)
			}
			if len(sent) != len(want) {
				t.Fatalf("sent %d frames, zeek-client sent %d", len(sent), len(want))
			}
			ourReqids, ourConfigs = sentReqids(t, sent), sentConfigIDs(t, sent)
			repl := map[string]string{}
			for i, id := range ourReqids {
				repl[id] = mgmtvectors.Placeholder("reqid", i)
			}
			for i, id := range ourConfigs {
				repl[id] = mgmtvectors.Placeholder("config_id", i)
			}
			for i := range sent {
				got := normaliseFrame(t, sent[i], repl)
				exp, err := broker.DecodeFrame(want[i])
				if err != nil {
					t.Fatal(err)
				}
				if got.Topic != exp.Topic || !broker.Equal(got.Data, exp.Data) {
					t.Errorf("frame %d\n got %s %s\nwant %s %s", i, got.Topic, got.Data, exp.Topic, exp.Data)
				}
			}
			// And the output for the recorded answers, in the recording's ids.
			back := func(text string) string {
				text = strings.ReplaceAll(text, s.addr(), "127.0.0.1:2149")
				for i, id := range ourReqids {
					if i < len(recordedReqids) {
						text = strings.ReplaceAll(text, id, recordedReqids[i])
					}
				}
				for i, id := range ourConfigs {
					if i < len(recordedConfigs) {
						text = strings.ReplaceAll(text, id, recordedConfigs[i])
					}
				}
				return text
			}
			r.stdout, r.stderr = back(r.stdout), back(r.stderr)
			r.check(t, v.ClientResult.ExitCode, v.ClientResult.Stdout, v.ClientResult.Stderr)
		})
	}
}

// normaliseFrame decodes a sent frame with our random ids replaced by the
// placeholders the vectors' NormalisedFrames use.
func normaliseFrame(t *testing.T, raw []byte, repl map[string]string) broker.Frame {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("sent frame is not JSON: %v", err)
	}
	var walk func(any) any
	walk = func(x any) any {
		switch y := x.(type) {
		case string:
			if r, ok := repl[y]; ok {
				return r
			}
		case []any:
			for i := range y {
				y[i] = walk(y[i])
			}
		case map[string]any:
			for k := range y {
				y[k] = walk(y[k])
			}
		}
		return x
	}
	b, _ := json.Marshal(walk(v))
	f, err := broker.DecodeFrame(b)
	if err != nil {
		t.Fatalf("sent frame: %v", err)
	}
	return f
}

// cannedServer answers each request event with the given responses, whose
// reqid "{{reqid}}" becomes the request's.
func cannedServer(t *testing.T, responses ...api.Message) *replayServer {
	t.Helper()
	ack := `{"type":"ack","endpoint":"e","version":"8.1.2"}`
	answers := map[string][][]replayFrame{}
	for _, m := range responses {
		ev, err := api.Mgmt.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := broker.EventFrame(api.Mgmt.ControllerTopic, ev).Encode()
		if err != nil {
			t.Fatal(err)
		}
		text := string(raw)
		reqKind := map[api.EventKind]api.EventKind{
			api.KindGetConfigurationResponse:   api.KindGetConfigurationRequest,
			api.KindStageConfigurationResponse: api.KindStageConfigurationRequest,
			api.KindGetInstancesResponse:       api.KindGetInstancesRequest,
		}[m.Kind()]
		name, _ := api.Mgmt.EventName(reqKind)
		answers[name] = append(answers[name], []replayFrame{{text: &text}})
	}
	return newReplayServer(t, &ack, answers, func(text string, req broker.Event) string {
		return strings.ReplaceAll(text, mgmtvectors.ReqidPlaceholder, reqidOf(req))
	})
}

func TestMgmtClientCommandLine(t *testing.T) {
	useRecordingHost(t)
	const r = mgmtvectors.ReqidPlaceholder
	cfgData, err := api.Mgmt.ConfigurationValue(api.Configuration{ID: "c1",
		Instances: []api.Instance{{Name: "Agent-A", Host: netip.MustParseAddr("::1"), ListenPort: api.Some(broker.TCPPort(2151))}},
		Nodes: []api.Node{{Name: "w", Instance: "Agent-A", Role: api.ClusterRoleWorker, State: api.StateRunning,
			Env: map[string]string{"A": "x y", "B": "1"}, Scripts: api.Some([]string{"b.zeek", "a b.zeek"})}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("get-config to a file, INI as zeek-client writes it", func(t *testing.T) {
		s := cannedServer(t, api.GetConfigurationResponse{Reqid: r, Result: api.Result{Reqid: r, Success: true, Data: cfgData}})
		path := filepath.Join(t.TempDir(), "out.ini")
		runCLI(mgmtArgs(t, s.addr(), []string{"get-config", "--deployed", "-f", path}, nil)...).check(t, 0, "", "")
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// configparser lowercases the instance name; IPv6 without brackets.
		want := "[instances]\nagent-a = ::1:2151\n\n[w]\ninstance = Agent-A\nrole = WORKER\nscripts = \"a b.zeek\" b.zeek\nenv = A=\"x y\" B=1\n\n"
		if string(got) != want {
			t.Errorf("file\n%q\nwant\n%q", got, want)
		}
	})
	t.Run("stage-config from stdin with -v warnings", func(t *testing.T) {
		s := cannedServer(t, api.StageConfigurationResponse{Reqid: r, Results: []api.Result{{Reqid: r, Success: true, Data: broker.String("c9")}}})
		stdin, err := os.Open(writeFile(t, "in.ini", "[w]\nrole = worker\nstate = stopped\n"))
		if err != nil {
			t.Fatal(err)
		}
		defer stdin.Close()
		saved := os.Stdin
		os.Stdin = stdin
		defer func() { os.Stdin = saved }()
		runCLI(mgmtArgs(t, s.addr(), []string{"-v", "stage-config", "-"}, nil)...).check(t, 0,
			"{\n  \"errors\": [],\n  \"results\": {\n    \"id\": \"c9\"\n  }\n}\n",
			"warning: ignoring node \"w\" state \"stopped\" in configuration\nwarning: ignoring unexpected keys: state\n")
		_, sent := s.seen(t)
		f, _ := broker.DecodeFrame(sent[0])
		m, err := api.Mgmt.DecodeFrame(f)
		if err != nil {
			t.Fatal(err)
		}
		if n := m.(api.StageConfigurationRequest).Config.Nodes; len(n) != 1 || n[0].Instance != "agent-zeek-host" {
			t.Errorf("sent nodes %+v", n)
		}
	})
	t.Run("a file zeek-client would crash on", func(t *testing.T) {
		s := cannedServer(t)
		path := writeFile(t, "dup.ini", "[w]\nrole = worker\n[w]\nrole = logger\n")
		runCLI(mgmtArgs(t, s.addr(), []string{"deploy-config", path}, nil)...).check(t, 1, "",
			"error: "+path+":3: duplicate section [w] (first on line 1)\nerror: configuration has errors, not sending\n")
	})
	t.Run("connection refused, and -q", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		runCLI("client", "--profile", "mgmt", "--controller", addr, "--connect-attempts", "2", "--connect-retry-delay", "10ms", "get-nodes").
			check(t, 1, "", "error: websocket connection to "+addr+" timed out in connect()\n")
		runCLI("client", "--profile", "mgmt", "--controller", addr, "--connect-attempts", "1", "-q", "restart").check(t, 1, "", "")
	})
	t.Run("usage", func(t *testing.T) {
		for _, tc := range []struct {
			args   []string
			stderr string
		}{
			{[]string{"client", "deploy"}, "zcc: client deploy: not available with profile cc42\n"},
			{[]string{"client", "--profile", "mgmt", "set-config", "x.ini"}, "zcc: client set-config: not available with profile mgmt\n"},
			{[]string{"client", "--profile", "mgmt", "get-config", "--deployed", "--staged"}, "zcc: client get-config: --deployed and --staged exclude each other\n"},
			{[]string{"client", "--profile", "mgmt", "get-id-value"}, "zcc: client get-id-value: want an IDENTIFIER, then optionally node names\n"},
			{[]string{"client", "--profile", "mgmt", "stage-config"}, "zcc: client stage-config: want exactly one FILE argument, or - for standard input\n"},
			{[]string{"client", "--profile", "mgmt", "--connect-attempts", "0", "deploy"}, "zcc: client: --connect-attempts must be at least 1, got 0\n"},
		} {
			res := runCLI(tc.args...)
			if res.code != 2 || res.stderr != tc.stderr || res.stdout != "" {
				t.Errorf("%v: exit %d\nstderr %q\n  want %q", tc.args, res.code, res.stderr, tc.stderr)
			}
		}
		// The missing-file message is zeek-client's, with its exit code.
		runCLI("client", "--profile", "mgmt", "stage-config", filepath.Join(t.TempDir(), "none.ini")).
			check(t, 1, "", "error: please provide a cluster configuration file.\n")
	})
	t.Run("help", func(t *testing.T) {
		for cmd, want := range map[string]string{
			"deploy":        `"nodes": {"<node>"`,
			"get-config":    "--as-json",
			"stage-config":  "agent-<hostname>",
			"get-nodes":     `"mgmt_role"`,
			"get-id-value":  "IDENTIFIER",
			"restart":       "true|false",
			"deploy-config": "same connection",
		} {
			res := runCLI("client", "--profile", "mgmt", cmd, "--help")
			if res.code != 0 || !strings.Contains(res.stdout, want) {
				t.Errorf("client %s --help (exit %d) lacks %q", cmd, res.code, want)
			}
		}
	})
}
