package api

import (
	"fmt"
	"strconv"
	"strings"
)

// Decoding errors. Profile.Decode returns exactly one of *UnknownEventError,
// *ArgCountError or *ArgError; an *ArgError wraps a *ValueError that says
// where inside the argument the problem is. The record helpers
// (DecodeConfiguration, DecodeResult, …) return a *ValueError directly.
//
// Every Error() text is self-contained (event, argument, field path and
// problem) because the controller copies it into an error frame's context.

// UnknownEventError: the event name is not part of the profile, either
// because no dialect has it or because it belongs to another dialect.
type UnknownEventError struct {
	Name    string // the fully qualified name as received
	Profile string // the profile that was asked
}

func (e *UnknownEventError) Error() string {
	return fmt.Sprintf("unknown event %q in profile %s", e.Name, e.Profile)
}

// ArgCountError: the event carries the wrong number of arguments. Zeek
// drops such events (§1.2): the count must match exactly, &default
// parameters included.
type ArgCountError struct {
	Event  string   // fully qualified event name
	Params []string // the declared parameters, in order
	Got    int
}

func (e *ArgCountError) Error() string {
	return fmt.Sprintf("%s: want %d arguments (%s), got %d",
		shortName(e.Event), len(e.Params), strings.Join(e.Params, ", "), e.Got)
}

// ArgError: argument Index (0-based) of Event could not be converted to its
// declared type. Err is usually a *ValueError locating the problem inside
// the argument.
type ArgError struct {
	Event string // fully qualified event name
	Index int
	Name  string // the parameter's name in the Zeek declaration
	Err   error
}

func (e *ArgError) Error() string {
	return fmt.Sprintf("%s arg %d (%s): %v", shortName(e.Event), e.Index, e.Name, e.Err)
}

func (e *ArgError) Unwrap() error { return e.Err }

// ValueError says what is wrong with a broker value and where. Path is
// empty when the value itself is at fault; otherwise it is made of
// segments joined by spaces:
//
//   - "field 2 (p)": a record field, by declaration index and name;
//   - "Node 3": element 3 of a collection of records, in the order decoding
//     sees it (Broker's sorted order for sets). For a record-typed set
//     field (Configuration's instances and nodes, Node's options) the
//     element label stands in for the field label: "Node 3 field 2 (p)";
//   - "element 1": an element of a vector or set of scalars;
//   - "entry 0 key", "entry 0 value": a table entry, in sorted key order.
type ValueError struct {
	Path string
	Msg  string

	// elem marks a Path that starts with a record element label, so that
	// the enclosing field does not add its own label.
	elem bool
}

func (e *ValueError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

func valueErrorf(format string, args ...any) *ValueError {
	return &ValueError{Msg: fmt.Sprintf(format, args...)}
}

// within prefixes err's path with seg. Errors that are not *ValueError
// (there should be none) are converted so the path is not lost.
func within(err error, seg string) *ValueError {
	ve, ok := err.(*ValueError)
	if !ok {
		ve = &ValueError{Msg: err.Error()}
	}
	if ve.Path == "" {
		ve.Path = seg
	} else {
		ve.Path = seg + " " + ve.Path
	}
	return ve
}

// inElement labels err as coming from element i of a record collection.
func inElement(err error, record string, i int) *ValueError {
	ve := within(err, record+" "+strconv.Itoa(i))
	ve.elem = true
	return ve
}

// inField labels err as coming from field i (name) of a record, unless the
// path already names a record element of that field.
func inField(err error, i int, name string) *ValueError {
	ve, ok := err.(*ValueError)
	if ok && ve.elem {
		ve.elem = false
		return ve
	}
	return within(err, "field "+strconv.Itoa(i)+" ("+name+")")
}

func shortName(name string) string {
	if i := strings.LastIndex(name, "::"); i >= 0 {
		return name[i+2:]
	}
	return name
}
