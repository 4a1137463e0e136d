package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/zcc-harness/zcc/broker"
)

// Python's json module, as far as zeek-client's output depends on it:
// zeek-client prints with json.dumps(sort_keys=True, indent=2) (ASCII only,
// Python's float repr), parses get_id_value data with json.loads, and
// quotes json's error messages. Reproducing them is what lets `zcc client`
// print byte for byte what zeek-client prints.

// pyInt is an integer parsed from JSON text, kept exact (Python's int has
// no size limit).
type pyInt struct{ *big.Int }

// pyObject is a JSON object; json.dumps(sort_keys=True) orders its keys.
type pyObject map[string]any

// pyJSONError is json.JSONDecodeError: Msg at rune offset Pos.
type pyJSONError struct {
	Msg       string
	Pos       int
	Line, Col int
}

// Error renders it as str(JSONDecodeError) does.
func (e *pyJSONError) Error() string {
	return fmt.Sprintf("%s: line %d column %d (char %d)", e.Msg, e.Line, e.Col, e.Pos)
}

// maxPyDepth stands in for Python's recursion limit.
const maxPyDepth = 900

// pyLoads parses s as Python's json.loads(s) does (strict: no control
// characters in strings; NaN, Infinity and -Infinity allowed), returning
// nil, bool, pyInt, float64, string, []any or pyObject.
func pyLoads(s string) (any, error) {
	d := pyDecoder{s: []rune(s)}
	d.ws()
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	d.ws()
	if d.pos != len(d.s) {
		return nil, d.errAt("Extra data", d.pos)
	}
	return v, nil
}

type pyDecoder struct {
	s   []rune
	pos int
}

func (d *pyDecoder) errAt(msg string, pos int) *pyJSONError {
	line, lastNL := 1, -1
	for i := 0; i < pos && i < len(d.s); i++ {
		if d.s[i] == '\n' {
			line++
			lastNL = i
		}
	}
	return &pyJSONError{Msg: msg, Pos: pos, Line: line, Col: pos - lastNL}
}

