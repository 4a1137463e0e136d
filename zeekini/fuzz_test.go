package zeekini

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/zcc-harness/zcc/api"
)

// FuzzParse checks that no input panics, that every error names the file
// and a real line, and that whatever parses is a configuration zeek-client
// 0.2 could have sent.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"",
		"[instances]\ninstance-1 = 127.0.0.1:2151\ninstance-2\n",
		"[instances]\ni = [::1]:2151\n[w]\ninstance = i\nrole = worker\nport = 5001\ninterface = eth0\ncpu_affinity = 2\nstate = stopped\n",
		"[w]\ntype=manager\nport=1\ninstance=i\n[instances]\ni\n",
		"x\n[a]\n[a]\n  y\n[b] z\n[\n= 3\n",
		"\ufeff[instances]\r\ni: 1.2.3.4:5\r\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		lines := strings.Count(text, "\n") + 1
		cfg, err := ParseOptions("f.ini", strings.NewReader(text), Options{NewID: fixedID})
		again, err2 := ParseOptions("f.ini", strings.NewReader(text), Options{NewID: fixedID})
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
		if cfg.ID != "cfg-1" {
			t.Fatalf("id %q", cfg.ID)
		}
		instances := map[string]bool{}
		for _, inst := range cfg.Instances {
			if inst.Name == "" || strings.IndexFunc(inst.Name, unicode.IsSpace) >= 0 || instances[inst.Name] {
				t.Fatalf("bad or duplicate instance name %q", inst.Name)
			}
			instances[inst.Name] = true
			if !inst.Host.IsValid() || inst.Host.Is4In6() {
				t.Fatalf("instance %q host %v", inst.Name, inst.Host)
			}
			if p, set := inst.ListenPort.Get(); set && p.Number == 0 {
				t.Fatalf("instance %q port 0", inst.Name)
			}
		}
		nodes := map[string]bool{}
		for _, n := range cfg.Nodes {
			if n.Name == "" || nodes[n.Name] || !instances[n.Instance] {
				t.Fatalf("node %q: duplicate or instance %q undeclared", n.Name, n.Instance)
			}
			nodes[n.Name] = true
			if p, set := n.Port.Get(); !set || p.Number == 0 {
				t.Fatalf("node %q port %v", n.Name, n.Port)
			}
			if n.Env == nil || n.Scripts.Set || n.Options.Set || n.MetricsPort.Set {
				t.Fatalf("node %q has fields zeek-client 0.2 never sets: %#v", n.Name, n)
			}
		}
		// What parses must go on the wire and come back unchanged.
		ev, err := api.CC42.Encode(api.SetConfigurationRequest{Reqid: "r", Config: cfg})
		if err != nil {
			t.Fatalf("parsed configuration does not encode: %v", err)
		}
		back, err := api.CC42.Decode(ev)
		if err != nil {
			t.Fatalf("encoded configuration does not decode: %v", err)
		}
		if got := back.(api.SetConfigurationRequest).Config; !got.Equal(cfg) {
			t.Fatalf("round trip changed the configuration:\n got %#v\nwant %#v", got, cfg)
		}
	})
}
