package broker

import (
	"fmt"
	"strings"
)

// Frame types of the WebSocket JSON API v1.
const (
	FrameDataMessage = "data-message"
	FrameAck         = "ack"
	FrameError       = "error"
)

// Error codes zcc sends in error frames. They are Broker ec names (and
// Zeek ≥ 8.1's invalid_uri).
const (
	CodeDeserializationFailed = "deserialization_failed"
	CodeInvalidURI            = "invalid_uri"
	CodeOverflow              = "overflow"
)

// Error contexts as Zeek 8.1 words them. zcc appends details after ": "
// where it knows more (the event and argument at fault).
const (
	ContextNotAnArray          = "subscriptions not an array"
	ContextSubscriptionNotStr  = "individual subscription not a string"
	ContextBadJSON             = "failed to decode JSON object"
	ContextNoTopic             = "no topic in top-level JSON object"
	ContextBadEvent            = "failed to create Zeek event"
	ContextInvalidURIPrefix    = "Invalid URI - use "
	ContextFrameTooLargePrefix = "frame too large"
)

// Frame is one WebSocket text message after the handshake. Which fields
// are set depends on Type: data-message (Topic, Data), ack (Endpoint,
// Version) or error (Code, Context).
type Frame struct {
	Type     string
	Topic    string
	Data     Value
	Endpoint string
	Version  string
	Code     string
	Context  string
}

// DataFrame returns a data-message frame.
func DataFrame(topic string, v Value) Frame {
	return Frame{Type: FrameDataMessage, Topic: topic, Data: v}
}

// EventFrame returns a data-message frame carrying ev.
func EventFrame(topic string, ev Event) Frame { return DataFrame(topic, ev.Value()) }

// AckFrame returns an ack.
func AckFrame(endpoint, version string) Frame {
	return Frame{Type: FrameAck, Endpoint: endpoint, Version: version}
}

// ErrorFrame returns an error frame.
func ErrorFrame(code, context string) Frame {
	return Frame{Type: FrameError, Code: code, Context: context}
}

// Event interprets a data message's payload as a Zeek event.
func (f Frame) Event() (Event, error) {
	if f.Type != FrameDataMessage {
		return Event{}, fmt.Errorf("%s frame carries no event", f.Type)
	}
	return EventFromValue(f.Data)
}

// String renders the frame for logs.
func (f Frame) String() string {
	switch f.Type {
	case FrameAck:
		return fmt.Sprintf("ack(endpoint=%q, version=%q)", f.Endpoint, f.Version)
	case FrameError:
		return fmt.Sprintf("error(%s: %s)", f.Code, f.Context)
	default:
		if ev, err := EventFromValue(f.Data); err == nil {
			return f.Topic + " " + ev.String()
		}
		return f.Topic + " " + f.Data.String()
	}
}

// AppendJSON appends the frame's JSON text to dst, with Broker's key order
// (type, topic, @data-type, data).
func (f Frame) AppendJSON(dst []byte) ([]byte, error) {
	switch f.Type {
	case FrameAck:
		dst = append(dst, `{"type":"ack","endpoint":`...)
		dst = appendString(dst, f.Endpoint)
		dst = append(dst, `,"version":`...)
		dst = appendString(dst, f.Version)
		return append(dst, '}'), nil
	case FrameError:
		dst = append(dst, `{"type":"error","code":`...)
		dst = appendString(dst, f.Code)
		dst = append(dst, `,"context":`...)
		dst = appendString(dst, f.Context)
		return append(dst, '}'), nil
	case FrameDataMessage, "":
		dst = append(dst, `{"type":"data-message","topic":`...)
		dst = appendString(dst, f.Topic)
		dst = append(dst, `,"@data-type":"`...)
		dst = append(dst, kindTags[f.Data.kind]...)
		dst = append(dst, `","data":`...)
		var err error
		if dst, err = f.Data.appendPayload(dst); err != nil {
			return dst, err
		}
		return append(dst, '}'), nil
	}
	return dst, fmt.Errorf("encode frame: unknown type %q", f.Type)
}

// Encode returns the frame's JSON text.
func (f Frame) Encode() ([]byte, error) { return f.AppendJSON(make([]byte, 0, 256)) }

// ProtocolError explains why a frame was rejected. Context is the text Zeek
// would put in its error frame (ContextBadJSON, ContextNoTopic, …); Err
// holds the details.
type ProtocolError struct {
	Context string
	Err     error
}

func (e *ProtocolError) Error() string {
	if e.Err == nil {
		return e.Context
	}
	return e.Context + ": " + e.Err.Error()
}

func (e *ProtocolError) Unwrap() error { return e.Err }

// DecodeFrame decodes one WebSocket text message after the handshake. As in
// Broker, a data message is recognised by its topic and payload; "type" is
// only required to tell acks and errors apart. Keys may come in any order.
func DecodeFrame(b []byte) (Frame, error) {
	d := newDecoder(b)
	f, err := d.frame()
	if err != nil {
		return Frame{}, err
	}
	if err := d.end(); err != nil {
		return Frame{}, &ProtocolError{Context: ContextBadJSON, Err: err}
	}
	return f, nil
}