func (d *pyDecoder) ws() {
	for d.pos < len(d.s) {
		switch d.s[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *pyDecoder) has(lit string) bool {
	r := []rune(lit)
	if d.pos+len(r) > len(d.s) {
		return false
	}
	for i, c := range r {
		if d.s[d.pos+i] != c {
			return false
		}
	}
	return true
}

func (d *pyDecoder) value(depth int) (any, error) {
	if depth > maxPyDepth {
		return nil, d.errAt("maximum recursion depth exceeded", d.pos)
	}
	if d.pos >= len(d.s) {
		return nil, d.errAt("Expecting value", d.pos)
	}
	switch c := d.s[d.pos]; {
	case c == '"':
		return d.str()
	case c == '{':
		return d.object(depth)
	case c == '[':
		return d.array(depth)
	case d.has("null"):
		d.pos += 4
		return nil, nil
	case d.has("true"):
		d.pos += 4
		return true, nil
	case d.has("false"):
		d.pos += 5
		return false, nil
	case d.has("NaN"):
		d.pos += 3
		return math.NaN(), nil
	case d.has("Infinity"):
		d.pos += 8
		return math.Inf(1), nil
	case d.has("-Infinity"):
		d.pos += 9
		return math.Inf(-1), nil
	case c == '-' || (c >= '0' && c <= '9'):
		if v, ok := d.number(); ok {
			return v, nil
		}
	}
	return nil, d.errAt("Expecting value", d.pos)
}

// number matches Python's NUMBER_RE: -?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?
func (d *pyDecoder) number() (any, bool) {
	digits := func(p int) int {
		for p < len(d.s) && d.s[p] >= '0' && d.s[p] <= '9' {
			p++
		}
		return p
	}
	p := d.pos
	if d.s[p] == '-' {
		p++
	}
	switch {
	case p < len(d.s) && d.s[p] == '0':
		p++
	case p < len(d.s) && d.s[p] >= '1' && d.s[p] <= '9':
		p = digits(p)
	default:
		return nil, false
	}
	isFloat := false
	if p+1 < len(d.s) && d.s[p] == '.' && d.s[p+1] >= '0' && d.s[p+1] <= '9' {
		p = digits(p + 1)
		isFloat = true
	}
	if p < len(d.s) && (d.s[p] == 'e' || d.s[p] == 'E') {
		q := p + 1
		if q < len(d.s) && (d.s[q] == '+' || d.s[q] == '-') {
			q++
		}
		if q < len(d.s) && d.s[q] >= '0' && d.s[q] <= '9' {
			p = digits(q)
			isFloat = true
		}
	}
	text := string(d.s[d.pos:p])
	d.pos = p
	if isFloat {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil && !math.IsInf(f, 0) {
			return nil, false
		}
		return f, true
	}
	n, ok := new(big.Int).SetString(text, 10)
	return pyInt{n}, ok
}

func (d *pyDecoder) str() (string, error) {
	begin := d.pos
	d.pos++
	var b strings.Builder
	for {
		if d.pos >= len(d.s) {
			return "", d.errAt("Unterminated string starting at", begin)
		}
		c := d.s[d.pos]
		switch {
		case c == '"':
			d.pos++
			return b.String(), nil
		case c == '\\':
			if d.pos+1 >= len(d.s) {
				return "", d.errAt("Unterminated string starting at", begin)
			}
			esc := d.s[d.pos+1]
			switch esc {
			case '"', '\\', '/':
				b.WriteRune(esc)
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				r, n, ok := d.unicodeEscape(d.pos)
				if !ok {
					return "", d.errAt("Invalid \\uXXXX escape", d.pos+1)
				}
				b.WriteRune(r)
				d.pos += n
				continue
			default:
				return "", d.errAt("Invalid \\escape", d.pos)
			}
			d.pos += 2
		case c < 0x20:
			return "", d.errAt("Invalid control character at", d.pos)
		default:
			b.WriteRune(c)
			d.pos++
		}
	}
}

// unicodeEscape reads \uXXXX at p (joining a surrogate pair); it returns
// the rune and how many runes it spans.
func (d *pyDecoder) unicodeEscape(p int) (rune, int, bool) {
	hex4 := func(at int) (rune, bool) {
		if at+4 > len(d.s) {
			return 0, false
		}
		n, err := strconv.ParseUint(string(d.s[at:at+4]), 16, 32)
		return rune(n), err == nil
	}
	hi, ok := hex4(p + 2)
	if !ok {
		return 0, 0, false
	}
	if hi >= 0xd800 && hi < 0xdc00 && p+7 < len(d.s) && d.s[p+6] == '\\' && d.s[p+7] == 'u' {
		if lo, ok := hex4(p + 8); ok && lo >= 0xdc00 && lo < 0xe000 {
			return 0x10000 + (hi-0xd800)<<10 + (lo - 0xdc00), 12, true
		}
	}
	if hi >= 0xd800 && hi < 0xe000 {
		// A lone surrogate, which a Go string cannot hold.
		return utf8.RuneError, 6, true
	}
	return hi, 6, true
}

func (d *pyDecoder) object(depth int) (any, error) {
	obj := pyObject{}
	d.pos++
	d.ws()
	if d.pos < len(d.s) && d.s[d.pos] == '}' {
		d.pos++
		return obj, nil
	}
	for {
		if d.pos >= len(d.s) || d.s[d.pos] != '"' {
			return nil, d.errAt("Expecting property name enclosed in double quotes", d.pos)
		}
		key, err := d.str()
		if err != nil {
			return nil, err
		}
		d.ws()
		if d.pos >= len(d.s) || d.s[d.pos] != ':' {
			return nil, d.errAt("Expecting ':' delimiter", d.pos)
		}
		d.pos++
		d.ws()
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		obj[key] = v
		d.ws()
		if d.pos < len(d.s) && d.s[d.pos] == '}' {
			d.pos++
			return obj, nil
		}
		if d.pos >= len(d.s) || d.s[d.pos] != ',' {
			return nil, d.errAt("Expecting ',' delimiter", d.pos)
		}
		d.pos++
		d.ws()
	}
}

func (d *pyDecoder) array(depth int) (any, error) {
	arr := []any{}
	d.pos++
	d.ws()
	if d.pos < len(d.s) && d.s[d.pos] == ']' {
		d.pos++
		return arr, nil
	}
	for {
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
		d.ws()
		if d.pos < len(d.s) && d.s[d.pos] == ']' {
			d.pos++
			return arr, nil
		}
		if d.pos >= len(d.s) || d.s[d.pos] != ',' {
			return nil, d.errAt("Expecting ',' delimiter", d.pos)
		}
		d.pos++
		d.ws()
	}
}

// pyDumps renders v as json.dumps(v, sort_keys=True, indent=indent) does
// (indent < 0: no indent, ", " and ": " separators). v is nil, bool, any
// Go integer, pyInt, float64, string, []any, pyObject or map[string]any.
func pyDumps(v any, indent int) string {
	var b bytes.Buffer
	pyDump(&b, v, indent, 0)
	return b.String()
}

func pyDump(b *bytes.Buffer, v any, indent, level int) {
	newline := func(l int) {
		b.WriteByte('\n')
		b.WriteString(strings.Repeat(" ", indent*l))
	}
	itemSep := ", "
	if indent >= 0 {
		itemSep = ","
	}
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case int:
		b.WriteString(strconv.Itoa(x))
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case uint64:
		b.WriteString(strconv.FormatUint(x, 10))
	case pyInt:
		b.WriteString(x.String())
	case float64:
		b.WriteString(pyFloatRepr(x))
	case string:
		pyQuote(b, x)
	case []any:
		if len(x) == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(itemSep)
			}
			if indent >= 0 {
				newline(level + 1)
			}
			pyDump(b, e, indent, level+1)
		}
		if indent >= 0 {
			newline(level)
		}
		b.WriteByte(']')
	case pyObject:
		pyDumpObject(b, x, indent, level, itemSep, newline)
	case map[string]any:
		pyDumpObject(b, x, indent, level, itemSep, newline)
	default:
		pyQuote(b, fmt.Sprint(x))
	}
}

