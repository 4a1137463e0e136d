package scenarios

import (
	"github.com/zcc-harness/zcc/fakeagent"
)

// toFake turns a scenario rule into the fake agent's rule, resolving its
// durations against a timing and its instance names through mapName.
func (r Rule) toFake(t Timing, mapName func(string) string) fakeagent.Rule {
	out := fakeagent.Rule{
		Action:      r.Action,
		Delay:       fakeagent.Duration(r.Delay.Resolve(t)),
		Node:        r.Node,
		Error:       r.Error,
		Stdout:      r.Stdout,
		Stderr:      r.Stderr,
		Count:       r.Count,
		Probability: r.Probability,
	}
	if r.Instance != "" {
		out.Instance = mapName(r.Instance)
	}
	for _, step := range r.Sequence {
		out.Sequence = append(out.Sequence, step.toFake(t, mapName))
	}
	if r.Otherwise != nil {
		o := r.Otherwise.toFake(t, mapName)
		out.Otherwise = &o
	}
	return out
}

// toFake turns a scenario behaviour into the fake agent's.
func (b Behaviour) toFake(t Timing, mapName func(string) string) fakeagent.Behaviour {
	if len(b.On) == 0 {
		return fakeagent.Behaviour{}
	}
	on := make(map[string]fakeagent.Rule, len(b.On))
	for k, r := range b.On {
		on[k] = r.toFake(t, mapName)
	}
	return fakeagent.Behaviour{On: on}
}

// plainDelay returns the delay of the rule that decides event, when that
// rule is a plain one (no sequence, no probability): the delay every
// answer to event gets.
func (b Behaviour) plainDelay(event string) (Duration, bool) {
	r, ok := b.On[event]
	if !ok {
		r, ok = b.On[fakeagent.AnyRequest]
	}
	if !ok || len(r.Sequence) > 0 || r.Probability > 0 || r.Delay.IsZero() {
		return Duration{}, false
	}
	switch r.Action {
	case "", fakeagent.ActionReply, fakeagent.ActionFail, fakeagent.ActionTwice:
		return r.Delay, true
	}
	return Duration{}, false
}
