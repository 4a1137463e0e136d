package zeekini

import "errors"

// Python's shlex errors, in its words (zeek-client prints them).
var (
	errNoClosingQuotation = errors.New("No closing quotation")
	errNoEscapedCharacter = errors.New("No escaped character")
)

// shlexSplit splits s as Python's shlex.split(s) does (POSIX mode, no
// comments), which zeek-client 1.5 uses for the scripts and env keys:
// words separated by space, tab, CR or LF; single quotes take everything
// literally; double quotes let a backslash escape only '"' and '\';
// outside quotes a backslash escapes any character; "" is an empty word.
func shlexSplit(s string) ([]string, error) {
	const (
		stateSpace = iota
		stateWord
		stateSingle
		stateDouble
		stateEscape
	)
	var (
		out    []string
		token  []rune
		quoted bool
		state  = stateSpace
		// escapedFrom is where an escape returns to: stateWord or
		// stateDouble.
		escapedFrom = stateWord
	)
	emit := func() {
		if len(token) > 0 || quoted {
			out = append(out, string(token))
		}
		token, quoted = token[:0:0], false
	}
	isSpace := func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\n' }
	for _, r := range s {
		switch state {
		case stateSpace, stateWord:
			switch {
			case isSpace(r):
				if state == stateWord {
					emit()
				}
				state = stateSpace
			case r == '\'':
				state, quoted = stateSingle, true
			case r == '"':
				state, quoted = stateDouble, true
			case r == '\\':
				state, escapedFrom = stateEscape, stateWord
			default:
				token = append(token, r)
				state = stateWord
			}
		case stateSingle:
			if r == '\'' {
				state = stateWord
			} else {
				token = append(token, r)
			}
		case stateDouble:
			switch r {
			case '"':
				state = stateWord
			case '\\':
				state, escapedFrom = stateEscape, stateDouble
			default:
				token = append(token, r)
			}
		case stateEscape:
			// Inside double quotes a backslash escapes only '"' and '\';
			// before anything else it stays.
			if escapedFrom == stateDouble && r != '"' && r != '\\' {
				token = append(token, '\\')
			}
			token = append(token, r)
			state = escapedFrom
		}
	}
	switch state {
	case stateSingle, stateDouble:
		return nil, errNoClosingQuotation
	case stateEscape:
		return nil, errNoEscapedCharacter
	}
	emit()
	return out, nil
}
