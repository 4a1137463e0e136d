package api

import (
	"fmt"
	"net/netip"
	"reflect"

	"github.com/zcc-harness/zcc/broker"
)

// codec is what differs between dialects on the wire: the event
// signatures and the layouts of the records whose shape changed (Node,
// Result) and the State spellings. Option, Instance and Configuration are
// laid out the same in every dialect and are handled by shared code that
// calls back into the codec for nodes.
//
// A new dialect is one new file: a type implementing codec (reusing the
// shared signatures below where an event did not change) and a
// register(&Profile{…}) with its name table.
type codec interface {
	// signature returns how events of kind k convert, or nil.
	signature(k EventKind) *signature

	nodeValue(Node) (broker.Value, error)
	decodeNode(broker.Value) (Node, error)
	resultValue(Result) broker.Value
	decodeResult(broker.Value) (Result, error)
	stateValue(State) (broker.Value, error)
	decodeState(broker.Value) (State, error)
}

// signature is one event's parameter list and its conversion to and from
// the typed message.
type signature struct {
	params []string
	// encode appends m's arguments to e; it reports false when m is not the
	// message type of this signature.
	encode func(e *encoder, m Message) bool
	// decode reads the arguments from a, which records the first failure.
	decode func(a *argReader) Message
}

// newSignature ties a message type to its parameter names and
// conversions. Messages may be passed by value or by pointer.
func newSignature[M Message](params []string, enc func(*encoder, M), dec func(*argReader) M) *signature {
	return &signature{
		params: params,
		encode: func(e *encoder, m Message) bool {
			if v, ok := m.(M); ok {
				enc(e, v)
				return true
			}
			if v, ok := any(m).(*M); ok && v != nil {
				enc(e, *v)
				return true
			}
			return false
		},
		decode: func(a *argReader) Message { return dec(a) },
	}
}

// Encode converts m to the profile's wire event. It fails when the profile
// has no such event, or when a field cannot be expressed in this dialect
// (e.g. a cc42 Node without a port, or StatePending in cc42).
func (p *Profile) Encode(m Message) (broker.Event, error) {
	// A nil pointer would panic in Kind (value receivers).
	if m == nil || isNilPointer(m) {
		return broker.Event{}, fmt.Errorf("profile %s: cannot encode a nil message", p.Name)
	}
	k := m.Kind()
	name, ok := p.names[k]
	sig := p.codec.signature(k)
	if !ok || sig == nil {
		return broker.Event{}, fmt.Errorf("profile %s has no event for %T", p.Name, m)
	}
	e := encoder{p: p, vals: make([]broker.Value, 0, len(sig.params))}
	if !sig.encode(&e, m) {
		return broker.Event{}, fmt.Errorf("profile %s: cannot encode %T as %s", p.Name, m, name)
	}
	if e.err != nil {
		return broker.Event{}, fmt.Errorf("encode %s arg %d (%s): %w", shortName(name), e.errIndex, sig.params[e.errIndex], e.err)
	}
	if len(e.vals) != len(sig.params) {
		// A signature that disagrees with its own parameter list is a bug
		// in this package, not in the caller's message.
		return broker.Event{}, fmt.Errorf("api: internal error: %s encoded %d arguments, declared %d", name, len(e.vals), len(sig.params))
	}
	return broker.NewEvent(name, e.vals...), nil
}

// Decode converts a wire event of this profile into its typed message
// (a value, e.g. SetConfigurationRequest), as strictly as Zeek does
// (spec §1.2, §1.3): the argument count must match exactly, every argument
// must have its declared type, records follow the record rules, and enums
// must be spelled as this profile spells them. Metadata is ignored.
//
// Errors are *UnknownEventError, *ArgCountError or *ArgError.
func (p *Profile) Decode(ev broker.Event) (Message, error) {
	k, ok := p.kinds[ev.Name]
	if !ok {
		return nil, &UnknownEventError{Name: ev.Name, Profile: p.Name}
	}
	sig := p.codec.signature(k)
	if sig == nil {
		return nil, &UnknownEventError{Name: ev.Name, Profile: p.Name}
	}
	if len(ev.Args) != len(sig.params) {
		return nil, &ArgCountError{Event: ev.Name, Params: sig.params, Got: len(ev.Args)}
	}
	a := argReader{p: p, args: ev.Args, failed: -1}
	m := sig.decode(&a)
	if a.failed >= 0 {
		return nil, &ArgError{Event: ev.Name, Index: a.failed, Name: sig.params[a.failed], Err: a.err}
	}
	return m, nil
}

