package zeekini

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/api/mgmtvectors"
	"github.com/zcc-harness/zcc/broker"
)

func parseMgmt(t *testing.T, text string) (api.Configuration, []string, error) {
	t.Helper()
	var warnings []string
	cfg, err := ParseOptions("c.ini", strings.NewReader(text), Options{
		Dialect: DialectMgmt, NewID: fixedID,
		Hostname: func() string { return "zeek-host" },
		Warn:     func(m string) { warnings = append(warnings, m) },
	})
	return cfg, warnings, err
}

// TestMgmtVectorsINI parses the INI of every stage-config and
// deploy-config vector and compares the result with the Configuration
// zeek-client 1.5.0 actually sent for it (decoded from the recorded frame;
// the recording host was "zeek-host").
func TestMgmtVectorsINI(t *testing.T) {
	dir, err := mgmtvectors.Dir()
	if err != nil {
		t.Fatal(err)
	}
	reqs, err := mgmtvectors.LoadRequests(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range reqs {
		if r.INI == nil {
			continue
		}
		n++
		t.Run(r.Name, func(t *testing.T) {
			fr, err := broker.DecodeFrame([]byte(r.FramesRaw[0]))
			if err != nil {
				t.Fatal(err)
			}
			m, err := api.Mgmt.DecodeFrame(fr)
			if err != nil {
				t.Fatal(err)
			}
			sent := m.(api.StageConfigurationRequest).Config
			got, warnings, err := parseMgmt(t, *r.INI)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			got.ID = sent.ID
			if !got.Equal(sent) {
				t.Fatalf("parsed\n %+v\nzeek-client sent\n %+v", got, sent)
			}
			// The recorded order of a vector matters: scripts are sorted.
			for i := range got.Nodes {
				for _, s := range sent.Nodes {
					if s.Name == got.Nodes[i].Name && !reflect.DeepEqual(s.Scripts, got.Nodes[i].Scripts) {
						t.Errorf("node %s scripts %v, sent %v", s.Name, got.Nodes[i].Scripts, s.Scripts)
					}
				}
			}
			// What zeek-client -v would have warned about: "type" is
			// role's alias, yet not among the keys it expects.
			var want []string
			switch {
			case strings.HasSuffix(r.Name, "ignored-keys"):
				want = []string{`ignoring node "manager" state "stopped" in configuration`,
					"ignoring unexpected keys: options, pin_cpu, state"}
			case strings.HasSuffix(r.Name, "full-cluster"):
				want = []string{"ignoring unexpected keys: type"}
			}
			if !reflect.DeepEqual(warnings, want) {
				t.Errorf("warnings %q, want %q", warnings, want)
			}
		})
	}
	if n != 16 {
		t.Errorf("%d INI vectors, want 16", n)
	}
}

// TestMgmtVectorsRejects: the INI files zeek-client refuses to send give
// zeek-client's own error text.
func TestMgmtVectorsRejects(t *testing.T) {
	dir, err := mgmtvectors.Dir()
	if err != nil {
		t.Fatal(err)
	}
	outs, err := mgmtvectors.LoadOutputs(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, o := range outs {
		if !strings.HasPrefix(o.Name, "stage-config--client-rejects-") {
			continue
		}
		n++
		t.Run(o.Name, func(t *testing.T) {
			_, _, err := parseMgmt(t, *o.INI)
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error %v is not an ErrorList", err)
			}
			var lines []string
			for _, e := range list {
				if !e.ZeekClient {
					t.Errorf("error %q is not marked as zeek-client's", e)
				}
				lines = append(lines, "error: "+e.Msg+"\n")
			}
			got := strings.Join(lines, "") + "error: configuration has errors, not sending\n"
			if got != o.Stderr {
				t.Errorf("errors\n got %q\nwant %q", got, o.Stderr)
			}
		})
	}
	if n != 4 {
		t.Errorf("%d reject vectors, want 4", n)
	}
}

func TestMgmtForms(t *testing.T) {
	any4 := netip.IPv4Unspecified()
	node := func(name, inst string, role api.ClusterRole) api.Node {
		return api.Node{Name: name, Instance: inst, Role: role, State: api.StateRunning}
	}
	tests := []struct {
		name     string
		text     string
		want     api.Configuration
		warnings []string
	}{
		{"role aliases and qualified names",
			"[a]\ninstance=i\ntype=Supervisor::WORKER\n[b]\ninstance=i\nrole=ClusterRole.logger\n[c]\ninstance=i\nrole=none\n",
			api.Configuration{ID: "cfg-1", Instances: []api.Instance{{Name: "i", Host: any4}},
				Nodes: []api.Node{node("a", "i", api.ClusterRoleWorker), node("b", "i", api.ClusterRoleLogger), node("c", "i", api.ClusterRoleNone)}},
			[]string{"ignoring unexpected keys: type"}},
		{"instance names are lowercased like every configparser key; section names are not",
			"[instances]\nAgent-A = [::1]:2151\n[Manager]\ninstance=agent-a\nrole=manager\n",
			api.Configuration{ID: "cfg-1",
				Instances: []api.Instance{{Name: "agent-a", Host: netip.MustParseAddr("::1"), ListenPort: api.Some(broker.TCPPort(2151))}},
				Nodes:     []api.Node{node("Manager", "agent-a", api.ClusterRoleManager)}}, nil},
		{"DEFAULT keys are inherited, interpolation, continuation lines",
			"[DEFAULT]\ninstance = i\n[w]\nrole = worker\nbase = /opt\nscripts = a.zeek\n  %(base)s/b.zeek\n\n   c.zeek\nenv = P=100%%\ninterface = \n",
			api.Configuration{ID: "cfg-1", Instances: []api.Instance{{Name: "i", Host: any4}},
				Nodes: []api.Node{func() api.Node {
					n := node("w", "i", api.ClusterRoleWorker)
					n.Scripts = api.Some([]string{"/opt/b.zeek", "a.zeek", "c.zeek"})
					n.Env = map[string]string{"P": "100%"}
					n.Interface = api.Some("")
					return n
				}()}},
			[]string{"ignoring unexpected keys: base"}},
		{"an empty instance value means the host; ports, cpu and metrics as Python's int() reads them",
			"[w]\ninstance =\nrole = worker\nport = +5_001\ncpu_affinity = -1\nmetrics_port = 09000\n",
			api.Configuration{ID: "cfg-1", Instances: []api.Instance{{Name: "agent-zeek-host", Host: any4}},
				Nodes: []api.Node{func() api.Node {
					n := node("w", "agent-zeek-host", api.ClusterRoleWorker)
					n.Port = api.Some(broker.TCPPort(5001))
					n.CPUAffinity = api.Some[int64](-1)
					n.MetricsPort = api.Some(broker.TCPPort(9000))
					return n
				}()}}, nil},
		{"shlex quoting in scripts and env",
			`[w]` + "\ninstance=i\nrole=worker\n" + `scripts = 'x y.zeek' "q\"uote.zeek" back\ slash.zeek ""` + "\n" +
				`env = A=1 B="two words" C=a=b D=` + "\n",
			api.Configuration{ID: "cfg-1", Instances: []api.Instance{{Name: "i", Host: any4}},
				Nodes: []api.Node{func() api.Node {
					n := node("w", "i", api.ClusterRoleWorker)
					n.Scripts = api.Some([]string{"", "back slash.zeek", `q"uote.zeek`, "x y.zeek"})
					n.Env = map[string]string{"A": "1", "B": "two words", "C": "a=b", "D": ""}
					return n
				}()}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, warnings, err := parseMgmt(t, tc.text)
			if err != nil {
				t.Fatalf("unexpected error:\n%v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %#v\nwant %#v", got, tc.want)
			}
			if !reflect.DeepEqual(warnings, tc.warnings) {
				t.Errorf("warnings %q, want %q", warnings, tc.warnings)
			}
		})
	}
}

func TestMgmtBadInputs(t *testing.T) {
	const head = "[instances]\ni\n" // lines 1-2
	tests := []struct {
		name string
		text string
		want string // the ErrorList text
		zc   bool   // zeek-client's own wording
	}{
		{"role missing", head + "[w]\ninstance=i\n", `c.ini:3: invalid node "w" configuration: node requires a role`, true},
		{"role empty, type not consulted", head + "[w]\ninstance=i\nrole=\ntype=worker\n", `c.ini:3: invalid node "w" configuration: node requires a role`, true},
		{"bad role", head + "[w]\ninstance=i\nrole=boss\n", `c.ini:3: invalid node "w" configuration: role "boss" is invalid`, true},
		{"port before role", head + "[w]\ninstance=i\nport=50o1\n", `c.ini:3: invalid node "w" configuration: cannot convert "w.port" value "50o1" to int`, true},
		{"empty port", head + "[w]\ninstance=i\nrole=worker\nport=\n", `c.ini:3: invalid node "w" configuration: cannot convert "w.port" value "" to int`, true},
		{"port range", head + "[w]\ninstance=i\nrole=worker\nport=0\n", `c.ini:3: invalid node "w" configuration: port 0 outside valid range`, true},
		{"metrics port range names the port, as zeek-client does", head + "[w]\ninstance=i\nrole=worker\nmetrics_port=70000\n",
			`c.ini:3: invalid node "w" configuration: metrics port None outside valid range`, true},
		{"cpu", head + "[w]\ninstance=i\nrole=worker\ncpu_affinity=1.5\n", `c.ini:3: invalid node "w" configuration: cannot convert "w.cpu_affinity" value "1.5" to int`, true},
		{"scripts quote", head + "[w]\ninstance=i\nrole=worker\nscripts=\"a.zeek\n", `c.ini:3: invalid node "w" configuration: No closing quotation`, true},
		{"scripts escape", head + "[w]\ninstance=i\nrole=worker\nscripts=a.zeek\\\n", `c.ini:3: invalid node "w" configuration: No escaped character`, true},
		{"env without =", head + "[w]\ninstance=i\nrole=worker\nenv=A=1 B\n", `c.ini:3: invalid node "w" configuration: env value "A=1 B" is invalid`, true},
		{"node key without value", head + "[w]\ninstance=i\nrole\n", `c.ini:5: config item w.role needs a value`, true},
		{"instance spec", "[instances]\ni = 2151\n", `c.ini:2: invalid spec for instance "i": "2151" should be <host>:<port>`, true},
		{"instance spec without port", "[instances]\ni = 10.0.0.1:\n", `c.ini:2: invalid spec for instance "i": "10.0.0.1:" should be <host>:<port>`, true},
		{"mixed instances", "[a]\ninstance=i\nrole=worker\n[b]\nrole=worker\n", `c.ini:4: either all or no nodes must state instances`, true},
		{"instances with instance-free nodes", head + "[a]\nrole=worker\n", `c.ini:3: omit instances section when skipping instances in node definitions`, true},
		// Where zeek-client dies with a Python traceback, zcc explains.
		{"host name", "[instances]\ni = localhost:2151\n", `c.ini:2: instance "i": host "localhost" is not an IP address (zeek-client takes addresses, not names)`, false},
		{"instance port", "[instances]\ni = 10.0.0.1:99999\n", `c.ini:2: instance "i": port "99999" is not a number between 1 and 65535`, false},
		{"duplicate key after lowercasing", head + "[w]\ninstance=i\nRole=worker\nrole=worker\n", `c.ini:6: [w]: duplicate key "role" (first on line 5)`, false},
		{"bad interpolation", head + "[w]\ninstance=i\nrole=worker\nenv=P=50%\n", `c.ini:6: [w] env: '%' must be followed by '%' or '(', found: "%" (write %% for a percent sign)`, false},
		{"missing interpolation key", head + "[w]\ninstance=%(where)s\nrole=worker\n", `c.ini:4: [w] instance: %(where)s refers to a key that is not set`, false},
		{"continuation of a bare key", "[instances]\ni\n  j\n", `c.ini:3: indented line continues "i" from line 2, which has no value`, false},
		{"duplicate section", head + "[w]\ninstance=i\nrole=worker\n[w]\n", `c.ini:6: duplicate section [w] (first on line 3)`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := parseMgmt(t, tc.text)
			if err == nil {
				t.Fatalf("no error; got %#v", cfg)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got: %s\nwant: %s", err, tc.want)
			}
			var first *Error
			if !errors.As(err, &first) || first.ZeekClient != tc.zc {
				t.Errorf("ZeekClient = %v, want %v", first.ZeekClient, tc.zc)
			}
		})
	}
}

