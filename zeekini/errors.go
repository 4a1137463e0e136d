package zeekini

import (
	"strconv"
	"strings"
)

// Error is one problem in a configuration file, at a line.
type Error struct {
	File string
	Line int
	Msg  string
	// ZeekClient marks a problem that zeek-client 1.5 itself reports (in
	// DialectMgmt): Msg is then zeek-client's exact wording, which
	// `zcc client` prints as zeek-client does, without the location.
	ZeekClient bool
}

// Error renders "file:line: what is wrong".
func (e *Error) Error() string {
	return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
}

// ErrorList is every problem Parse found, in line order, one per line of
// text. errors.As(err, &*Error) finds the first.
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
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}