func pyDumpObject(b *bytes.Buffer, obj map[string]any, indent, level int, itemSep string, newline func(int)) {
	if len(obj) == 0 {
		b.WriteString("{}")
		return
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	// Python compares str by code point; for valid UTF-8 that is Go's
	// byte order.
	sort.Strings(keys)
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(itemSep)
		}
		if indent >= 0 {
			newline(level + 1)
		}
		pyQuote(b, k)
		b.WriteString(": ")
		pyDump(b, obj[k], indent, level+1)
	}
	if indent >= 0 {
		newline(level)
	}
	b.WriteByte('}')
}

// pyQuote writes s as json.dumps does with ensure_ascii: everything outside
// printable ASCII escaped, \u with lower-case hex, astral characters as
// surrogate pairs. Bytes that are not UTF-8 come out as \ufffd.
func pyQuote(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			switch {
			case r >= 0x20 && r < 0x7f:
				b.WriteRune(r)
			case r > 0xffff:
				r -= 0x10000
				fmt.Fprintf(b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
			default:
				fmt.Fprintf(b, `\u%04x`, r)
			}
		}
	}
	b.WriteByte('"')
}

// pyFloatRepr is Python's repr(float) as json.dumps writes it: the
// shortest round-tripping digits, fixed notation for exponents from -4 to
// 15 (with ".0" for integral values), else d.ddde±XX.
func pyFloatRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // e.g. -1.2345e+06
	mant, expText, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expText)
	neg := strings.HasPrefix(mant, "-")
	mant = strings.TrimPrefix(mant, "-")
	digits := strings.Replace(mant, ".", "", 1)
	sign := ""
	if neg {
		sign = "-"
	}
	if exp < -4 || exp >= 16 {
		m := digits[:1]
		if len(digits) > 1 {
			m += "." + digits[1:]
		}
		es := "+"
		if exp < 0 {
			es, exp = "-", -exp
		}
		return fmt.Sprintf("%s%se%s%02d", sign, m, es, exp)
	}
	point := exp + 1 // digits before the decimal point
	switch {
	case point <= 0:
		return sign + "0." + strings.Repeat("0", -point) + digits
	case point >= len(digits):
		return sign + digits + strings.Repeat("0", point-len(digits)) + ".0"
	default:
		return sign + digits[:point] + "." + digits[point:]
	}
}

// pyClassNames are zeek-client's brokertypes class names per Broker kind,
// as str(type(value)) shows them.
var pyClassNames = map[broker.Kind]string{
	broker.KindNone: "NoneType", broker.KindBoolean: "Boolean", broker.KindCount: "Count",
	broker.KindInteger: "Integer", broker.KindReal: "Real", broker.KindTimespan: "Timespan",
	broker.KindTimestamp: "Timestamp", broker.KindString: "String", broker.KindEnum: "Enum",
	broker.KindAddress: "Address", broker.KindSubnet: "Subnet", broker.KindPort: "Port",
	broker.KindVector: "Vector", broker.KindSet: "Set", broker.KindTable: "Table",
}

func pyClass(v broker.Value) string {
	return "<class 'zeekclient.brokertypes." + pyClassNames[v.Kind()] + "'>"
}