func (d *decoder) frame() (Frame, error) {
	bad := func(err error) (Frame, error) { return Frame{}, &ProtocolError{Context: ContextBadJSON, Err: err} }
	d.ws()
	if d.pos >= len(d.data) || d.data[d.pos] != '{' {
		return bad(d.errorf("frame must be a JSON object, got %s", d.describe()))
	}
	d.pos++
	const (
		seenType = 1 << iota
		seenTopic
		seenEndpoint
		seenVersion
		seenCode
		seenContext
		seenTag
		seenData
	)
	var (
		f       Frame
		seen    int
		kind    Kind
		dataPos = -1
	)
	d.ws()
	more := true
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		more = false
	}
	for more {
		d.ws()
		key, err := d.str()
		if err != nil {
			return bad(err)
		}
		if err := d.expect(':'); err != nil {
			return bad(err)
		}
		d.ws()
		var bit int
		var dst *string
		switch key {
		case "type":
			bit, dst = seenType, &f.Type
		case "topic":
			bit, dst = seenTopic, &f.Topic
		case "endpoint":
			bit, dst = seenEndpoint, &f.Endpoint
		case "version":
			bit, dst = seenVersion, &f.Version
		case "code":
			bit, dst = seenCode, &f.Code
		case "context":
			bit, dst = seenContext, &f.Context
		case "@data-type":
			bit = seenTag
		case "data":
			bit = seenData
		}
		if seen&bit != 0 {
			return bad(d.errorf("duplicate key %q", key))
		}
		seen |= bit
		d.push(key, 0)
		switch {
		case dst != nil:
			if d.pos >= len(d.data) || d.data[d.pos] != '"' {
				err = d.errorf("%q must be a string, got %s", key, d.describe())
			} else {
				*dst, err = d.str()
			}
		case bit == seenTag:
			kind, err = d.tag()
			if err == nil && dataPos >= 0 { // "data" came first: decode it now
				save := d.pos
				d.pos = dataPos
				d.path[len(d.path)-1].key = "data"
				f.Data, err = d.payload(kind)
				d.pos = save
			}
		case bit == seenData:
			if seen&seenTag != 0 {
				f.Data, err = d.payload(kind)
			} else {
				dataPos = d.pos
				err = d.skip()
			}
		default:
			err = d.skip()
		}
		d.pop()
		if err != nil {
			return bad(err)
		}
		d.ws()
		if d.pos >= len(d.data) {
			return bad(d.errorf("unexpected end of input inside the frame object"))
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case '}':
			d.pos++
			more = false
		default:
			return bad(d.errorf("want ',' or '}' in the frame object, got %s", d.describe()))
		}
	}
	switch f.Type {
	case FrameAck:
		if seen&seenEndpoint == 0 || seen&seenVersion == 0 {
			return bad(fmt.Errorf(`ack lacks "endpoint" or "version"`))
		}
		return f, nil
	case FrameError:
		if seen&seenCode == 0 {
			return bad(fmt.Errorf(`error frame lacks "code"`))
		}
		return f, nil
	case FrameDataMessage, "":
		if seen&seenTopic == 0 {
			return Frame{}, &ProtocolError{Context: ContextNoTopic}
		}
		if seen&seenTag == 0 || seen&seenData == 0 {
			return bad(fmt.Errorf(`data message lacks "@data-type" or "data"`))
		}
		f.Type = FrameDataMessage
		return f, nil
	}
	return bad(fmt.Errorf("unknown frame type %q", f.Type))
}

// EncodeHandshake returns the first frame a client sends: a JSON array of
// topic prefixes.
func EncodeHandshake(topics []string) []byte {
	b := []byte{'['}
	for i, t := range topics {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, t)
	}
	return append(b, ']')
}

// DecodeHandshake parses a client's first frame. The error is a
// *ProtocolError whose Context is the one Zeek 8.1 uses
// ("subscriptions not an array", "individual subscription not a string").
func DecodeHandshake(b []byte) ([]string, error) {
	d := newDecoder(b)
	d.ws()
	if d.pos >= len(d.data) || d.data[d.pos] != '[' {
		if err := d.skip(); err != nil {
			return nil, &ProtocolError{Context: ContextNotAnArray, Err: err}
		}
		return nil, &ProtocolError{Context: ContextNotAnArray}
	}
	d.pos++
	topics := []string{}
	d.ws()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
	} else {
		for i := 0; ; i++ {
			d.ws()
			if d.pos >= len(d.data) || d.data[d.pos] != '"' {
				d.push("", i)
				err := d.errorf("subscription %d is %s", i, d.describe())
				return nil, &ProtocolError{Context: ContextSubscriptionNotStr, Err: err}
			}
			s, err := d.str()
			if err != nil {
				return nil, &ProtocolError{Context: ContextBadJSON, Err: err}
			}
			topics = append(topics, s)
			d.ws()
			if d.pos < len(d.data) && d.data[d.pos] == ',' {
				d.pos++
				continue
			}
			if d.pos < len(d.data) && d.data[d.pos] == ']' {
				d.pos++
				break
			}
			return nil, &ProtocolError{Context: ContextBadJSON, Err: d.errorf("want ',' or ']' in the subscription list, got %s", d.describe())}
		}
	}
	if err := d.end(); err != nil {
		return nil, &ProtocolError{Context: ContextBadJSON, Err: err}
	}
	return topics, nil
}

// MatchesPrefix reports whether topic is covered by any of the subscription
// prefixes. Broker matches plain string prefixes, so "…/agent/a1" also
// covers "…/agent/a10".
func MatchesPrefix(topic string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(topic, p) {
			return true
		}
	}
	return false
}
