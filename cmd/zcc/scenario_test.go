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

// scenarioChild runs `zcc <args>` in a child process (Ginkgo runs specs
// once per process; TestMain in conform_test.go dispatches the child).
func scenarioChild(t *testing.T, args ...string) (string, int) {
	t.Helper()
	enc, _ := json.Marshal(args)
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

func runZCC(args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return out.String(), errb.String(), code
}

func TestScenarioValidate(t *testing.T) {
	good := filepath.Join("..", "..", "scenarios", "cc42", "one-of-three-fails.yaml")
	bad := filepath.Join("..", "..", "scenarios", "testdata", "broken", "unknown-key.yaml")
	out, errOut, code := runZCC("scenario", "validate", good)
	if code != 0 || !strings.Contains(out, "ok  "+good+": scenario one-of-three-fails (cc42, 3 agents, 1 steps)") {
		t.Errorf("valid file: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = runZCC("scenario", "validate", good, bad)
	want := bad + `:7:5: agents[0].behavior: unknown key in an agent (did you mean "behaviour"?)` + "\n" +
		bad + `:13:14: steps[0].expect.sucess: unknown key in an expectation (did you mean "success"?)` + "\n"
	if code != 1 || !strings.HasSuffix(out, want) || !strings.Contains(errOut, "2 problems") {
		t.Errorf("broken file: exit %d\nstdout:\n%s\nstderr:\n%s\nwant stdout ending in:\n%s", code, out, errOut, want)
	}
	if _, _, code := runZCC("scenario", "validate"); code != 2 {
		t.Errorf("no files: exit %d, want 2", code)
	}
}

func TestScenarioSchemaAndList(t *testing.T) {
	out, _, code := runZCC("scenario", "schema")
	var schema map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &schema) != nil || schema["$id"] == nil || schema["$defs"] == nil {
		t.Errorf("schema: exit %d, output is not the schema:\n%.300s", code, out)
	}
	out, _, code = runZCC("scenario", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) < 30 || !regexp.MustCompile(`(?m)^one-of-three-fails\s+cc42\s+any\s+Three agents deploy`).MatchString(out) {
		t.Errorf("list: exit %d, %d lines:\n%s", code, len(lines), out)
	}
}

func TestConformIncludesTheLibrary(t *testing.T) {
	out, _, code := runZCC("conform", "--list")
	if code != 0 || !strings.Contains(out, "scenario fleet-100-seeded-failures [pair:set_configuration, behavior:set-config.several-fail, behavior:set-config.one-fails, scenario, scenario:fleet-100-seeded-failures") {
		t.Errorf("conform --list lacks the library (exit %d):\n%s", code, out)
	}
}

func TestScenarioRunPassesByNameAndFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join("..", "..", "scenarios", "cc42", "one-of-three-fails.yaml")
	// A generous request timeout keeps the deployments clear of it on a
	// loaded machine; nothing here waits for a timeout.
	out, code := scenarioChild(t, "scenario", "run", file, "late-joiner", "--report-dir", dir, "--timeout-controller-request", "1s")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{`zcc scenario run: one-of-three-fails, late-joiner`, `Ran 2 of \d+ Specs`, `(?m)^set_configuration\s+pass\s+2 pass$`, `— PASS`} {
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
		Specs  []struct{ Name, Outcome string }
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Result != "pass" || len(rep.Specs) != 2 || rep.Specs[0].Name != "scenario late-joiner" {
		t.Errorf("report: %+v", rep)
	}
}

func TestScenarioRunFailsWithTheStep(t *testing.T) {
	file := filepath.Join(t.TempDir(), "wrong.yaml")
	src := `name: wrong-expectation
description: Expects success from an agent that fails.
profile: cc42
covers: [set-config.one-fails]
agents:
  - name: a
  - name: b
    behaviour: {on: {set_configuration_request: {action: fail, node: b-worker, error: boom}}}
steps:
  - send: set_configuration
    config: {instances: [a, b]}
    expect:
      results:
        - {instance: a, success: true}
        - {instance: b, success: true}
`
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := scenarioChild(t, "scenario", "run", file)
	if code != exitConformFail {
		t.Fatalf("exit %d, want %d:\n%s", code, exitConformFail, out)
	}
	for _, want := range []string{
		"steps[0] (" + file + ":10): the Results of the set_configuration_response to set_configuration",
		`error="node b-worker failed: boom"`,
		"transcript ", // the fake agents' transcripts are attached
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestScenarioRunRejectsBadInput(t *testing.T) {
	bad := filepath.Join("..", "..", "scenarios", "testdata", "broken", "catalogue.yaml")
	out, code := scenarioChild(t, "scenario", "run", bad)
	if code != exitConformUsage || !strings.Contains(out, bad+`:4:10: covers[0]: "set-config.one-fail" is not in the cc42 behaviour catalogue`) {
		t.Errorf("broken file: exit %d:\n%s", code, out)
	}
	out, code = scenarioChild(t, "scenario", "run", "no-such-scenario")
	if code != exitConformUsage || !strings.Contains(out, "no-such-scenario: no such file, and no library scenario of that name") {
		t.Errorf("unknown name: exit %d:\n%s", code, out)
	}
}

// TestScenarioRunPicksTheQuirkMode: a fixed-mode scenario against the
// in-process controller runs it in fixed mode instead of skipping.
func TestScenarioRunPicksTheQuirkMode(t *testing.T) {
	out, code := scenarioChild(t, "scenario", "run", "zero-instances-fixed", "--timeout-controller-request", "1s")
	if code != 0 || !strings.Contains(out, "quirks: fixed") || !regexp.MustCompile(`(?m)^set_configuration\s+pass\s+1 pass$`).MatchString(out) {
		t.Errorf("exit %d:\n%s", code, out)
	}
	dir := t.TempDir()
	out, code = scenarioChild(t, "scenario", "run", "zero-instances-fixed", "--quirks", "zeek42", "--report-dir", dir)
	raw, _ := os.ReadFile(filepath.Join(dir, "conformance-report.json"))
	// The only scenario is skipped, so nothing was tested: exit 3, not 0.
	if code != exitConformError || !strings.Contains(string(raw), `"reason": "scenario expects the fixed quirk mode; the target declares zeek42"`) || !strings.Contains(out, "nothing was tested") {
		t.Errorf("explicit zeek42: exit %d:\n%s\nreport:\n%s", code, out, raw)
	}
}
