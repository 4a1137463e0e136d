package broker

import (
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// EncodeValue returns the JSON text of v as Broker writes it.
func EncodeValue(v Value) ([]byte, error) {
	return v.AppendJSON(make([]byte, 0, 64))
}

// MarshalJSON implements json.Marshaler with Broker's encoding.
func (v Value) MarshalJSON() ([]byte, error) { return EncodeValue(v) }

// UnmarshalJSON implements json.Unmarshaler with Broker's decoding.
func (v *Value) UnmarshalJSON(b []byte) error {
	x, err := DecodeValue(b)
	if err != nil {
		return err
	}
	*v = x
	return nil
}

// AppendJSON appends v's JSON text ({"@data-type":…,"data":…}) to dst.
//
// Output follows Broker: reals always carry a decimal point, ports are
// "N/proto" ("?" for unknown), timestamps "YYYY-MM-DDThh:mm:ss.sss" in UTC,
// timespans the coarsest exact unit of ns/us/ms/s ("0s" for zero), sets and
// tables in sorted order. Unlike Broker, strings are always valid JSON:
// control bytes are written as \u00XX (never \v), and bytes that are not
// UTF-8 become U+FFFD. The only error is a real that is NaN or infinite,
// which JSON cannot carry.
func (v Value) AppendJSON(dst []byte) ([]byte, error) {
	if v.kind >= KindSet && v.str != "" {
		return append(dst, v.str...), nil // cached by Preencoded
	}
	dst = append(dst, `{"@data-type":"`...)
	dst = append(dst, kindTags[v.kind]...)
	dst = append(dst, `","data":`...)
	var err error
	dst, err = v.appendPayload(dst)
	if err != nil {
		return dst, err
	}
	return append(dst, '}'), nil
}

func (v Value) appendPayload(dst []byte) ([]byte, error) {
	switch v.kind {
	case KindNone:
		return append(dst, "{}"...), nil
	case KindBoolean:
		if v.bits != 0 {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case KindCount:
		return strconv.AppendUint(dst, v.bits, 10), nil
	case KindInteger:
		return strconv.AppendInt(dst, int64(v.bits), 10), nil
	case KindReal:
		f := math.Float64frombits(v.bits)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return dst, fmt.Errorf("encode real %v: JSON cannot carry NaN or infinity", f)
		}
		return appendReal(dst, f), nil
	case KindString, KindEnum:
		return appendString(dst, v.str), nil
	case KindAddress:
		dst = append(dst, '"')
		dst = v.addr.AppendTo(dst)
		return append(dst, '"'), nil
	case KindSubnet:
		p, _ := v.AsSubnet()
		dst = append(dst, '"')
		dst = p.AppendTo(dst)
		return append(dst, '"'), nil
	case KindPort:
		p, _ := v.AsPort()
		dst = append(dst, '"')
		dst = strconv.AppendUint(dst, uint64(p.Number), 10)
		dst = append(dst, '/')
		dst = append(dst, p.Proto.String()...)
		return append(dst, '"'), nil
	case KindTimestamp:
		t, _ := v.AsTimestamp()
		dst = append(dst, '"')
		dst = t.AppendFormat(dst, "2006-01-02T15:04:05.000")
		return append(dst, '"'), nil
	case KindTimespan:
		d, _ := v.AsTimespan()
		dst = append(dst, '"')
		dst = appendTimespan(dst, d)
		return append(dst, '"'), nil
	case KindVector, KindSet:
		dst = append(dst, '[')
		for i, e := range v.elems {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = e.AppendJSON(dst); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case KindTable:
		dst = append(dst, '[')
		for i := 0; i+1 < len(v.elems); i += 2 {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"key":`...)
			var err error
			if dst, err = v.elems[i].AppendJSON(dst); err != nil {
				return dst, err
			}
			dst = append(dst, `,"value":`...)
			if dst, err = v.elems[i+1].AppendJSON(dst); err != nil {
				return dst, err
			}
			dst = append(dst, '}')
		}
		return append(dst, ']'), nil
	}
	return dst, fmt.Errorf("encode: invalid kind %d", v.kind)
}

// Preencoded returns v with its JSON encoding cached inside, so that a
// container sent in many frames — a configuration pushed to every agent —
// is encoded once. Scalars are returned as they are. The result is the
// same datum: Equal, Compare and the accessors ignore the cache.
func Preencoded(v Value) (Value, error) {
	if v.kind < KindSet {
		return v, nil
	}
	v.str = ""
	b, err := v.AppendJSON(make([]byte, 0, 1024))
	if err != nil {
		return v, err
	}
	v.str = string(b)
	return v, nil
}

// sizeHint estimates the length of v's JSON encoding so that a frame
// buffer can be allocated once: exact for a Preencoded container, a
// guess elsewhere. It looks depth levels into containers that carry no
// cached encoding (an event wraps its arguments three levels deep).
func (v Value) sizeHint(depth int) int {
	if v.kind < KindSet {
		return 32 + len(v.str)
	}
	if v.str != "" {
		return len(v.str)
	}
	if depth == 0 {
		return 64
	}
	n := 32
	for _, e := range v.elems {
		n += e.sizeHint(depth - 1)
	}
	return n
}

// appendReal writes f with a decimal point always present ("1.0", "3.25").
func appendReal(dst []byte, f float64) []byte {
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, 'f', -1, 64)
	for _, c := range dst[start:] {
		if c == '.' {
			return dst
		}
	}
	return append(dst, ".0"...)
}

// appendTimespan writes d in the coarsest of ns/us/ms/s that divides it
// exactly, as Broker does; zero is "0s".
func appendTimespan(dst []byte, d time.Duration) []byte {
	if d == 0 {
		return append(dst, "0s"...)
	}
	switch {
	case d%time.Second == 0:
		return append(strconv.AppendInt(dst, int64(d/time.Second), 10), 's')
	case d%time.Millisecond == 0:
		return append(strconv.AppendInt(dst, int64(d/time.Millisecond), 10), "ms"...)
	case d%time.Microsecond == 0:
		return append(strconv.AppendInt(dst, int64(d/time.Microsecond), 10), "us"...)
	default:
		return append(strconv.AppendInt(dst, int64(d), 10), "ns"...)
	}
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string. Control bytes use the standard
// short escapes where JSON has them and \u00XX otherwise; invalid UTF-8
// becomes U+FFFD so the output is always valid JSON.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, "\uFFFD"...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
