package zeekini

import (
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/zcc-harness/zcc/api"
)

// FuzzParseMgmt checks DialectMgmt: no input panics, parsing is
// deterministic, every error names the file and a real line, and whatever
// parses goes on the wire in the mgmt profile and comes back unchanged.
func FuzzParseMgmt(f *testing.F) {
	for _, seed := range []string{
		"",
		"[instances]\ninstance-1\ninstance-2 = 10.0.0.2:2151\n[manager]\ninstance = instance-1\nrole = manager\nport = 5000\nmetrics_port = 9100\nscripts = b.zeek a.zeek\nenv = A=1 B=\"x y\"\n",
		"[manager]\nrole = manager\n[logger]\nrole = logger\n",
		"[DEFAULT]\ninstance = i\n[w]\nrole = worker\nscripts = a\n  b\n\n  c\nenv = P=%%\n",
		"[instances]\ni = 2151\n[w]\nrole=boss\nport=x\n",
		"[w]\ninstance=%(x)s\nrole=worker\nx=%(w\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		lines := strings.Count(text, "\n") + 1
		opts := Options{Dialect: DialectMgmt, NewID: fixedID, Hostname: func() string { return "h" }}
		cfg, err := ParseOptions("f.ini", strings.NewReader(text), opts)
		again, err2 := ParseOptions("f.ini", strings.NewReader(text), opts)
		if !reflect.DeepEqual(cfg, again) || (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("parse is not deterministic")
		}
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %T %v is not a non-empty ErrorList", err, err)
			}
			for _, e := range list {
				if e.File != "f.ini" || e.Line < 1 || e.Line > lines+1 || e.Msg == "" {
					t.Fatalf("bad error position %q (input has %d lines)", e.Error(), lines)
				}
				if !strings.HasPrefix(e.Error(), "f.ini:"+strconv.Itoa(e.Line)+": ") {
					t.Fatalf("error text %q", e.Error())
				}
			}
			return
		}
		for _, n := range cfg.Nodes {
			if n.Scripts.Set && !slices.IsSorted(n.Scripts.V) {
				t.Fatalf("node %q scripts not sorted: %q", n.Name, n.Scripts.V)
			}
			if n.State != api.StateRunning || n.Options.Set {
				t.Fatalf("node %q has a state or options zeek-client never sends: %#v", n.Name, n)
			}
		}
		ev, err := api.Mgmt.Encode(api.StageConfigurationRequest{Reqid: "r", Config: cfg})
		if err != nil {
			t.Fatalf("parsed configuration does not encode: %v", err)
		}
		back, err := api.Mgmt.Decode(ev)
		if err != nil {
			t.Fatalf("encoded configuration does not decode: %v", err)
		}
		if got := back.(api.StageConfigurationRequest).Config; !got.Equal(cfg) {
			t.Fatalf("round trip changed the configuration:\n got %#v\nwant %#v", got, cfg)
		}
	})
}
