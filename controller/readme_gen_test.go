package controller

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// The README's generated tables are the code's tables: this test fails
// when they drift apart. Regenerate with ZCC_UPDATE_README=1 go test
// ./controller.
func TestREADMEQuirkTableMatchesCode(t *testing.T) {
	checkREADMEBlock(t, "quirk-table", QuirkTableMarkdown())
}

func TestREADMEMgmtTablesMatchCode(t *testing.T) {
	checkREADMEBlock(t, "quirk-table-mgmt", QuirkTableMarkdownMgmt())
	checkREADMEBlock(t, "replay-deviations", replayDeviationsMarkdown())
}

// replayDeviationsMarkdown renders replayDeviations as a Markdown table.
func replayDeviationsMarkdown() string {
	var b strings.Builder
	b.WriteString("| case | difference | why |\n|---|---|---|\n")
	for _, d := range replayDeviations {
		c := "`" + d.Case + "`"
		if d.Case == "*" {
			c = "every case"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", c, d.What, d.Why)
	}
	return b.String()
}

func checkREADMEBlock(t *testing.T, name, want string) {
	t.Helper()
	begin, end := "<!-- "+name+":begin -->\n", "<!-- "+name+":end -->"
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i, j := strings.Index(text, begin), strings.Index(text, end)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the %q … %q markers", strings.TrimSpace(begin), end)
	}
	if got := text[i+len(begin) : j]; got != want {
		if os.Getenv("ZCC_UPDATE_README") == "1" {
			if err := os.WriteFile("README.md", []byte(text[:i+len(begin)]+want+text[j:]), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("README.md block %s differs from the code; run ZCC_UPDATE_README=1 go test ./controller\n got:\n%s\nwant:\n%s", name, got, want)
	}
}
