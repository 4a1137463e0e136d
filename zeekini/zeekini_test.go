package zeekini

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

func fixedID() string { return "cfg-1" }

func parse(t *testing.T, text string) (api.Configuration, error) {
	t.Helper()
	return ParseOptions("c.ini", strings.NewReader(text), Options{NewID: fixedID})
}

func node(name, inst string, port uint16, role api.ClusterRole) api.Node {
	return api.Node{Name: name, Instance: inst, Port: api.Some(broker.TCPPort(port)), Role: role, State: api.StateRunning, Env: map[string]string{}}
}

func TestGoodForms(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	any4 := netip.IPv4Unspecified()
	tests := []struct {
		name string
		text string
		want api.Configuration
	}{
		{"empty file", "", api.Configuration{ID: "cfg-1"}},
		{"only comments and blanks", "# a\n; b\n\n   \n", api.Configuration{ID: "cfg-1"}},
		{
			"listening agents (zeek-testing-cluster form)",
			"[instances]\ninstance-1 = 127.0.0.1:2151\ninstance-2 = 127.0.0.1:2152\n",
			api.Configuration{ID: "cfg-1", Instances: []api.Instance{
				{Name: "instance-1", Host: lo, ListenPort: api.Some(broker.TCPPort(2151))},
				{Name: "instance-2", Host: lo, ListenPort: api.Some(broker.TCPPort(2152))},
			}},
		},
		{
			"connecting agents are bare names",
			"[instances]\n  instance-1\ninstance-2  \n",
			api.Configuration{ID: "cfg-1", Instances: []api.Instance{
				{Name: "instance-1", Host: any4},
				{Name: "instance-2", Host: any4},
			}},
		},
		{
			"colon delimiter, IPv6 in brackets, v4-mapped unmapped, CRLF and BOM",
			"\ufeff[instances]\r\na: 10.0.0.1:1\r\nb = [::1]:65535\r\nc = [::ffff:10.1.2.3]:2151\r\n",
			api.Configuration{ID: "cfg-1", Instances: []api.Instance{
				{Name: "a", Host: netip.MustParseAddr("10.0.0.1"), ListenPort: api.Some(broker.TCPPort(1))},
				{Name: "b", Host: netip.MustParseAddr("::1"), ListenPort: api.Some(broker.TCPPort(65535))},
				{Name: "c", Host: netip.MustParseAddr("10.1.2.3"), ListenPort: api.Some(broker.TCPPort(2151))},
			}},
		},
		{
			"full cluster, every key, any case, type as role, nodes before instances",
			`[manager]
instance = instance-1
ROLE = Manager
port = 5000

[worker-01]
instance=instance-1
type=WORKER
port=5001
interface=eth0
cpu_affinity=-1
State=stopped

[instances]
instance-1 = 127.0.0.1:2151
Instance-B
`,
			api.Configuration{ID: "cfg-1",
				Instances: []api.Instance{
					{Name: "instance-1", Host: lo, ListenPort: api.Some(broker.TCPPort(2151))},
					{Name: "Instance-B", Host: any4},
				},
				Nodes: []api.Node{
					node("manager", "instance-1", 5000, api.ClusterRoleManager),
					func() api.Node {
						n := node("worker-01", "instance-1", 5001, api.ClusterRoleWorker)
						n.Interface = api.Some("eth0")
						n.CPUAffinity = api.Some(int64(-1))
						n.State = api.StateStopped
						return n
					}(),
				},
			},
		},
		{
			"role none, every state, value containing '=' after the delimiter",
			"[instances]\ni\n[n1]\ninstance=i\nrole=none\nport=1\nstate=FAILED\n[n2]\ninstance=i\nrole=proxy\nport=2\nstate=Crashed\ninterface=a=b\n[n3]\ninstance=i\nrole=logger\nport=3\nstate=unknown\n",
			api.Configuration{ID: "cfg-1",
				Instances: []api.Instance{{Name: "i", Host: any4}},
				Nodes: []api.Node{
					func() api.Node { n := node("n1", "i", 1, api.ClusterRoleNone); n.State = api.StateFailed; return n }(),
					func() api.Node {
						n := node("n2", "i", 2, api.ClusterRoleProxy)
						n.State = api.StateCrashed
						n.Interface = api.Some("a=b")
						return n
					}(),
					func() api.Node { n := node("n3", "i", 3, api.ClusterRoleLogger); n.State = api.StateUnknown; return n }(),
				},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parse(t, tc.text)
			if err != nil {
				t.Fatalf("unexpected error:\n%v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func TestBadInputs(t *testing.T) {
	const head = "[instances]\ni = 127.0.0.1:2151\n" // lines 1-2
	tests := []struct {
		name string
		text string
		want string
	}{
		{"key outside a section", "instance = x\n[instances]\n",
			`c.ini:1: "instance" is outside any section; the file must start with a section header such as [instances]`},
		{"duplicate section", head + "[w]\ninstance=i\nrole=worker\nport=1\n[w]\n",
			`c.ini:7: duplicate section [w] (first on line 3)`},
		{"duplicate instances section", head + "[instances]\n",
			`c.ini:3: duplicate section [instances] (first on line 1)`},
		{"unclosed header", "[instances\n", `c.ini:1: section header "[instances" lacks its closing ']'`},
		{"text after header", "[instances] x\n", `c.ini:1: unexpected text "x" after section header`},
		{"empty section name", "[ ]\n", `c.ini:1: empty section name`},
		{"bracket in section name", "[[a]\n", `c.ini:1: section name "[a" contains '['`},
		{"missing key", "[instances]\n= 1.2.3.4:5\n", `c.ini:2: missing key before "="`},
		{"continuation line", head + "[w]\ninstance = i\n  more\nrole=worker\nport=1\n",
			`c.ini:5: indented line continues the value of "instance" from line 4; multi-line values are not supported`},
		{"invalid UTF-8", "[instances]\n\xff\n", `c.ini:2: not valid UTF-8`},
		{"unknown role", head + "[w]\ninstance=i\nrole=boss\nport=1\n",
			`c.ini:5: node [w]: role "boss" is not one of manager, logger, proxy, worker, none`},
		{"bad node port", head + "[w]\ninstance=i\nrole=worker\nport=70000\n",
			`c.ini:6: node [w]: port "70000" is not a number between 1 and 65535`},
		{"zero node port", head + "[w]\ninstance=i\nrole=worker\nport=0\n",
			`c.ini:6: node [w]: port "0" is not a number between 1 and 65535`},
		{"port with protocol", head + "[w]\ninstance=i\nrole=worker\nport=5001/tcp\n",
			`c.ini:6: node [w]: port "5001/tcp" is not a number between 1 and 65535`},
		{"missing port", head + "[w]\ninstance=i\nrole=worker\n",
			`c.ini:3: node [w] has no port key (the cc42 Node record requires a port)`},
		{"missing instance", head + "[w]\nrole=worker\nport=1\n",
			`c.ini:3: node [w] has no instance key`},
		{"missing role", head + "[w]\ninstance=i\nport=1\n",
			`c.ini:3: node [w] has no role (or type) key`},
		{"undeclared instance", head + "[w]\ninstance=I\nrole=worker\nport=1\n",
			`c.ini:4: node [w]: instance "I" is not declared in [instances]`},
		{"no instances section", "[w]\ninstance=i\nrole=worker\nport=1\n",
			`c.ini:2: node [w]: instance "i" is not declared in [instances]`},
		{"role and type", head + "[w]\ninstance=i\nrole=worker\ntype=worker\nport=1\n",
			`c.ini:6: node [w]: both role (line 5) and type (line 6) given; use one`},
		{"duplicate key any case", head + "[w]\ninstance=i\nrole=worker\nport=1\nPort=2\n",
			`c.ini:7: node [w]: duplicate key "port" (first on line 6)`},
		{"unknown key", head + "[w]\ninstance=i\nrole=worker\nport=1\nintreface=eth0\n",
			`c.ini:7: node [w]: unknown key "intreface" (known: cpu_affinity, instance, interface, port, role, state, type)`},
		{"key of a later format", head + "[w]\ninstance=i\nrole=worker\nport=1\nscripts=foo.zeek\n",
			`c.ini:7: node [w]: key "scripts" is not part of the cc42 format (zeek-client 0.2); it belongs to the Management framework's format`},
		{"key without value", head + "[w]\ninstance=i\nrole=worker\nport=1\ninterface\n",
			`c.ini:7: node [w]: key "interface" needs a value`},
		{"key with empty value", head + "[w]\ninstance=\nrole=worker\nport=1\n",
			`c.ini:4: node [w]: key "instance" needs a value`},
		{"bad state", head + "[w]\ninstance=i\nrole=worker\nport=1\nstate=pending\n",
			`c.ini:7: node [w]: state "pending" is not one of running, stopped, failed, crashed, unknown`},
		{"bad cpu_affinity", head + "[w]\ninstance=i\nrole=worker\nport=1\ncpu_affinity=two\n",
			`c.ini:7: node [w]: cpu_affinity "two" is not an integer`},
		{"DEFAULT section", head + "[DEFAULT]\ninstance=i\n",
			`c.ini:3: section [DEFAULT] is configparser's defaults section, which zcc does not support; name the node differently`},
		{"bad host", "[instances]\ni = localhost:2151\n",
			`c.ini:2: instance "i": host "localhost" is not an IP address (zeek-client takes addresses, not names)`},
		{"host with zone", "[instances]\ni = [fe80::1%eth0]:2151\n",
			`c.ini:2: instance "i": host "fe80::1%eth0" is not an IP address (zeek-client takes addresses, not names)`},
		{"no port in host:port", "[instances]\ni = 127.0.0.1\n",
			`c.ini:2: instance "i": want host:port, got "127.0.0.1" (leave the value out for an agent that connects to the controller)`},
		{"empty host:port value", "[instances]\ni =\n",
			`c.ini:2: instance "i": want host:port, got "" (leave the value out for an agent that connects to the controller)`},
		{"bare IPv6", "[instances]\ni = ::1:2151\n",
			`c.ini:2: instance "i": want host:port, got "::1:2151" (write an IPv6 host in brackets: [addr]:port)`},
		{"bracket without port", "[instances]\ni = [::1]\n",
			`c.ini:2: instance "i": want host:port with the IPv6 host in brackets, "[addr]:port", got "[::1]"`},
		{"bad instance port", "[instances]\ni = 127.0.0.1:http\n",
			`c.ini:2: instance "i": port "http" is not a number between 1 and 65535`},
		{"duplicate instance", "[instances]\ni\ni = 127.0.0.1:1\n",
			`c.ini:3: duplicate instance "i" (first on line 2)`},
		{"instance name with a space", "[instances]\ni 127.0.0.1\n",
			`c.ini:2: instance name "i 127.0.0.1" contains whitespace (a missing '=' before host:port?)`},
		{"several problems, in line order", "[instances]\ni = nohost:1\n[w]\nrole=boss\n",
			"c.ini:2: instance \"i\": host \"nohost\" is not an IP address (zeek-client takes addresses, not names)\n" +
				"c.ini:3: node [w] has no instance key\n" +
				"c.ini:3: node [w] has no port key (the cc42 Node record requires a port)\n" +
				"c.ini:4: node [w]: role \"boss\" is not one of manager, logger, proxy, worker, none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parse(t, tc.text)
			if err == nil {
				t.Fatalf("no error; got %#v", cfg)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got: %s\nwant: %s", err, tc.want)
			}
			var first *Error
			if !errors.As(err, &first) || first.File != "c.ini" || first.Line < 1 {
				t.Errorf("errors.As(*Error) = %v", first)
			}
			if !reflect.DeepEqual(cfg, api.Configuration{}) {
				t.Errorf("a failed parse returned a configuration: %#v", cfg)
			}
		})
	}
}

func TestLongLineAndErrorCap(t *testing.T) {
	long := "[instances]\n" + strings.Repeat("x", maxLine+1) + "\n"
	_, err := parse(t, long)
	if err == nil || err.Error() != "c.ini:2: line longer than 1048576 bytes" {
		t.Errorf("long line: %v", err)
	}

	var b strings.Builder
	b.WriteString("[instances]\n")
	for i := 0; i < maxErrors+10; i++ {
		b.WriteString("bad = nohost:1\n") // every line after the first duplicates or fails
	}
	_, err = parse(t, b.String())
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error %T is not an ErrorList", err)
	}
	if len(list) != maxErrors+1 || list[maxErrors].Msg != "too many errors; stopping" {
		t.Errorf("got %d errors, last %q", len(list), list[len(list)-1].Msg)
	}
}

func TestDefaultsAndDialects(t *testing.T) {
	cfg, err := Parse("", strings.NewReader("[instances]\ni\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.ID) != 36 || cfg.ID[14] != '1' {
		t.Errorf("default config id %q is not a uuid1 string", cfg.ID)
	}
	_, err = Parse("", strings.NewReader("junk\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "<input>:1: ") {
		t.Errorf("unnamed input error %v", err)
	}
	if d, err := DialectFor(api.CC42); err != nil || d != DialectCC42 {
		t.Errorf("DialectFor(cc42) = %v, %v", d, err)
	}
	if _, err := DialectFor(nil); err == nil {
		t.Error("DialectFor(nil) succeeded")
	}
	if _, err := ParseOptions("x", strings.NewReader(""), Options{Dialect: Dialect(9)}); err == nil || !strings.Contains(err.Error(), "unknown dialect Dialect(9)") {
		t.Errorf("unknown dialect: %v", err)
	}
}
