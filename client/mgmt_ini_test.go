package client

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
	"github.com/zcc-harness/zcc/zeekini"
)

// What get-config prints, stage-config reads back to the same
// configuration (instance names lowercased, as zeek-client's configparser
// does on both sides).
func TestConfigINIRoundTrip(t *testing.T) {
	tcp := func(n uint16) api.Opt[broker.Port] { return api.Some(broker.TCPPort(n)) }
	cfg := api.Configuration{ID: "c1",
		Instances: []api.Instance{
			{Name: "instance-1", Host: netip.IPv4Unspecified()},
			{Name: "instance-2", Host: netip.MustParseAddr("10.0.0.2"), ListenPort: tcp(2151)},
			{Name: "instance-3", Host: netip.MustParseAddr("2001:db8::3"), ListenPort: tcp(2152)},
		},
		Nodes: []api.Node{
			{Name: "manager", Instance: "instance-1", Role: api.ClusterRoleManager, State: api.StateRunning, Port: tcp(2200), MetricsPort: tcp(9000),
				Scripts: api.Some([]string{"local.zeek", "site/with space.zeek"}), Env: map[string]string{"GREETING": "hello world", "Z": "1"}},
			{Name: "worker-01", Instance: "instance-2", Role: api.ClusterRoleWorker, State: api.StateRunning,
				Interface: api.Some("af_packet::eth1"), CPUAffinity: api.Some[int64](3)},
			{Name: "logger", Instance: "instance-3", Role: api.ClusterRoleLogger, State: api.StateRunning},
		}}
	text := ConfigINI(cfg)
	back, err := zeekini.ParseOptions("get-config", strings.NewReader(text), zeekini.Options{
		Dialect: zeekini.DialectMgmt, NewID: func() string { return "c1" }})
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if !back.Equal(cfg) {
		t.Fatalf("read back\n %+v\nwant\n %+v\nfrom\n%s", back, cfg, text)
	}
}

// FuzzPyLoads: Python's decoder and Go's agree on what is JSON (apart
// from Python's NaN and Infinity, which Go refuses), never panic, and what
// parses dumps to JSON that Go reads.
func FuzzPyLoads(f *testing.F) {
	for _, s := range []string{`{"a": [1, 2.5e3, "x\u00e9"]}`, `[1 2]`, `"\ud83d\ude00"`, "\"a\x01\"", `NaN`, `{"a":{"b":[]}}`, `-0.0e-0`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Count(s, "[")+strings.Count(s, "{") > 400 {
			return // beyond Python's recursion limit either way
		}
		v, err := pyLoads(s)
		if err != nil {
			if pe, ok := err.(*pyJSONError); !ok || pe.Msg == "" || pe.Pos < 0 {
				t.Fatalf("error %T %v", err, err)
			}
		}
		if !strings.Contains(s, "NaN") && !strings.Contains(s, "Infinity") {
			if (err == nil) != json.Valid([]byte(s)) {
				t.Fatalf("pyLoads error %v, json.Valid %v for %q", err, json.Valid([]byte(s)), s)
			}
		}
		if err == nil {
			// Overflowing numbers read as infinity, which Python writes
			// as the non-JSON Infinity, as it does NaN.
			out := pyDumps(v, 2)
			if !strings.Contains(out, "Infinity") && !strings.Contains(out, "NaN") && !json.Valid([]byte(out)) {
				t.Fatalf("pyDumps gave invalid JSON %q for %q", out, s)
			}
		}
	})
}
