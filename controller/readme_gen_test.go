package controller

import (
	"os"
	"strings"
	"testing"
)

// The README's quirk table is the code's table: this test fails when they
// drift apart. Regenerate with ZCC_UPDATE_README=1 go test ./controller.
func TestREADMEQuirkTableMatchesCode(t *testing.T) {
	const begin, end = "<!-- quirk-table:begin -->\n", "<!-- quirk-table:end -->"
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i, j := strings.Index(text, begin), strings.Index(text, end)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the %q … %q markers", strings.TrimSpace(begin), end)
	}
	want := QuirkTableMarkdown()
	if got := text[i+len(begin) : j]; got != want {
		if os.Getenv("ZCC_UPDATE_README") == "1" {
			if err := os.WriteFile("README.md", []byte(text[:i+len(begin)]+want+text[j:]), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("README.md quirk table differs from Quirks; run ZCC_UPDATE_README=1 go test ./controller\n got:\n%s\nwant:\n%s", got, want)
	}
}
