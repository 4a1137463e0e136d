package broker

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// DefaultMaxDepth is how deeply Broker values may nest before decoding
// fails. Real messages nest about ten levels (event > args > Configuration >
// set > Node > table); the limit only stops hostile input from exhausting
// the stack.
const DefaultMaxDepth = 64

// DecodeError says what was wrong with a JSON text and where: the byte
// offset and the JSON path of the offending element.
type DecodeError struct {
	Offset int    // byte offset into the input
	Path   string // JSON path, e.g. "$.data[2].data[1]"
	Msg    string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("at byte %d (%s): %s", e.Offset, e.Path, e.Msg)
}

// pathSeg is one step of the JSON path kept while decoding; it is only
// rendered into a string when an error is reported.
type pathSeg struct {
	key string // object key, or "" for an array index
	idx int
}

type decoder struct {
	data     []byte
	pos      int
	depth    int
	maxDepth int
	path     []pathSeg
}

func newDecoder(data []byte) *decoder {
	return &decoder{data: data, maxDepth: DefaultMaxDepth, path: make([]pathSeg, 0, 16)}
}

func (d *decoder) pathString() string {
	var b strings.Builder
	b.WriteString("$")
	for _, s := range d.path {
		if s.key != "" {
			b.WriteString(".")
			b.WriteString(s.key)
		} else {
			b.WriteString("[")
			b.WriteString(strconv.Itoa(s.idx))
			b.WriteString("]")
		}
	}
	return b.String()
}

func (d *decoder) errorf(format string, args ...any) error {
	return &DecodeError{Offset: d.pos, Path: d.pathString(), Msg: fmt.Sprintf(format, args...)}
}

func (d *decoder) push(key string, idx int) { d.path = append(d.path, pathSeg{key: key, idx: idx}) }
func (d *decoder) pop()                     { d.path = d.path[:len(d.path)-1] }

func (d *decoder) ws() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// describe names the JSON token at the current position for error messages.
func (d *decoder) describe() string {
	if d.pos >= len(d.data) {
		return "end of input"
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == '"':
		return "string"
	case c == 't' || c == 'f':
		return "boolean"
	case c == 'n':
		return "null"
	case c == '-' || (c >= '0' && c <= '9'):
		return "number"
	default:
		return fmt.Sprintf("unexpected character %q", c)
	}
}

func (d *decoder) expect(c byte) error {
	d.ws()
	if d.pos >= len(d.data) {
		return d.errorf("unexpected end of input, want %q", c)
	}
	if d.data[d.pos] != c {
		return d.errorf("want %q, got %s", c, d.describe())
	}
	d.pos++
	return nil
}

// DecodeValue decodes one typed value {"@data-type": …, "data": …}; only
// whitespace may follow it.
func DecodeValue(data []byte) (Value, error) {
	d := newDecoder(data)
	v, err := d.value()
	if err != nil {
		return Value{}, err
	}
	if err := d.end(); err != nil {
		return Value{}, err
	}
	return v, nil
}

func (d *decoder) end() error {
	d.ws()
	if d.pos != len(d.data) {
		return d.errorf("unexpected data after the JSON value")
	}
	return nil
}

