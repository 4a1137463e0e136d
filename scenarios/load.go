package scenarios

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// maxFileSize bounds a scenario file: the largest library scenario is a
// few kilobytes.
const maxFileSize = 1 << 20

// LoadFile reads and validates the scenario file at path. A zeek-client
// INI file it names is read from the same directory. The error, if any, is
// an ErrorList naming file, line and column of every problem.
func LoadFile(file string) (*Scenario, error) {
	dir, base := filepath.Split(file)
	if dir == "" {
		dir = "."
	}
	return load(os.DirFS(dir), base, file)
}

// LoadFS reads and validates the scenario at name in fsys.
func LoadFS(fsys fs.FS, name string) (*Scenario, error) {
	return load(fsys, name, name)
}

// load reads name from fsys and reports problems under display.
func load(fsys fs.FS, name, display string) (*Scenario, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, ErrorList{{File: display, Pos: Pos{1, 1}, Msg: fmt.Sprintf("cannot read the file: %v", errors.Unwrap(err))}}
	}
	defer f.Close()
	src, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, ErrorList{{File: display, Pos: Pos{1, 1}, Msg: fmt.Sprintf("cannot read the file: %v", err)}}
	}
	if len(src) > maxFileSize {
		return nil, ErrorList{{File: display, Pos: Pos{1, 1}, Msg: fmt.Sprintf("larger than %d bytes: not a scenario", maxFileSize)}}
	}
	return Parse(display, src, fsys, path.Dir(name))
}

// Parse decodes and validates a scenario from src. name labels errors;
// INI files it names are read from dir in fsys (fsys may be nil when it
// names none).
func Parse(name string, src []byte, fsys fs.FS, dir string) (*Scenario, error) {
	sink := &errorSink{file: name}
	file, err := parser.ParseBytes(src, 0, parser.AllowDuplicateMapKey())
	if err != nil {
		var se *yaml.SyntaxError
		if errors.As(err, &se) && se.Token != nil {
			return nil, ErrorList{{File: name, Pos: Pos{se.Token.Position.Line, se.Token.Position.Column}, Msg: "YAML syntax: " + se.Message}}
		}
		return nil, ErrorList{{File: name, Pos: Pos{1, 1}, Msg: "YAML syntax: " + err.Error()}}
	}
	var docs []ast.Node
	for _, d := range file.Docs {
		if d != nil && d.Body != nil {
			docs = append(docs, d.Body)
		}
	}
	switch {
	case len(docs) == 0:
		return nil, ErrorList{{File: name, Pos: Pos{1, 1}, Msg: "empty file: a scenario needs name, description, profile, covers and steps"}}
	case len(docs) > 1:
		sink.add(nodePos(docs[1]), "", "a file holds one scenario, but this is a second YAML document")
	}
	s := &Scenario{file: name}
	dec := newDecoder(sink)
	dec.collectAnchors(docs[0])
	dec.visits = 0
	dec.decode(docs[0], reflect.ValueOf(s).Elem(), "")
	s.pos, s.keyPos = dec.pos, dec.keyPos
	if dec.visits < maxVisits {
		validate(s, sink, fsys, dir)
	}
	if len(sink.errs) > 0 {
		sink.errs.sort()
		return nil, sink.errs
	}
	return s, nil
}

// LoadFiles loads several scenario files and checks that their names are
// unique. It returns the scenarios that loaded, and every problem.
func LoadFiles(files ...string) ([]*Scenario, error) {
	var out []*Scenario
	var errs ErrorList
	for _, f := range files {
		s, err := LoadFile(f)
		if err != nil {
			errs = append(errs, asList(err)...)
			continue
		}
		out = append(out, s)
	}
	errs = append(errs, uniqueNames(out)...)
	if len(errs) > 0 {
		return out, errs
	}
	return out, nil
}

func asList(err error) ErrorList {
	var list ErrorList
	if errors.As(err, &list) {
		return list
	}
	return ErrorList{{Pos: Pos{1, 1}, Msg: err.Error()}}
}

// uniqueNames reports scenarios that share a name (spec texts and labels
// key on it).
func uniqueNames(list []*Scenario) ErrorList {
	var errs ErrorList
	seen := map[string]*Scenario{}
	for _, s := range list {
		if prev, dup := seen[s.Name]; dup {
			errs = append(errs, &Error{File: s.file, Pos: s.at("name"), Msg: fmt.Sprintf("name: %q is already the name of %s", s.Name, prev.file)})
			continue
		}
		seen[s.Name] = s
	}
	return errs
}

// File returns the name the scenario was loaded under.
func (s *Scenario) File() string { return s.file }

// at returns the position of the value at path.
func (s *Scenario) at(p string) Pos {
	c := checker{s: s}
	return c.at(p)
}

// Where returns "file:line" of a step, for failure messages.
func (s *Scenario) Where(step int) string {
	p := s.at(fmt.Sprintf("steps[%d]", step))
	return fmt.Sprintf("%s:%d", s.file, p.Line)
}

// Summary is the first sentence of the description.
func (s *Scenario) Summary() string {
	para, _, _ := strings.Cut(strings.TrimSpace(s.Description), "\n\n")
	text := strings.Join(strings.Fields(para), " ")
	if i := strings.Index(text, ". "); i >= 0 {
		return text[:i+1]
	}
	return text
}

// PairName is the request/response pair the scenario reports under.
func (s *Scenario) PairName() string {
	if s.Pair != "" {
		return s.Pair
	}
	for _, st := range s.Steps {
		if st.Send != nil {
			return st.Send.Send
		}
	}
	return "scenario"
}

// sortByName orders scenarios by name.
func sortByName(list []*Scenario) {
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
}
