package scenarios

import (
	"fmt"
	"sort"
	"strings"
)

// Pos is a position in a scenario file, 1-based.
type Pos struct {
	Line, Col int
}

// Error is one problem in a scenario file: "file:line:col: what is wrong".
type Error struct {
	File string
	Pos  Pos
	Msg  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Pos.Line, e.Pos.Col, e.Msg)
}

// ErrorList is every problem found in one or more scenario files, in file
// and position order. errors.As finds an individual *Error.
type ErrorList []*Error

func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes the individual errors to errors.Is and errors.As.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

func (l ErrorList) sort() {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line < b.Pos.Line
		}
		return a.Pos.Col < b.Pos.Col
	})
}

// maxErrors bounds the problems reported for one file: past it, more
// would bury the first ones rather than help.
const maxErrors = 100

// errorSink collects the errors of one file. Errors are keyed by path so
// that a semantic check does not repeat what decoding already reported
// about the same spot.
type errorSink struct {
	file  string
	errs  ErrorList
	paths map[string]bool
}

// add records a problem with the value at path, prefixing the message
// with the path.
func (s *errorSink) add(pos Pos, path, format string, args ...any) {
	s.addKeyed(pos, path, path, format, args...)
}

// addKeyed records a problem shown under the path prefix and
// deduplicated under key.
func (s *errorSink) addKeyed(pos Pos, key, prefix, format string, args ...any) {
	if s.paths == nil {
		s.paths = map[string]bool{}
	}
	if key != "" && s.paths[key] {
		return
	}
	if key != "" {
		s.paths[key] = true
	}
	if len(s.errs) == maxErrors {
		s.errs = append(s.errs, &Error{File: s.file, Pos: pos, Msg: "too many problems; stopping here"})
	}
	if len(s.errs) > maxErrors {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if prefix != "" {
		msg = prefix + ": " + msg
	}
	s.errs = append(s.errs, &Error{File: s.file, Pos: pos, Msg: msg})
}
