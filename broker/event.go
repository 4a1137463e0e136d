package broker

import "fmt"

// Event is a Zeek event as it travels over Broker: a fully qualified name,
// positional arguments, and optional metadata.
//
// On the wire it is the vector [count 1, count 1, [name, args, metadata?]].
// Metadata is nil when the body has no third element; decoding keeps the
// distinction so that a frame re-encodes as it came.
type Event struct {
	Name     string
	Args     []Value
	Metadata []MetadataEntry
}

// MetadataEntry is one [count key, value] pair of event metadata. Key 1 is
// the network timestamp; keys from 200 up are user-defined.
type MetadataEntry struct {
	Key   uint64
	Value Value
}

// MetadataNetworkTimestamp is the metadata key of the network timestamp.
const MetadataNetworkTimestamp = 1

// NewEvent builds an event without metadata.
func NewEvent(name string, args ...Value) Event {
	return Event{Name: name, Args: args}
}

// Value returns the event's wire form.
func (e Event) Value() Value {
	body := []Value{String(e.Name), {kind: KindVector, elems: nonNil(e.Args)}}
	if e.Metadata != nil {
		meta := make([]Value, len(e.Metadata))
		for i, m := range e.Metadata {
			meta[i] = Value{kind: KindVector, elems: []Value{Count(m.Key), m.Value}}
		}
		body = append(body, Value{kind: KindVector, elems: meta})
	}
	return Value{kind: KindVector, elems: []Value{Count(1), Count(1), {kind: KindVector, elems: body}}}
}

func nonNil(v []Value) []Value {
	if v == nil {
		return []Value{}
	}
	return v
}

// String renders the event for logs: name(arg, arg, …).
func (e Event) String() string {
	s := e.Name + "("
	for i, a := range e.Args {
		if i > 0 {
			s += ", "
		}
		s += a.String()
	}
	return s + ")"
}

// EventError explains why a value is not a Zeek event.
type EventError struct{ Msg string }

func (e *EventError) Error() string { return "not a Zeek event: " + e.Msg }

func notEvent(format string, args ...any) error {
	return &EventError{Msg: fmt.Sprintf(format, args...)}
}

// EventFromValue interprets v as a Zeek event. It accepts bodies with and
// without the metadata element and keeps unknown metadata keys.
func EventFromValue(v Value) (Event, error) {
	outer, ok := v.AsVector()
	if !ok {
		return Event{}, notEvent("want a vector [1, 1, [name, args]], got %s", v.Kind())
	}
	if len(outer) != 3 {
		return Event{}, notEvent("want 3 elements [1, 1, [name, args]], got %d", len(outer))
	}
	if n, ok := outer[0].AsCount(); !ok || n != 1 {
		return Event{}, notEvent("element 0 (format) must be count 1, got %s", outer[0])
	}
	if n, ok := outer[1].AsCount(); !ok || n != 1 {
		return Event{}, notEvent("element 1 (message type) must be count 1 (event), got %s", outer[1])
	}
	body, ok := outer[2].AsVector()
	if !ok {
		return Event{}, notEvent("element 2 (body) must be a vector, got %s", outer[2].Kind())
	}
	if len(body) != 2 && len(body) != 3 {
		return Event{}, notEvent("body must be [name, args] or [name, args, metadata], got %d elements", len(body))
	}
	name, ok := body[0].AsString()
	if !ok {
		return Event{}, notEvent("body element 0 (name) must be a string, got %s", body[0].Kind())
	}
	if name == "" {
		return Event{}, notEvent("empty event name")
	}
	args, ok := body[1].AsVector()
	if !ok {
		return Event{}, notEvent("%s: body element 1 (args) must be a vector, got %s", name, body[1].Kind())
	}
	ev := Event{Name: name, Args: args}
	if len(body) == 3 {
		meta, ok := body[2].AsVector()
		if !ok {
			return Event{}, notEvent("%s: metadata must be a vector, got %s", name, body[2].Kind())
		}
		ev.Metadata = make([]MetadataEntry, 0, len(meta))
		for i, m := range meta {
			pair, ok := m.AsVector()
			if !ok || len(pair) != 2 {
				return Event{}, notEvent("%s: metadata entry %d must be [count key, value]", name, i)
			}
			key, ok := pair[0].AsCount()
			if !ok {
				return Event{}, notEvent("%s: metadata entry %d key must be a count, got %s", name, i, pair[0].Kind())
			}
			ev.Metadata = append(ev.Metadata, MetadataEntry{Key: key, Value: pair[1]})
		}
	}
	return ev, nil
}