// value decodes a typed value object at the current position.
func (d *decoder) value() (Value, error) {
	d.ws()
	if d.pos >= len(d.data) {
		return Value{}, d.errorf("unexpected end of input, want a typed value object")
	}
	if d.data[d.pos] != '{' {
		return Value{}, d.errorf(`want a typed value object {"@data-type":…,"data":…}, got %s`, d.describe())
	}
	d.depth++
	if d.depth > d.maxDepth {
		return Value{}, d.errorf("values nested deeper than %d levels", d.maxDepth)
	}
	defer func() { d.depth-- }()
	d.pos++
	var (
		kind    Kind
		haveTag bool
		dataPos = -1
		v       Value
		haveVal bool
	)
	d.ws()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		return Value{}, d.errorf(`typed value lacks "@data-type" and "data"`)
	}
	for {
		d.ws()
		key, err := d.strBytes()
		if err != nil {
			return Value{}, err
		}
		if err := d.expect(':'); err != nil {
			return Value{}, err
		}
		d.ws()
		switch string(key) {
		case "@data-type":
			if haveTag {
				return Value{}, d.errorf(`duplicate "@data-type" key`)
			}
			d.push("@data-type", 0)
			kind, err = d.tag()
			d.pop()
			if err != nil {
				return Value{}, err
			}
			haveTag = true
			if dataPos >= 0 { // "data" came first: go back and decode it now
				save := d.pos
				d.pos = dataPos
				d.push("data", 0)
				v, err = d.payload(kind)
				d.pop()
				if err != nil {
					return Value{}, err
				}
				haveVal = true
				d.pos = save
			}
		case "data":
			if haveVal || dataPos >= 0 {
				return Value{}, d.errorf(`duplicate "data" key`)
			}
			if haveTag {
				d.push("data", 0)
				v, err = d.payload(kind)
				d.pop()
				if err != nil {
					return Value{}, err
				}
				haveVal = true
			} else {
				dataPos = d.pos
				if err := d.skip(); err != nil {
					return Value{}, err
				}
			}
		default:
			// Unknown keys carry nothing Broker reads; skip them.
			if err := d.skip(); err != nil {
				return Value{}, err
			}
		}
		d.ws()
		if d.pos >= len(d.data) {
			return Value{}, d.errorf("unexpected end of input inside a typed value")
		}
		if d.data[d.pos] == ',' {
			d.pos++
			continue
		}
		if d.data[d.pos] == '}' {
			d.pos++
			break
		}
		return Value{}, d.errorf("want ',' or '}' in a typed value, got %s", d.describe())
	}
	if !haveTag {
		return Value{}, d.errorf(`typed value lacks "@data-type"`)
	}
	if !haveVal {
		return Value{}, d.errorf(`typed value lacks "data"`)
	}
	return v, nil
}

func (d *decoder) tag() (Kind, error) {
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		return 0, d.errorf(`"@data-type" must be a string, got %s`, d.describe())
	}
	s, err := d.strBytes()
	if err != nil {
		return 0, err
	}
	k, ok := kindFromTagBytes(s)
	if !ok {
		return 0, d.errorf("unknown @data-type %q", s)
	}
	return k, nil
}

// payload decodes the "data" member for a known kind.
func (d *decoder) payload(kind Kind) (Value, error) {
	d.ws()
	start := d.pos
	switch kind {
	case KindNone:
		if d.pos >= len(d.data) || d.data[d.pos] != '{' {
			return Value{}, d.errorf("none payload must be {}, got %s", d.describe())
		}
		d.pos++
		d.ws()
		if d.pos >= len(d.data) || d.data[d.pos] != '}' {
			return Value{}, d.errorf("none payload must be an empty object {}")
		}
		d.pos++
		return Value{}, nil
	case KindBoolean:
		switch {
		case d.lit("true"):
			return Bool(true), nil
		case d.lit("false"):
			return Bool(false), nil
		}
		return Value{}, d.errorf("boolean payload must be true or false, got %s", d.describe())
	case KindCount, KindInteger, KindReal:
		return d.number(kind)
	case KindVector, KindSet:
		elems, err := d.array(kind)
		if err != nil {
			return Value{}, err
		}
		if kind == KindSet {
			return newSetOwned(elems), nil
		}
		return Value{kind: KindVector, elems: elems}, nil
	case KindTable:
		return d.table()
	}
	// Every remaining kind carries a string payload.
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		return Value{}, d.errorf("%s payload must be a string, got %s", kind, d.describe())
	}
	s, err := d.str()
	if err != nil {
		return Value{}, err
	}
	fail := func(format string, args ...any) (Value, error) {
		d.pos = start
		return Value{}, d.errorf(format, args...)
	}
	switch kind {
	case KindString:
		return String(s), nil
	case KindEnum:
		return Enum(s), nil
	case KindAddress:
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return fail("invalid address %q", s)
		}
		return Address(a), nil
	case KindSubnet:
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fail("invalid subnet %q (want addr/prefixlen)", s)
		}
		return Subnet(p), nil
	case KindPort:
		p, err := ParsePort(s)
		if err != nil {
			return fail("invalid %v", err)
		}
		return FromPort(p), nil
	case KindTimestamp:
		t, err := ParseTimestamp(s)
		if err != nil {
			return fail("%v", err)
		}
		return Timestamp(t), nil
	case KindTimespan:
		ts, err := ParseTimespan(s)
		if err != nil {
			return fail("%v", err)
		}
		return Timespan(ts), nil
	}
	return fail("unhandled kind %s", kind)
}