// pyBrokerData is the structure zeek-client's to_broker() gives for v:
// {"@data-type": …, "data": …} all the way down.
func pyBrokerData(v broker.Value) any {
	tagged := func(tag string, data any) any { return pyObject{"@data-type": tag, "data": data} }
	switch v.Kind() {
	case broker.KindNone:
		return tagged("none", pyObject{})
	case broker.KindBoolean:
		b, _ := v.AsBool()
		return tagged("boolean", b)
	case broker.KindCount:
		n, _ := v.AsCount()
		return tagged("count", n)
	case broker.KindInteger:
		n, _ := v.AsInteger()
		return tagged("integer", n)
	case broker.KindReal:
		f, _ := v.AsReal()
		return tagged("real", f)
	case broker.KindString:
		s, _ := v.AsString()
		return tagged("string", s)
	case broker.KindEnum:
		s, _ := v.AsEnum()
		return tagged("enum-value", s)
	case broker.KindAddress:
		a, _ := v.AsAddress()
		return tagged("address", a.String())
	case broker.KindSubnet:
		p, _ := v.AsSubnet()
		return tagged("subnet", p.String())
	case broker.KindPort:
		p, _ := v.AsPort()
		return tagged("port", p.String())
	case broker.KindVector, broker.KindSet:
		var elems []broker.Value
		tag := "vector"
		if v.Kind() == broker.KindSet {
			elems, _ = v.AsSet()
			tag = "set"
		} else {
			elems, _ = v.AsVector()
		}
		out := make([]any, len(elems))
		for i, e := range elems {
			out[i] = pyBrokerData(e)
		}
		return tagged(tag, out)
	case broker.KindTable:
		entries, _ := v.AsTable()
		out := make([]any, len(entries))
		for i, e := range entries {
			out[i] = pyObject{"key": pyBrokerData(e.Key), "value": pyBrokerData(e.Value)}
		}
		return tagged("table", out)
	}
	// Timestamps and timespans: Broker's own text for them.
	var tv struct {
		Tag  string `json:"@data-type"`
		Data any    `json:"data"`
	}
	if raw, err := broker.EncodeValue(v); err == nil {
		_ = json.Unmarshal(raw, &tv)
	}
	return tagged(tv.Tag, tv.Data)
}

// pyRepr is repr() of a zeek-client brokertype: its to_broker() structure
// as json.dumps(sort_keys=True) writes it on one line.
func pyRepr(v broker.Value) string { return pyDumps(pyBrokerData(v), -1) }

// pyStr is str() of a zeek-client brokertype: the same, indented by 4.
func pyStr(v broker.Value) string { return pyDumps(pyBrokerData(v), 4) }

// pyLessResult is zeek-client's Result.__lt__: results with an instance come
// first, by instance, then by node when both have one.
func pyLessResult(a, b resultKey) bool {
	if a.instance == nil && b.instance != nil {
		return false
	}
	if a.instance != nil && b.instance == nil {
		return true
	}
	if a.instance != nil && b.instance != nil {
		if *a.instance < *b.instance {
			return true
		}
		if *a.instance > *b.instance {
			return false
		}
	}
	if a.node != nil && b.node != nil {
		return *a.node < *b.node
	}
	return false
}

type resultKey struct{ instance, node *string }

// pySorted orders xs as Python's sorted() does with less, which need not
// be a total order (zeek-client's Result ordering is not): CPython's
// list.sort takes the longest initial run (reversing a strictly
// descending one) and binary-inserts the rest, which is the whole
// algorithm for fewer than 64 elements. Longer lists are merge-sorted
// stably instead, which agrees whenever less is a strict weak order.
func pySorted[T any](xs []T, less func(a, b T) bool) []T {
	out := append([]T(nil), xs...)
	n := len(out)
	if n < 2 {
		return out
	}
	if n >= 64 {
		sort.SliceStable(out, func(i, j int) bool { return less(out[i], out[j]) })
		return out
	}
	run := 2
	if less(out[1], out[0]) {
		for run < n && less(out[run], out[run-1]) {
			run++
		}
		for i, j := 0, run-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	} else {
		for run < n && !less(out[run], out[run-1]) {
			run++
		}
	}
	for start := run; start < n; start++ {
		pivot := out[start]
		l, r := 0, start
		for l < r {
			p := l + (r-l)/2
			if less(pivot, out[p]) {
				r = p
			} else {
				l = p + 1
			}
		}
		copy(out[l+1:start+1], out[l:start])
		out[l] = pivot
	}
	return out
}
