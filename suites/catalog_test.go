package suites

import (
	"sort"
	"testing"

	"github.com/zcc-harness/zcc/suites/catalog"
)

// TestCatalogueCoverage keeps the behaviour catalogue and the specs in
// step: every catalogued behaviour has a spec, and no spec names a
// behaviour the catalogue does not have.
func TestCatalogueCoverage(t *testing.T) {
	for _, profile := range []string{"cc42", "mgmt"} {
		cat, err := catalog.Load(profile)
		if err != nil {
			t.Fatal(err)
		}
		known := map[string]bool{}
		for _, b := range cat {
			known[b.ID] = true
		}
		covered := coveredBehaviors(profile)
		var missing, unknown []string
		for _, b := range cat {
			if len(covered[b.ID]) == 0 {
				missing = append(missing, b.ID)
			}
		}
		for id, specs := range covered {
			if !known[id] {
				unknown = append(unknown, id+" (named by "+specs[0]+")")
			}
		}
		sort.Strings(missing)
		sort.Strings(unknown)
		if len(missing) > 0 {
			t.Errorf("%s: catalogued behaviours without a spec: %v", profile, missing)
		}
		if len(unknown) > 0 {
			t.Errorf("%s: specs name behaviours the catalogue lacks: %v", profile, unknown)
		}
	}
}

// TestSpecsAreLabelled: every spec names a pair and at least one
// behaviour, and spec texts are unique (reports key on them).
func TestSpecsAreLabelled(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range registry {
		if d.pair == "" || len(d.behaviors) == 0 {
			t.Errorf("spec %q lacks a pair or a behaviour", d.text)
		}
		key := d.profile + "/" + d.text
		if seen[key] {
			t.Errorf("duplicate spec text %q", key)
		}
		seen[key] = true
	}
}
