package fakeagent

import (
	"fmt"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// recentReqids is how many earlier reqids an agent remembers for
// stale_reqid.
const recentReqids = 8

// onFrame handles one incoming frame: decode, record, decide, act. It runs
// on the connection's loop, one frame at a time, so that decisions (and
// random draws) follow the order frames arrived in.
func (a *Agent) onFrame(s *session, topic string, raw []byte, data broker.Value, frameErr error) {
	e := Entry{Dir: In, Conn: s.num(), Topic: topic, Raw: string(raw), Action: ActionIgnore}
	if frameErr != nil {
		e.Err = frameErr.Error()
		e.Detail = "undecodable frame"
		a.transcript.add(e)
		return
	}
	ev, err := broker.EventFromValue(data)
	if err != nil {
		e.Err = err.Error()
		e.Detail = "payload is not a Zeek event"
		a.transcript.add(e)
		return
	}
	e.Event = ev.Name
	msg, err := a.profile.Decode(ev)
	if err != nil {
		e.Err = err.Error()
		e.Detail = "event does not decode in profile " + a.profile.Name
		a.transcript.add(e)
		return
	}
	kind := msg.Kind()
	e.Kind, e.Msg = kind, msg
	switch {
	case !isAgentRequest(kind):
		e.Detail = "not a request an agent answers"
		a.transcript.add(e)
		return
	case s.closing.Load():
		e.Detail = "the agent is closing this connection"
		a.transcript.add(e)
		return
	case a.opts.ExactTopic && topic != a.topic:
		e.Detail = "published on another agent's topic"
		a.transcript.add(e)
		return
	}

	reqid, _ := api.ReqidOf(msg)
	d, hookErr := a.decide(kind, msg, reqid)
	reply, why := a.normalReply(msg)
	e.Action = d.action
	e.Detail = d.describe()
	if reply == nil {
		e.Detail = joinDetail(e.Detail, "no answer: "+why)
	}
	if hookErr != nil {
		e.Err = hookErr.Error()
	}
	fault := d.action.Injected() || d.delay > 0
	e.Fault = fault
	stale := a.rememberReqid(kind, reqid)
	a.adopt(msg)
	a.transcript.add(e)
	if fault {
		a.update(func(st *Status) { st.FaultsInjected++ })
	}
	if isConfigKind(kind) {
		a.update(func(st *Status) { st.ConfigsReceived++ })
	}

	act := func() { a.act(s, d, msg, reply, stale) }
	if d.delay > 0 {
		s.after(d.delay, act)
		return
	}
	act()
}

func joinDetail(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// decide asks the hook, then the behaviour, what to do with msg.
func (a *Agent) decide(kind api.EventKind, msg api.Message, reqid string) (decision, error) {
	event := a.profile.ShortName(kind)
	a.mu.Lock()
	hook, beh := a.hook, a.behaviour
	a.mu.Unlock()
	if hook != nil {
		// Count already includes earlier messages of this kind; this one
		// is recorded after the decision.
		call := Call{Agent: a.name, Event: event, Kind: kind, Msg: msg, Reqid: reqid, N: a.transcript.Count(kind) + 1}
		if r, ok := hook(call); ok {
			if err := r.Validate("hook"); err != nil {
				return decision{action: ActionReply, source: "default (invalid hook rule)"},
					fmt.Errorf("hook returned an invalid rule for %s: %w", event, err)
			}
			return a.resolve(r, "hook@"+event), nil
		}
	}
	if r, key, ok := beh.rule(event); ok {
		path := "on." + key
		if key == AnyRequest {
			// Each request kind walks its own copy of a catch-all sequence.
			path += "@" + event
		}
		return a.resolve(r, path), nil
	}
	return decision{action: ActionReply}, nil
}

func (a *Agent) resolve(r Rule, path string) decision {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rules.resolve(r, path, a.newRNG)
}

// rememberReqid records reqid and returns the reqid a stale answer uses:
// the latest earlier reqid of the same kind, else of any kind ("" if none).
func (a *Agent) rememberReqid(kind api.EventKind, reqid string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	stale := ""
	for i := len(a.recent) - 1; i >= 0 && stale == ""; i-- {
		if r := a.recent[i]; r.kind == kind && r.reqid != reqid {
			stale = r.reqid
		}
	}
	for i := len(a.recent) - 1; i >= 0 && stale == ""; i-- {
		if r := a.recent[i]; r.reqid != reqid {
			stale = r.reqid
		}
	}
	if reqid != "" {
		if len(a.recent) == recentReqids {
			copy(a.recent, a.recent[1:])
			a.recent = a.recent[:recentReqids-1]
		}
		a.recent = append(a.recent, seenReqid{kind: kind, reqid: reqid})
	}
	return stale
}

// adopt applies what a request does to a real agent's state, whatever the
// agent then answers.
func (a *Agent) adopt(msg api.Message) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch m := msg.(type) {
	case api.AgentSetConfigurationRequest:
		c := m.Config
		a.config = &c
	case api.AgentDeployRequest, api.AgentRestartRequest:
		a.adoptMgmtLocked(m)
	case api.AgentStandbyRequest:
		// A real agent applies an empty configuration on standby (§7.4).
		a.config = nil
	}
}

// act carries out decision d for msg. reply is the normal answer (nil when
// a real agent sends none); stale is the reqid a stale answer uses.
func (a *Agent) act(s *session, d decision, msg api.Message, reply api.Message, stale string) {
	send := func(m api.Message) {
		if m != nil {
			_ = a.send(s, m, d.action)
		}
	}
	switch d.action {
	case ActionReply:
		send(reply)
	case ActionFail:
		if reply != nil {
			node := d.node
			if node == "" {
				node = a.defaultFailNode(msg)
			}
			if perNode(reply) {
				send(a.failNode(reply, node, d))
			} else {
				send(withFailure(reply, node, errTextOr(d.errText), true))
			}
		}
	case ActionFailNoNode:
		if reply != nil {
			if perNode(reply) {
				send(a.failAgent(reply, errTextOr(d.errText)))
			} else {
				send(withFailure(reply, "", errTextOr(d.errText), false))
			}
		}
	case ActionNever:
	case ActionTwice:
		send(reply)
		send(reply)
	case ActionStaleReqid:
		if reply != nil {
			if stale == "" {
				stale = a.unknownReqid()
			}
			send(withReqid(reply, stale))
		}
	case ActionUnknownReqid:
		if reply != nil {
			send(withReqid(reply, a.unknownReqid()))
		}
	case ActionOtherInstance:
		if reply != nil {
			inst := d.instance
			if inst == "" {
				inst = a.name + "-other"
			}
			send(withInstance(reply, inst))
		}
	case ActionMalformed:
		if reply != nil {
			a.sendMalformed(s, reply)
		}
	case ActionWrongType:
		if reply != nil {
			a.sendWrongType(s, reply)
		}
	case ActionCloseBefore:
		a.drop(s, false)
	case ActionCloseAfter:
		send(reply)
		a.drop(s, false)
	case ActionResetBefore:
		a.drop(s, true)
	case ActionResetAfter:
		send(reply)
		a.drop(s, true)
	}
}

func errTextOr(s string) string {
	if s == "" {
		return "injected failure"
	}
	return s
}

func (a *Agent) unknownReqid() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.unknownN++
	return fmt.Sprintf("zcc-unknown-%s-%d", a.name, a.unknownN)
}