func (d *decoder) lit(word string) bool {
	if len(d.data)-d.pos >= len(word) && string(d.data[d.pos:d.pos+len(word)]) == word {
		d.pos += len(word)
		return true
	}
	return false
}

// number scans a JSON number and converts it strictly for the kind: a count
// is an unsigned integer literal, an integer a signed one; a real is any
// JSON number (Broker's decoder accepts reals written without a point).
func (d *decoder) number(kind Kind) (Value, error) {
	start := d.pos
	i := d.pos
	neg := false
	if i < len(d.data) && d.data[i] == '-' {
		neg = true
		i++
	}
	digits := i
	if i < len(d.data) && d.data[i] == '0' {
		i++
	} else {
		for i < len(d.data) && d.data[i] >= '0' && d.data[i] <= '9' {
			i++
		}
	}
	if i == digits {
		return Value{}, d.errorf("%s payload must be a number, got %s", kind, d.describe())
	}
	frac, exp := false, false
	if i < len(d.data) && d.data[i] == '.' {
		frac = true
		i++
		j := i
		for i < len(d.data) && d.data[i] >= '0' && d.data[i] <= '9' {
			i++
		}
		if i == j {
			return Value{}, d.errorf("malformed number: no digits after the decimal point")
		}
	}
	if i < len(d.data) && (d.data[i] == 'e' || d.data[i] == 'E') {
		exp = true
		i++
		if i < len(d.data) && (d.data[i] == '+' || d.data[i] == '-') {
			i++
		}
		j := i
		for i < len(d.data) && d.data[i] >= '0' && d.data[i] <= '9' {
			i++
		}
		if i == j {
			return Value{}, d.errorf("malformed number: no digits in the exponent")
		}
	}
	text := string(d.data[start:i])
	switch kind {
	case KindCount:
		if neg || frac || exp {
			return Value{}, d.errorf("count must be an unsigned integer, got %s", text)
		}
		n, err := strconv.ParseUint(text, 10, 64)
		if err != nil {
			return Value{}, d.errorf("count %s does not fit in 64 bits", text)
		}
		d.pos = i
		return Count(n), nil
	case KindInteger:
		if frac || exp {
			return Value{}, d.errorf("integer must be an integer literal, got %s", text)
		}
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return Value{}, d.errorf("integer %s does not fit in 64 bits", text)
		}
		d.pos = i
		return Integer(n), nil
	default:
		f, err := strconv.ParseFloat(text, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return Value{}, d.errorf("invalid real %s", text)
		}
		if math.IsInf(f, 0) {
			return Value{}, d.errorf("real %s is out of range", text)
		}
		d.pos = i
		return Real(f), nil
	}
}

func (d *decoder) array(kind Kind) ([]Value, error) {
	if d.pos >= len(d.data) || d.data[d.pos] != '[' {
		return nil, d.errorf("%s payload must be an array, got %s", kind, d.describe())
	}
	d.pos++
	d.ws()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		return []Value{}, nil
	}
	elems := make([]Value, 0, 4)
	for i := 0; ; i++ {
		d.push("", i)
		v, err := d.value()
		d.pop()
		if err != nil {
			return nil, err
		}
		elems = append(elems, v)
		d.ws()
		if d.pos >= len(d.data) {
			return nil, d.errorf("unexpected end of input inside %s", kind)
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case ']':
			d.pos++
			return elems, nil
		default:
			return nil, d.errorf("want ',' or ']' in %s, got %s", kind, d.describe())
		}
	}
}

