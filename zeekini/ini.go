package zeekini

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"
)

// maxLine bounds one line of input; a longer line is certainly not a
// configuration and would otherwise let a hostile file use unbounded memory.
const maxLine = 1 << 20

// maxErrors bounds how many problems one parse reports.
const maxErrors = 50

// file is an INI file as Python's configparser (the module zeek-client uses)
// splits it, before any meaning is given to sections or keys.
type file struct {
	sections []*section
}

type section struct {
	name    string
	line    int
	entries []entry
}

// entry is one "key = value", "key: value" or bare "key" line.
type entry struct {
	key      string // as written, trimmed
	value    string // trimmed; "" when hasValue is false
	hasValue bool
	line     int
	// indent is the key line's indentation, and blanks counts blank lines
	// seen since its value last grew (for continuation lines).
	indent int
	blanks int
}

// readRules are the differences between the dialects' readers.
type readRules struct {
	// continuations accepts configparser's multi-line values: a line
	// indented deeper than its key's line continues that key's value
	// (joined with "\n"; blank lines in between are kept).
	continuations bool
}

// lookup returns the section with the given name.
func (f *file) lookup(name string) *section {
	for _, s := range f.sections {
		if s.name == name {
			return s
		}
	}
	return nil
}

// errorList collects problems, each with its line.
type errorList struct {
	name     string
	errs     ErrorList
	overflow int // line of the first problem not recorded
}

func (l *errorList) add(line int, format string, args ...any) {
	if len(l.errs) >= maxErrors {
		if l.overflow == 0 {
			l.overflow = line
		}
		return
	}
	l.errs = append(l.errs, &Error{File: l.name, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// addZeekClient records a problem that zeek-client 1.5 reports itself,
// in its words.
func (l *errorList) addZeekClient(line int, msg string) {
	l.add(line, "%s", msg)
	if n := len(l.errs); n > 0 && l.errs[n-1].Msg == msg && l.errs[n-1].Line == line {
		l.errs[n-1].ZeekClient = true
	}
}

// err returns the problems in line order, or nil.
func (l *errorList) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	sort.SliceStable(l.errs, func(i, j int) bool { return l.errs[i].Line < l.errs[j].Line })
	if l.overflow != 0 {
		return append(l.errs, &Error{File: l.name, Line: l.overflow, Msg: "too many errors; stopping"})
	}
	return l.errs
}

// readFile splits r into sections and entries with configparser's rules
// (comment lines start with '#' or ';', the first '=' or ':' separates key
// and value, whitespace around both is dropped, no inline comments), but
// rejects what configparser would silently accept and zeek-client then
// misreads: entries before any section, text after a section header,
// indented continuation lines, duplicate sections.
func readFile(errs *errorList, r io.Reader, rules readRules) *file {
	f := &file{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	var cur *section
	var prev *entry // last entry of cur, for continuation detection
	discard := &section{}
	lineNo := 0
	for sc.Scan() {
		lineNo++
		raw := sc.Bytes()
		if lineNo == 1 {
			raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))
		}
		raw = bytes.TrimSuffix(raw, []byte("\r"))
		if !utf8.Valid(raw) {
			errs.add(lineNo, "not valid UTF-8")
			continue
		}
		line := string(raw)
		trimmed := strings.TrimSpace(line)
		if trimmed == "" {
			if prev != nil {
				prev.blanks++
			}
			continue
		}
		if strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, ";") {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " \t"))
		if rules.continuations && prev != nil && indent > prev.indent {
			if !prev.hasValue {
				errs.add(lineNo, "indented line continues %q from line %d, which has no value", prev.key, prev.line)
				continue
			}
			prev.value += strings.Repeat("\n", prev.blanks) + "\n" + trimmed
			prev.blanks = 0
			continue
		}
		indented := indent > 0
		if !rules.continuations && indented && prev != nil {
			errs.add(lineNo, "indented line continues the value of %q from line %d; multi-line values are not supported", prev.key, prev.line)
			continue
		}
		if strings.HasPrefix(trimmed, "[") {
			prev = nil
			name, ok := parseHeader(errs, lineNo, trimmed)
			if !ok {
				cur = discard
				continue
			}
			if first := f.lookup(name); first != nil {
				errs.add(lineNo, "duplicate section [%s] (first on line %d)", name, first.line)
				cur = discard
				continue
			}
			cur = &section{name: name, line: lineNo}
			f.sections = append(f.sections, cur)
			continue
		}
		e := parseEntry(trimmed, lineNo)
		e.indent = indent
		if e.key == "" {
			errs.add(lineNo, "missing key before %q", trimmed[:1])
			continue
		}
		if cur == nil {
			errs.add(lineNo, "%q is outside any section; the file must start with a section header such as [instances]", e.key)
			cur = discard
			continue
		}
		cur.entries = append(cur.entries, e)
		prev = &cur.entries[len(cur.entries)-1]
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			errs.add(lineNo+1, "line longer than %d bytes", maxLine)
		} else {
			errs.add(lineNo+1, "read error: %v", err)
		}
	}
	return f
}

// parseHeader reads "[name]"; the name is trimmed and must be non-empty.
func parseHeader(errs *errorList, lineNo int, trimmed string) (string, bool) {
	end := strings.IndexByte(trimmed, ']')
	if end < 0 {
		errs.add(lineNo, "section header %q lacks its closing ']'", trimmed)
		return "", false
	}
	if rest := strings.TrimSpace(trimmed[end+1:]); rest != "" {
		errs.add(lineNo, "unexpected text %q after section header", rest)
		return "", false
	}
	name := strings.TrimSpace(trimmed[1:end])
	if name == "" {
		errs.add(lineNo, "empty section name")
		return "", false
	}
	if strings.ContainsRune(name, '[') {
		errs.add(lineNo, "section name %q contains '['", name)
		return "", false
	}
	return name, true
}

// parseEntry splits a key line at the first '=' or ':', as configparser's
// default delimiters do.
func parseEntry(trimmed string, lineNo int) entry {
	i := strings.IndexAny(trimmed, "=:")
	if i < 0 {
		return entry{key: trimmed, line: lineNo}
	}
	return entry{
		key:      strings.TrimSpace(trimmed[:i]),
		value:    strings.TrimSpace(trimmed[i+1:]),
		hasValue: true,
		line:     lineNo,
	}
}