// drop closes (kill=false) or resets the session's connection, off the
// loop goroutine: a clean close waits for the controller's close frame,
// and the loop must keep draining meanwhile.
func (a *Agent) drop(s *session, kill bool) {
	if s.closing.Swap(true) {
		return
	}
	detail := "closing the connection (action)"
	if kill {
		detail = "resetting the connection (action)"
	}
	a.transcript.add(Entry{Dir: State, Conn: s.num(), Detail: detail})
	s.background(func() {
		if kill {
			s.link.kill()
		} else {
			s.link.close()
		}
	})
}

// sendMalformed sends the reply's frame cut in half: never valid JSON,
// since the closing brace is gone.
func (a *Agent) sendMalformed(s *session, reply api.Message) {
	e := Entry{Dir: Out, Conn: s.num(), Topic: a.topic, Kind: reply.Kind(), Msg: reply, Action: ActionMalformed,
		Detail: "frame cut in half"}
	ev, err := a.profile.Encode(reply)
	if err == nil {
		e.Event = ev.Name
		var raw []byte
		if raw, err = broker.EventFrame(a.topic, ev).Encode(); err == nil {
			raw = raw[:len(raw)/2]
			e.Raw = string(raw)
			ctx, cancel := s.writeContext()
			err = s.link.writeRaw(ctx, raw)
			cancel()
		}
	}
	if err != nil {
		e.Err = err.Error()
	}
	a.transcript.add(e)
}

// sendWrongType sends the reply with its first argument (the reqid, a
// string in every answer) replaced by a count.
func (a *Agent) sendWrongType(s *session, reply api.Message) {
	e := Entry{Dir: Out, Conn: s.num(), Topic: a.topic, Kind: reply.Kind(), Msg: reply, Action: ActionWrongType,
		Detail: "reqid argument sent as count 4242"}
	ev, err := a.profile.Encode(reply)
	if err == nil {
		e.Event = ev.Name
		args := append([]broker.Value(nil), ev.Args...)
		if len(args) > 0 {
			args[0] = broker.Count(4242)
		}
		ev = broker.NewEvent(ev.Name, args...)
		var raw []byte
		if raw, err = broker.EventFrame(a.topic, ev).Encode(); err == nil {
			e.Raw = string(raw)
			ctx, cancel := s.writeContext()
			err = s.link.publish(ctx, a.topic, ev, raw)
			cancel()
		}
	}
	if err != nil {
		e.Err = err.Error()
	}
	a.transcript.add(e)
}