func (d *decoder) table() (Value, error) {
	if d.pos >= len(d.data) || d.data[d.pos] != '[' {
		return Value{}, d.errorf("table payload must be an array of {key, value} objects, got %s", d.describe())
	}
	d.pos++
	d.ws()
	flat := make([]Value, 0, 8)
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		return newTableOwned(flat), nil
	}
	for i := 0; ; i++ {
		d.push("", i)
		k, v, err := d.tableEntry()
		d.pop()
		if err != nil {
			return Value{}, err
		}
		flat = append(flat, k, v)
		d.ws()
		if d.pos >= len(d.data) {
			return Value{}, d.errorf("unexpected end of input inside table")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case ']':
			d.pos++
			return newTableOwned(flat), nil
		default:
			return Value{}, d.errorf("want ',' or ']' in table, got %s", d.describe())
		}
	}
}

func (d *decoder) tableEntry() (Value, Value, error) {
	d.ws()
	if d.pos >= len(d.data) || d.data[d.pos] != '{' {
		return Value{}, Value{}, d.errorf("table entry must be a {key, value} object, got %s", d.describe())
	}
	d.pos++
	var k, v Value
	var haveK, haveV bool
	for {
		d.ws()
		key, err := d.strBytes()
		if err != nil {
			return Value{}, Value{}, err
		}
		if err := d.expect(':'); err != nil {
			return Value{}, Value{}, err
		}
		switch string(key) {
		case "key":
			d.push("key", 0)
			k, err = d.value()
			d.pop()
			haveK = true
		case "value":
			d.push("value", 0)
			v, err = d.value()
			d.pop()
			haveV = true
		default:
			err = d.skip()
		}
		if err != nil {
			return Value{}, Value{}, err
		}
		d.ws()
		if d.pos >= len(d.data) {
			return Value{}, Value{}, d.errorf("unexpected end of input inside a table entry")
		}
		if d.data[d.pos] == ',' {
			d.pos++
			continue
		}
		if d.data[d.pos] == '}' {
			d.pos++
			break
		}
		return Value{}, Value{}, d.errorf("want ',' or '}' in a table entry, got %s", d.describe())
	}
	if !haveK || !haveV {
		return Value{}, Value{}, d.errorf(`table entry needs both "key" and "value"`)
	}
	return k, v, nil
}

// strBytes is str without the allocation for the common case: it returns a
// slice of the input when the string has no escapes. Object keys and type
// tags only need comparing, so they use this.
func (d *decoder) strBytes() ([]byte, error) {
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		return nil, d.errorf("want a string, got %s", d.describe())
	}
	start := d.pos + 1
	for i := start; i < len(d.data); i++ {
		switch d.data[i] {
		case '"':
			d.pos = i + 1
			return d.data[start:i], nil
		case '\\':
			s, err := d.str()
			return []byte(s), err
		}
	}
	return nil, d.errorf("unterminated string")
}

// str decodes a JSON string at the current position. It tolerates what
// Broker's encoder writes although it is not JSON: the \v escape, raw
// control bytes and bytes that are not UTF-8, which are kept as they are.
func (d *decoder) str() (string, error) {
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		return "", d.errorf("want a string, got %s", d.describe())
	}
	start := d.pos + 1
	i := start
	for i < len(d.data) {
		c := d.data[i]
		if c == '"' {
			d.pos = i + 1
			return string(d.data[start:i]), nil
		}
		if c == '\\' {
			break
		}
		i++
	}
	if i >= len(d.data) {
		return "", d.errorf("unterminated string")
	}
	buf := make([]byte, 0, i-start+16)
	buf = append(buf, d.data[start:i]...)
	for i < len(d.data) {
		c := d.data[i]
		switch c {
		case '"':
			d.pos = i + 1
			return string(buf), nil
		case '\\':
			if i+1 >= len(d.data) {
				d.pos = i
				return "", d.errorf("unterminated escape in string")
			}
			e := d.data[i+1]
			i += 2
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'v': // Broker writes vertical tab this way.
				buf = append(buf, '\v')
			case 'u':
				r, ok := hex4(d.data, i)
				if !ok {
					d.pos = i - 2
					return "", d.errorf(`invalid \u escape in string`)
				}
				i += 4
				if utf16.IsSurrogate(r) {
					r2, ok := rune(0), false
					if i+6 <= len(d.data) && d.data[i] == '\\' && d.data[i+1] == 'u' {
						r2, ok = hex4(d.data, i+2)
					}
					if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
						r = dec
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				buf = utf8.AppendRune(buf, r)
			default:
				d.pos = i - 2
				return "", d.errorf("invalid escape \\%c in string", e)
			}
		default:
			buf = append(buf, c)
			i++
		}
	}
	return "", d.errorf("unterminated string")
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}

