package scenarios

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	. "github.com/onsi/ginkgo/v2" //nolint:revive

	"github.com/zcc-harness/zcc/suites"
)

// library holds the scenario library: one directory per profile, each
// scenario a YAML file, with the INI configurations they name beside them.
//
//go:embed cc42 mgmt
var library embed.FS

// LibraryFS returns the embedded library's files (cc42/<name>.yaml,
// mgmt/<name>.yaml, …).
func LibraryFS() fs.FS { return library }

// Library loads every scenario of the embedded library, sorted by name.
// Files that do not load are left out and their problems returned.
func Library() ([]*Scenario, error) {
	files, err := fs.Glob(library, "*/*.yaml")
	if err != nil {
		return nil, err
	}
	var out []*Scenario
	var errs ErrorList
	for _, f := range files {
		s, err := load(library, f, "scenarios/"+f)
		if err != nil {
			errs = append(errs, asList(err)...)
			continue
		}
		out = append(out, s)
	}
	errs = append(errs, uniqueNames(out)...)
	sortByName(out)
	if len(errs) > 0 {
		errs.sort()
		return out, errs
	}
	return out, nil
}

// SpecLabels returns the Ginkgo labels of the scenario's spec (besides pair:
// and behavior:, which DefineSpec adds): scenario, scenario:<name>, timeout
// when it waits for the controller's timeout, and the file's own labels.
func (s *Scenario) SpecLabels() []string {
	ls := []string{"scenario", "scenario:" + s.Name}
	if s.waitsForTimeout() && !contains(s.Labels, "timeout") {
		ls = append(ls, "timeout")
	}
	return append(ls, s.Labels...)
}

func (s *Scenario) waitsForTimeout() bool {
	for _, st := range s.Steps {
		var ex *ResponseExpect
		switch {
		case st.Send != nil:
			ex = st.Send.Expect
		case st.ExpectResponse != nil:
			ex = &st.ExpectResponse.ResponseExpect
		}
		if ex != nil && ex.expectsTimeout() {
			return true
		}
	}
	return false
}

// SpecText is the text of the scenario's spec.
func (s *Scenario) SpecText() string { return "scenario " + s.Name }

// Define adds each scenario to the conformance suite as a spec, with
// extra labels. Call it before the suite is registered (from an init
// function, or before suites.Register / suites.Run).
func Define(list []*Scenario, extraLabels ...string) {
	for _, s := range list {
		opts := []suites.SpecOption{suites.WithLabels(append(s.SpecLabels(), extraLabels...)...)}
		if s.Fresh {
			opts = append(opts, suites.NeedsFresh())
		}
		suites.DefineSpec(s.Profile, s.PairName(), s.Covers, s.SpecText(), s.Run, opts...)
	}
}

// defineBroken adds one failing spec per library file that did not load,
// so that a broken library shows up as failures instead of disappearing
// (or crashing every program that imports the package).
func defineBroken(err error) {
	byFile := map[string]ErrorList{}
	for _, e := range asList(err) {
		byFile[e.File] = append(byFile[e.File], e)
	}
	files := make([]string, 0, len(byFile))
	for f := range byFile {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		errs := byFile[f]
		profile := path.Base(path.Dir(f))
		suites.DefineSpec(profile, "scenario", nil, "scenario file "+f+" loads", func(*suites.Env) {
			Fail(fmt.Sprintf("the scenario library is broken:\n%s", strings.TrimSpace(errs.Error())))
		}, suites.WithLabels("scenario"))
	}
}

func init() {
	list, err := Library()
	Define(list)
	if err != nil {
		defineBroken(err)
	}
}
