// Package catalog holds the behaviour catalogues that the conformance
// suites cover: one Markdown file per profile, each behaviour with a stable
// ID. Specs name the IDs they check (label "behavior:<ID>"); reports list
// every ID with its outcome; a unit test keeps catalogue and specs in step.
package catalog

import (
	"bufio"
	"bytes"
	"embed"
	"fmt"
	"strings"
)

//go:embed behaviors-*.md
var files embed.FS

// Behavior is one catalogued behaviour.
type Behavior struct {
	ID      string // e.g. "set-config.pending-gate"
	Section string // heading it appears under, e.g. "set_configuration (C §5.6, §5.7, §5.10)"
	Text    string // what a conforming controller does
	// Ext marks zcc extensions a third-party controller may declare
	// unsupported.
	Ext bool
	// Quirk marks Zeek 4.2 behaviour that the fixed mode repairs; Zeek42
	// and Fixed say what each mode does.
	Quirk         bool
	Zeek42, Fixed string
}

// Load parses the catalogue of a profile ("cc42").
func Load(profile string) ([]Behavior, error) {
	name := "behaviors-" + profile + ".md"
	raw, err := files.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("no behaviour catalogue for profile %q", profile)
	}
	return parse(name, raw)
}

// Source returns the catalogue file's text.
func Source(profile string) ([]byte, error) {
	return files.ReadFile("behaviors-" + profile + ".md")
}

func parse(name string, raw []byte) ([]Behavior, error) {
	var (
		out     []Behavior
		section string
		seen    = map[string]int{}
	)
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(text, "## ") {
			section = strings.TrimPrefix(text, "## ")
			continue
		}
		if !strings.HasPrefix(text, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(text, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		id := cells[0]
		if id == "ID" || strings.HasPrefix(id, "---") || id == "" {
			continue
		}
		if !strings.Contains(id, ".") || strings.ContainsAny(id, " `") {
			return nil, fmt.Errorf("%s:%d: %q is not a behaviour ID (want area.name)", name, line, id)
		}
		if prev, dup := seen[id]; dup {
			return nil, fmt.Errorf("%s:%d: behaviour %s already defined on line %d", name, line, id, prev)
		}
		seen[id] = line
		b := Behavior{ID: id, Section: section}
		switch len(cells) {
		case 2:
			b.Text = cells[1]
			if rest, ok := strings.CutPrefix(b.Text, "ext:"); ok {
				b.Ext = true
				b.Text = strings.TrimSpace(rest)
			}
		case 3:
			b.Quirk = true
			b.Zeek42, b.Fixed = cells[1], cells[2]
			b.Text = "zeek42: " + cells[1] + "; fixed: " + cells[2]
		default:
			return nil, fmt.Errorf("%s:%d: behaviour %s has %d columns, want 2 (ID, behaviour) or 3 (ID, zeek42, fixed)", name, line, id, len(cells))
		}
		if strings.HasPrefix(id, "quirk.") != b.Quirk {
			return nil, fmt.Errorf("%s:%d: %s: quirk IDs (quirk.*) and only they have zeek42/fixed columns", name, line, id)
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no behaviours found", name)
	}
	return out, sc.Err()
}