// skip passes over any JSON value (used for unknown keys and for a "data"
// member that precedes its "@data-type").
func (d *decoder) skip() error {
	d.ws()
	if d.pos >= len(d.data) {
		return d.errorf("unexpected end of input, want a JSON value")
	}
	switch c := d.data[d.pos]; {
	case c == '"':
		_, err := d.str()
		return err
	case c == '{' || c == '[':
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		d.depth++
		if d.depth > 2*d.maxDepth {
			return d.errorf("JSON nested deeper than %d levels", 2*d.maxDepth)
		}
		defer func() { d.depth-- }()
		d.pos++
		d.ws()
		if d.pos < len(d.data) && d.data[d.pos] == closing {
			d.pos++
			return nil
		}
		for {
			if c == '{' {
				d.ws()
				if _, err := d.str(); err != nil {
					return err
				}
				if err := d.expect(':'); err != nil {
					return err
				}
			}
			if err := d.skip(); err != nil {
				return err
			}
			d.ws()
			if d.pos >= len(d.data) {
				return d.errorf("unexpected end of input")
			}
			if d.data[d.pos] == ',' {
				d.pos++
				continue
			}
			if d.data[d.pos] == closing {
				d.pos++
				return nil
			}
			return d.errorf("want ',' or %q, got %s", closing, d.describe())
		}
	case c == 't':
		if d.lit("true") {
			return nil
		}
	case c == 'f':
		if d.lit("false") {
			return nil
		}
	case c == 'n':
		if d.lit("null") {
			return nil
		}
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := d.number(KindReal)
		return err
	}
	return d.errorf("invalid JSON: %s", d.describe())
}

// ParseTimestamp parses Broker's timestamp text: YYYY-MM-DDThh:mm:ss with an
// optional fraction and an optional zone (Z or ±hh:mm). Without a zone the
// time is UTC.
func ParseTimestamp(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05.999999999Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid timestamp %q (want YYYY-MM-DDThh:mm:ss.sss)", s)
}

var timespanUnits = []struct {
	name string
	d    time.Duration
}{
	{"ns", time.Nanosecond}, {"us", time.Microsecond}, {"ms", time.Millisecond},
	{"s", time.Second}, {"min", time.Minute}, {"h", time.Hour}, {"d", 24 * time.Hour},
}

// ParseTimespan parses "<integer><unit>" with unit ns, us, ms, s, min, h or d.
func ParseTimespan(s string) (time.Duration, error) {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	j := i
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	if j == i {
		return 0, fmt.Errorf("invalid timespan %q (want <integer><unit>)", s)
	}
	n, err := strconv.ParseInt(s[:j], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("timespan %q out of range", s)
	}
	unit := s[j:]
	for _, u := range timespanUnits {
		if u.name == unit {
			if n > math.MaxInt64/int64(u.d) || n < math.MinInt64/int64(u.d) {
				return 0, fmt.Errorf("timespan %q out of range", s)
			}
			return time.Duration(n) * u.d, nil
		}
	}
	if unit == "" {
		return 0, fmt.Errorf("timespan %q lacks a unit (ns, us, ms, s, min, h, d)", s)
	}
	return 0, fmt.Errorf("timespan %q has unknown unit %q (want ns, us, ms, s, min, h, d)", s, unit)
}
