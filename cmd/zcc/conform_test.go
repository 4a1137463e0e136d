package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Ginkgo runs specs once per process, so each conform run happens in a
// child process: this test binary re-executed with ZCC_CONFORM_CHILD set.
func TestMain(m *testing.M) {
	if args := os.Getenv("ZCC_CONFORM_CHILD"); args != "" {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			panic(err)
		}
		if len(os.Args) > 1 && os.Args[1] == "conform" {
			// Re-executed by zcc conform --parallel with real arguments.
			argv = os.Args[1:]
		}
		os.Exit(run(argv, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func conformChild(t *testing.T, args ...string) (string, int) {
	t.Helper()
	enc, _ := json.Marshal(append([]string{"conform"}, args...))
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "ZCC_CONFORM_CHILD="+string(enc))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), 0
}

func TestConformPassesAgainstReferenceController(t *testing.T) {
	dir := t.TempDir()
	out, code := conformChild(t, "--label-filter", "pair:get_instances", "--report-dir", dir)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{`effective configuration`, `(?m)^get_instances\s+pass\s+6 pass, 1 skip$`, `— PASS`, `behaviours: 7 pass`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "conformance-report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Result string
		Seed   int64
		Pairs  []struct{ Pair, Outcome string }
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Result != "pass" || rep.Seed == 0 || len(rep.Pairs) != 1 || rep.Pairs[0].Pair != "get_instances" {
		t.Errorf("report: %+v", rep)
	}
	if _, err := os.Stat(filepath.Join(dir, "junit.xml")); err != nil {
		t.Errorf("no JUnit report: %v", err)
	}
}

func TestConformParallelMergesShards(t *testing.T) {
	dir := t.TempDir()
	out, code := conformChild(t, "--parallel", "2", "--label-filter", "pair:test_timeout || pair:get_instances", "--report-dir", dir)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{`Running the suite in 2 processes`, `(?m)^Ran \d+ specs in 2 processes`, `(?m)^test_timeout\s+pass`, `(?m)^get_instances\s+pass`, `— PASS`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "conformance-report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Result string
		Seed   int64
		Specs  []struct{ Name, Outcome string }
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Result != "pass" || rep.Seed == 0 || len(rep.Specs) < 8 {
		t.Errorf("merged report: %+v", rep)
	}
	junit, err := os.ReadFile(filepath.Join(dir, "junit.xml"))
	if err != nil || strings.Count(string(junit), "<testcase ") < len(rep.Specs) {
		t.Errorf("junit.xml (%v) lacks the shards' testcases", err)
	}
	if _, code := conformChild(t, "--parallel", "2", "--target", "external", "--url", "127.0.0.1:1"); code != exitConformUsage {
		t.Errorf("--parallel 2 against an external target: exit %d, want %d", code, exitConformUsage)
	}
}

func TestConformExitCodes(t *testing.T) {
	// A filter that selects nothing is an error, not a pass.
	if out, code := conformChild(t, "--label-filter", "pair:no-such-pair"); code != exitConformError {
		t.Errorf("empty selection: exit %d, want %d:\n%s", code, exitConformError, out)
	}
	// An unreachable external target is an error, not a failure.
	out, code := conformChild(t, "--target", "external", "--url", "127.0.0.1:1", "--label-filter", "pair:test_timeout", "--timeout-connect", "500ms")
	if code != exitConformError || !strings.Contains(out, "ERROR") {
		t.Errorf("unreachable target: exit %d, want %d:\n%s", code, exitConformError, out)
	}
	// Bad configuration is a usage error.
	if out, code := conformChild(t, "--target", "external"); code != exitConformUsage || !strings.Contains(out, "needs target.url") {
		t.Errorf("external without url: exit %d:\n%s", code, out)
	}
}

func TestConformList(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"conform", "--list"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 40 || !strings.Contains(out.String(), "behavior:quirk.peer-loss") {
		t.Errorf("--list printed %d lines:\n%s", len(lines), out.String())
	}
}
