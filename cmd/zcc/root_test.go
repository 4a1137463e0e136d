package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRootHelpAndVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--help"}, &out, &errb); code != 0 {
		t.Fatalf("--help exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "Zeek cluster controllers") || !strings.Contains(out.String(), "Usage:") {
		t.Errorf("help output lacks the description or usage:\n%s", out.String())
	}
	out.Reset()
	if code := run([]string{"--version"}, &out, &errb); code != 0 {
		t.Fatalf("--version exit %d", code)
	}
	if !strings.HasPrefix(out.String(), "zcc ") {
		t.Errorf("version output %q", out.String())
	}
	if code := run([]string{"no-such-command"}, &out, &errb); code != 2 {
		t.Errorf("unknown command exit %d, want 2", code)
	}
}
