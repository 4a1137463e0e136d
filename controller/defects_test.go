package controller

import (
	"strings"
	"testing"
)

func TestDefectNamesRoundTrip(t *testing.T) {
	all := Defects()
	if len(all) < 12 {
		t.Fatalf("only %d defects: the suite self-test needs at least 12", len(all))
	}
	for _, d := range all {
		back, err := ParseDefect(d.String())
		if err != nil || back != d {
			t.Errorf("ParseDefect(%q) = %v, %v", d, back, err)
		}
	}
	if _, err := ParseDefect("no-such-defect"); err == nil || !strings.Contains(err.Error(), "no-pending-gate") {
		t.Errorf("unknown defect error = %v, want it to list the known ones", err)
	}
	if _, err := newDefectSet([]Defect{numDefects}); err == nil {
		t.Error("an out-of-range defect was accepted")
	}
}
