package scenarios

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/zcc-harness/zcc/suites/catalog"
)

func TestLibrary(t *testing.T) {
	list, err := Library()
	if err != nil {
		t.Fatalf("library: %v", err)
	}
	count := map[string]int{}
	covered := map[string]bool{}
	for _, s := range list {
		count[s.Profile]++
		// One file, one scenario, named after it.
		if want := path.Join("scenarios", s.Profile, s.Name+".yaml"); s.File() != want {
			t.Errorf("scenario %s is in %s, want %s", s.Name, s.File(), want)
		}
		if s.Summary() == "" {
			t.Errorf("%s: no description", s.Name)
		}
		for _, id := range s.Covers {
			covered[id] = true
		}
	}
	for profile, least := range map[string]int{"cc42": 30, "mgmt": 8} {
		if count[profile] < least {
			t.Errorf("the library has %d %s scenarios, want at least %d", count[profile], profile, least)
		}
		cat, err := catalog.Load(profile)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, b := range cat {
			if covered[b.ID] {
				n++
			}
		}
		t.Logf("%d %s scenarios cover %d of %d catalogued behaviours", count[profile], profile, n, len(cat))
	}
}

func TestLoadReportsDuplicateNames(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile("cc42/one-of-three-fails.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"a.yaml", "b.yaml"} {
		if err := os.WriteFile(filepath.Join(dir, f), src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	list, err := LoadFiles(filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml"))
	want := filepath.Join(dir, "b.yaml") + `:1:7: name: "one-of-three-fails" is already the name of ` + filepath.Join(dir, "a.yaml")
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant %s", err, want)
	}
	if len(list) != 2 {
		t.Errorf("both files loaded on their own; got %d", len(list))
	}
}

const minimal = `name: minimal
description: d
profile: cc42
covers: [test-timeout.stateful]
steps:
  - send: test_timeout
    with_state: true
    expect: {timed_out: true, within: timeout_latest}
`

func TestParseFollowsAnchorsAndAliases(t *testing.T) {
	src := `name: anchors
description: shared behaviour through an anchor
profile: cc42
covers: [set-config.several-fail]
agents:
  - name: a
    behaviour: &broken
      on:
        set_configuration_request: {action: fail, node: n, error: e}
  - name: b
    behaviour: *broken
steps:
  - send: set_configuration
    config: {instances: [a, b]}
    expect: {success: false, error: "node n failed: e"}
`
	s, err := Parse("anchors.yaml", []byte(src), nil, ".")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Agents[1].Behaviour.On["set_configuration_request"].Error; got != "e" {
		t.Errorf("the alias did not carry the behaviour: %q", got)
	}
}

func TestParseRejectsMergeKeysAndUnknownAliases(t *testing.T) {
	src := minimal + `agents:
  - <<: {name: x}
  - *nowhere
`
	_, err := Parse("merge.yaml", []byte(src), nil, ".")
	for _, want := range []string{
		"merge.yaml:10:5: agents[0]: merge keys (<<) are not supported",
		"merge.yaml:11:5: agents[1]: alias *nowhere refers to no anchor defined before it",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v\nlacks %s", err, want)
		}
	}
}

// TestParseBoundsAliasExpansion: nested aliases must not make the loader
// do exponential work ("billion laughs").
func TestParseBoundsAliasExpansion(t *testing.T) {
	var b strings.Builder
	b.WriteString(minimal)
	b.WriteString("shared:\n  r0: &r0 {action: reply, count: 1}\n")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&b, "  r%d: &r%d {count: 1, sequence: [", i, i)
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*r%d", i-1)
		}
		b.WriteString("]}\n")
	}
	b.WriteString("agents:\n  - name: a\n    behaviour: {on: {set_configuration_request: *r8}}\n")
	_, err := Parse("laughs.yaml", []byte(b.String()), nil, ".")
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error = %v", err)
	}
	found := false
	for _, e := range list {
		found = found || strings.Contains(e.Msg, "too large to be a scenario")
	}
	if !found || len(list) > maxErrors+1 {
		t.Errorf("%d errors, want the size error among at most %d:\n%v", len(list), maxErrors+1, err)
	}
}

func TestParseReadsINIFromItsFileSystem(t *testing.T) {
	fsys := fstest.MapFS{
		"d/s.yaml": {Data: []byte(`name: ini
description: d
profile: cc42
covers: [set-config.all-succeed]
agents: [{name: a}]
steps:
  - send: set_configuration
    config_file: c.ini
    expect: {success: true}
`)},
		"d/c.ini": {Data: []byte("[instances]\na\n\n[w]\ninstance = a\nrole = worker\nport = 47000\n")},
	}
	s, err := LoadFS(fsys, "d/s.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.iniConfigs[0]
	if len(cfg.Instances) != 1 || cfg.Instances[0].Name != "a" || len(cfg.Nodes) != 1 || cfg.Nodes[0].Name != "w" {
		t.Errorf("INI configuration = %+v", cfg)
	}
	delete(fsys, "d/c.ini")
	_, err = LoadFS(fsys, "d/s.yaml")
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 1 || !strings.Contains(list[0].Error(), "d/s.yaml:8:18: steps[0].config_file: cannot read d/c.ini") {
		t.Errorf("missing INI: %v", err)
	}
}

func TestSpecLabels(t *testing.T) {
	s, err := Parse("m.yaml", []byte(minimal+"labels: [fault:none]\n"), nil, ".")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(s.SpecLabels(), ",")
	if got != "scenario,scenario:minimal,timeout,fault:none" {
		t.Errorf("labels = %s", got)
	}
	if s.PairName() != "test_timeout" || s.SpecText() != "scenario minimal" {
		t.Errorf("pair %q, text %q", s.PairName(), s.SpecText())
	}
}

// FuzzParse: no input makes the loader panic, and every error it reports
// has a position inside the input.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("cc42/*.yaml")
	broken, _ := filepath.Glob("testdata/broken/*.yaml")
	for _, p := range append(files, broken...) {
		src, err := os.ReadFile(p)
		if err == nil {
			f.Add(src)
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		s, err := Parse("fuzz.yaml", src, nil, ".")
		if err == nil {
			if s == nil {
				t.Fatal("no scenario and no error")
			}
			return
		}
		var list ErrorList
		if !errors.As(err, &list) || len(list) == 0 {
			t.Fatalf("error %T is not a located list: %v", err, err)
		}
		for _, e := range list {
			if e.Pos.Line < 1 || e.Pos.Col < 1 {
				t.Fatalf("error without a position: %v", e)
			}
		}
	})
}

// TestWorkedExampleDraft keeps the errors docs/scenarios.md shows for the
// draft scenario true.
func TestWorkedExampleDraft(t *testing.T) {
	_, err := LoadFile("testdata/examples/draft.yaml")
	want := `testdata/examples/draft.yaml:11:5: agents[0].behavior: unknown key in an agent (did you mean "behaviour"?)
testdata/examples/draft.yaml:19:15: steps[0].expect.within: waits 5s for a timeout Result (5s against Zeek's own timing), but the controller may send it as late as timeout_latest (22s): wait at least timeout_latest`
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
	// The first attempt is valid: it fails when run, which is the point.
	if _, err := LoadFile("testdata/examples/first-attempt.yaml"); err != nil {
		t.Errorf("first attempt: %v", err)
	}
}