// DecodeFrame decodes the event carried by a data-message frame.
func (p *Profile) DecodeFrame(f broker.Frame) (Message, error) {
	ev, err := f.Event()
	if err != nil {
		return nil, err
	}
	return p.Decode(ev)
}

func isNilPointer(m Message) bool {
	v := reflect.ValueOf(m)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// encoder collects an event's arguments and the first error.
type encoder struct {
	p        *Profile
	vals     []broker.Value
	err      error
	errIndex int
}

func (e *encoder) add(v broker.Value) { e.vals = append(e.vals, v) }

// addErr appends v, or records err against the argument being added.
func (e *encoder) addErr(v broker.Value, err error) {
	if err != nil && e.err == nil {
		e.err, e.errIndex = err, len(e.vals)
	}
	e.vals = append(e.vals, v)
}

func (e *encoder) str(s string)    { e.add(broker.String(s)) }
func (e *encoder) boolean(b bool)  { e.add(broker.Bool(b)) }
func (e *encoder) count(n uint64)  { e.add(broker.Count(n)) }
func (e *encoder) result(r Result) { e.add(e.p.codec.resultValue(r)) }
func (e *encoder) results(rs []Result) {
	e.add(resultsValue(e.p.codec, rs))
}
func (e *encoder) addr(a netip.Addr) { e.addErr(addrValue(a)) }
func (e *encoder) config(c Configuration) {
	e.addErr(configurationValue(e.p.codec, c))
}
func (e *encoder) node(n Node)          { e.addErr(e.p.codec.nodeValue(n)) }
func (e *encoder) state(s State)        { e.addErr(e.p.codec.stateValue(s)) }
func (e *encoder) stringSet(s []string) { e.add(broker.StringSet(s...)) }

// argReader converts an event's arguments one by one. After the first
// failure every further read returns a zero value, so a signature's decode
// can be written as one composite literal.
type argReader struct {
	p      *Profile
	args   []broker.Value
	failed int // index of the first failed argument, or -1
	err    error
}

func (a *argReader) ok() bool { return a.failed < 0 }

func (a *argReader) fail(i int, err error) {
	if a.failed < 0 {
		a.failed, a.err = i, err
	}
}

func (a *argReader) str(i int) string {
	if !a.ok() {
		return ""
	}
	s, err := asString(a.args[i])
	a.check(i, err)
	return s
}

func (a *argReader) boolean(i int) bool {
	if !a.ok() {
		return false
	}
	b, err := asBool(a.args[i])
	a.check(i, err)
	return b
}

func (a *argReader) count(i int) uint64 {
	if !a.ok() {
		return 0
	}
	n, err := asCount(a.args[i])
	a.check(i, err)
	return n
}

func (a *argReader) addr(i int) netip.Addr {
	if !a.ok() {
		return netip.Addr{}
	}
	ip, err := asAddr(a.args[i])
	a.check(i, err)
	return ip
}

func (a *argReader) strings(i int) []string {
	if !a.ok() {
		return nil
	}
	s, err := decodeStrings(a.args[i])
	a.check(i, err)
	return s
}

func (a *argReader) stringSet(i int) []string {
	if !a.ok() {
		return nil
	}
	s, err := decodeStringSet(a.args[i])
	a.check(i, err)
	return s
}

func (a *argReader) config(i int) Configuration {
	if !a.ok() {
		return Configuration{}
	}
	c, err := decodeConfiguration(a.p.codec, a.args[i])
	a.check(i, err)
	return c
}

func (a *argReader) node(i int) Node {
	if !a.ok() {
		return Node{}
	}
	n, err := a.p.codec.decodeNode(a.args[i])
	a.check(i, err)
	return n
}

func (a *argReader) state(i int) State {
	if !a.ok() {
		return 0
	}
	s, err := a.p.codec.decodeState(a.args[i])
	a.check(i, err)
	return s
}

func (a *argReader) result(i int) Result {
	if !a.ok() {
		return Result{}
	}
	r, err := a.p.codec.decodeResult(a.args[i])
	a.check(i, err)
	return r
}

func (a *argReader) results(i int) []Result {
	if !a.ok() {
		return nil
	}
	rs, err := decodeResults(a.p.codec, a.args[i])
	a.check(i, err)
	return rs
}

func (a *argReader) check(i int, err error) {
	if err != nil {
		a.fail(i, err)
	}
}

// Signatures shared by the dialects (spec clustercontroller-v1.md §3 and
// management-websocket.md §2.4/§2.5 agree on them). The Result, Node and
// State inside are converted by the profile's codec.
var (
	params1Reqid        = []string{"reqid"}
	params2ReqidResult  = []string{"reqid", "result"}
	params2ReqidConfig  = []string{"reqid", "config"}
	paramsNotifyMessage = []string{"instance", "msg", "node"}

	sigGetInstancesRequest = newSignature(params1Reqid,
		func(e *encoder, m GetInstancesRequest) { e.str(m.Reqid) },
		func(a *argReader) GetInstancesRequest { return GetInstancesRequest{Reqid: a.str(0)} })
	sigGetInstancesResponse = newSignature(params2ReqidResult,
		func(e *encoder, m GetInstancesResponse) { e.str(m.Reqid); e.result(m.Result) },
		func(a *argReader) GetInstancesResponse {
			return GetInstancesResponse{Reqid: a.str(0), Result: a.result(1)}
		})
	sigTestTimeoutRequest = newSignature([]string{"reqid", "with_state"},
		func(e *encoder, m TestTimeoutRequest) { e.str(m.Reqid); e.boolean(m.WithState) },
		func(a *argReader) TestTimeoutRequest {
			return TestTimeoutRequest{Reqid: a.str(0), WithState: a.boolean(1)}
		})
	sigTestTimeoutResponse = newSignature(params2ReqidResult,
		func(e *encoder, m TestTimeoutResponse) { e.str(m.Reqid); e.result(m.Result) },
		func(a *argReader) TestTimeoutResponse {
			return TestTimeoutResponse{Reqid: a.str(0), Result: a.result(1)}
		})
	sigNotifyAgentsReady = newSignature([]string{"instances"},
		func(e *encoder, m NotifyAgentsReady) { e.stringSet(m.Instances) },
		func(a *argReader) NotifyAgentsReady { return NotifyAgentsReady{Instances: a.stringSet(0)} })

	sigAgentWelcomeRequest = newSignature(params1Reqid,
		func(e *encoder, m AgentWelcomeRequest) { e.str(m.Reqid) },
		func(a *argReader) AgentWelcomeRequest { return AgentWelcomeRequest{Reqid: a.str(0)} })
	sigAgentWelcomeResponse = newSignature(params2ReqidResult,
		func(e *encoder, m AgentWelcomeResponse) { e.str(m.Reqid); e.result(m.Result) },
		func(a *argReader) AgentWelcomeResponse {
			return AgentWelcomeResponse{Reqid: a.str(0), Result: a.result(1)}
		})
	sigAgentStandbyRequest = newSignature(params1Reqid,
		func(e *encoder, m AgentStandbyRequest) { e.str(m.Reqid) },
		func(a *argReader) AgentStandbyRequest { return AgentStandbyRequest{Reqid: a.str(0)} })
	sigAgentStandbyResponse = newSignature(params2ReqidResult,
		func(e *encoder, m AgentStandbyResponse) { e.str(m.Reqid); e.result(m.Result) },
		func(a *argReader) AgentStandbyResponse {
			return AgentStandbyResponse{Reqid: a.str(0), Result: a.result(1)}
		})
	sigNotifyChange = newSignature([]string{"instance", "n", "old", "new"},
		func(e *encoder, m NotifyChange) { e.str(m.Instance); e.node(m.Node); e.state(m.Old); e.state(m.New) },
		func(a *argReader) NotifyChange {
			return NotifyChange{Instance: a.str(0), Node: a.node(1), Old: a.state(2), New: a.state(3)}
		})
	sigNotifyError = newSignature(paramsNotifyMessage,
		func(e *encoder, m NotifyError) { e.str(m.Instance); e.str(m.Msg); e.str(m.Node) },
		func(a *argReader) NotifyError { return NotifyError{Instance: a.str(0), Msg: a.str(1), Node: a.str(2)} })
	sigNotifyLog = newSignature(paramsNotifyMessage,
		func(e *encoder, m NotifyLog) { e.str(m.Instance); e.str(m.Msg); e.str(m.Node) },
		func(a *argReader) NotifyLog { return NotifyLog{Instance: a.str(0), Msg: a.str(1), Node: a.str(2)} })
)
