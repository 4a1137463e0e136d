package catalog

import (
	"strings"
	"testing"
)

func TestCC42Catalogue(t *testing.T) {
	bs, err := Load("cc42")
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 50 {
		t.Fatalf("%d behaviours, want the 50 of behaviors-cc42.md", len(bs))
	}
	byID := map[string]Behavior{}
	for _, b := range bs {
		byID[b.ID] = b
	}
	lis := byID["set-config.listening-agent"]
	if !lis.Ext || strings.HasPrefix(lis.Text, "ext") {
		t.Errorf("listening-agent should be an extension with the marker stripped: %+v", lis)
	}
	q := byID["quirk.peer-loss"]
	if !q.Quirk || !strings.Contains(q.Zeek42, "stays ready") || !strings.Contains(q.Fixed, "disconnected") {
		t.Errorf("quirk.peer-loss columns: %+v", q)
	}
	if byID["transport.ack"].Section != "Transport (M §1)" {
		t.Errorf("section = %q", byID["transport.ack"].Section)
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	cases := []struct{ in, want string }{
		{"| ID | behaviour |\n|---|---|\n| a.b | x |\n| a.b | y |\n", "x.md:4: behaviour a.b already defined on line 3"},
		{"| nodot | x |\n", "x.md:1: \"nodot\" is not a behaviour ID"},
		{"| a.b | x | y |\n", "x.md:1: a.b: quirk IDs (quirk.*) and only they have zeek42/fixed columns"},
		{"| a.b | x | y | z |\n", "x.md:1: behaviour a.b has 4 columns"},
		{"nothing\n", "x.md: no behaviours found"},
	}
	for _, c := range cases {
		_, err := parse("x.md", []byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parse(%q) = %v, want %q", c.in, err, c.want)
		}
	}
	if _, err := Load("nope"); err == nil {
		t.Error("unknown profile loaded")
	}
}

func TestMgmtCatalogue(t *testing.T) {
	bs, err := Load("mgmt")
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 74 {
		t.Fatalf("%d behaviours, want the 74 of behaviors-mgmt.md", len(bs))
	}
	var ext []string
	for _, b := range bs {
		if b.Quirk {
			t.Errorf("%s: the mgmt profile has no quirk modes", b.ID)
		}
		if b.Ext {
			ext = append(ext, b.ID)
		}
		if !strings.Contains(b.Section, "§") {
			t.Errorf("%s: section %q names no spec section", b.ID, b.Section)
		}
	}
	// The behaviours that need WebSocket agents to count as connected,
	// which a real Zeek never does (spec §3).
	want := "get-instances.known get-nodes.per-agent get-nodes.timeout restart.no-deployment restart.unknown-node restart.nodes restart.node-failure restart.timeout"
	if got := strings.Join(ext, " "); got != want {
		t.Errorf("ext behaviours:\n got %s\nwant %s", got, want)
	}
}