func TestShlexSplit(t *testing.T) {
	good := map[string][]string{
		``:                      nil,
		"  a \t b\nc  ":         {"a", "b", "c"},
		`'a b' "c d"`:           {"a b", "c d"},
		`a'b'"c"`:               {"abc"},
		`"" ''`:                 {"", ""},
		`a\ b \'`:               {"a b", "'"},
		`"\"\\\n\$"`:            {`"\\n\$`},
		`'\n'`:                  {`\n`},
		`x="1 2"`:               {"x=1 2"},
		"caf\u00e9 \u2603.zeek": {"caf\u00e9", "\u2603.zeek"},
	}
	for in, want := range good {
		got, err := shlexSplit(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("shlexSplit(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := map[string]error{`"a`: errNoClosingQuotation, `'a`: errNoClosingQuotation, `a\`: errNoEscapedCharacter, `"a\`: errNoEscapedCharacter}
	for in, want := range bad {
		if _, err := shlexSplit(in); err != want {
			t.Errorf("shlexSplit(%q) error %v, want %v", in, err, want)
		}
	}
}

func TestPythonInt(t *testing.T) {
	good := map[string]int64{"1": 1, " 42 ": 42, "+7": 7, "-3": -3, "1_000": 1000, "007": 7, "0": 0}
	for in, want := range good {
		if got, ok := pythonInt(in); !ok || got != want {
			t.Errorf("pythonInt(%q) = %d, %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "-", "_1", "1_", "1__0", "1.0", "0x10", "1e3", "١", "99999999999999999999"} {
		if got, ok := pythonInt(in); ok {
			t.Errorf("pythonInt(%q) = %d, want failure", in, got)
		}
	}
}

func TestMgmtDialectFor(t *testing.T) {
	if d, err := DialectFor(api.Mgmt); err != nil || d != DialectMgmt || d.String() != "mgmt" {
		t.Errorf("DialectFor(mgmt) = %v, %v", d, err)
	}
	// The cc42 reader keeps refusing continuation lines.
	_, err := parse(t, "[instances]\ni = 127.0.0.1:1\n  more\n")
	if err == nil || !strings.Contains(err.Error(), "multi-line values are not supported") {
		t.Errorf("cc42 continuation: %v", err)
	}
}
