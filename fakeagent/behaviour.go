package fakeagent

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/zcc-harness/zcc/api"
)

// Action is what an agent does with one incoming request. The values are
// the words a YAML scenario uses.
type Action string

// The action vocabulary.
const (
	// ActionReply answers as a real agent does (the default).
	ActionReply Action = "reply"
	// ActionFail answers with success=F, the error text Error and the node
	// Node (default: the first node of this agent in the configuration,
	// else the agent's name). A Zeek 4.2 controller needs the node (§5.7).
	// In answers that carry one Result per node (mgmt deploy, restart and
	// node_dispatch) only Node's Result fails; a failed deploy Result
	// carries the node's Stdout and Stderr as NodeOutputs, and no error
	// text unless Error is given, as Zeek sends it.
	ActionFail Action = "fail"
	// ActionFailNoNode answers with success=F and no node at all, which a
	// Zeek 4.2 controller cannot handle (spec §5.7 step 11). In answers
	// with one Result per node it sends a single Result naming only the
	// agent, as a Zeek agent does for its own failures (Error "request
	// timed out" imitates its timeout).
	ActionFailNoNode Action = "fail_no_node"
	// ActionNever sends nothing.
	ActionNever Action = "never"
	// ActionTwice sends the normal answer twice.
	ActionTwice Action = "twice"
	// ActionStaleReqid answers with the reqid of an earlier request this
	// agent received (an unknown one if there was none).
	ActionStaleReqid Action = "stale_reqid"
	// ActionUnknownReqid answers with a reqid nobody ever issued.
	ActionUnknownReqid Action = "unknown_reqid"
	// ActionOtherInstance answers naming Instance (default "<name>-other")
	// instead of the agent itself.
	ActionOtherInstance Action = "other_instance"
	// ActionMalformed sends a frame that is not valid JSON (the normal
	// answer's text cut in half) instead of the answer.
	ActionMalformed Action = "malformed"
	// ActionWrongType sends the answer with its reqid argument as a count
	// where a string belongs.
	ActionWrongType Action = "wrong_type"
	// ActionCloseBefore closes the connection cleanly instead of answering.
	ActionCloseBefore Action = "close_before"
	// ActionCloseAfter answers, then closes the connection cleanly.
	ActionCloseAfter Action = "close_after"
	// ActionResetBefore drops the TCP connection (no close frame) instead
	// of answering.
	ActionResetBefore Action = "reset_before"
	// ActionResetAfter answers, then drops the TCP connection.
	ActionResetAfter Action = "reset_after"
)

// Transcript-only actions: what the agent did with a frame that no rule
// decides about.
const (
	// ActionIgnore: the frame was malformed, undecodable, not a request an
	// agent answers, or arrived while the connection was closing.
	ActionIgnore Action = "ignore"
)

var hookActions = []Action{
	ActionReply, ActionFail, ActionFailNoNode, ActionNever, ActionTwice,
	ActionStaleReqid, ActionUnknownReqid, ActionOtherInstance, ActionMalformed,
	ActionWrongType, ActionCloseBefore, ActionCloseAfter, ActionResetBefore, ActionResetAfter,
}

// Actions lists the actions a Rule may name.
func Actions() []Action { return slices.Clone(hookActions) }

// Valid reports whether a is an action a Rule may name ("" counts as
// reply).
func (a Action) Valid() bool { return a == "" || slices.Contains(hookActions, a) }

// Injected reports whether a deviates from what a real agent does.
func (a Action) Injected() bool { return a != "" && a != ActionReply && a != ActionIgnore }

// Duration is a time.Duration written as text ("50ms", "1.5s") in JSON and
// YAML.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes d as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText accepts what time.ParseDuration accepts.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}

// Rule decides what an agent does with a request. It is one of:
//
//   - a plain action: Action (default reply) with its parameters Delay,
//     Node, Error and Instance;
//   - a sequence: Sequence lists steps, each a Rule that handles the next
//     Count messages (Count 0, allowed only on the last step, means every
//     remaining message); once the counted steps are used up the agent
//     replies normally;
//   - either of the above with Probability p in (0, 1]: each message takes
//     this rule with probability p, otherwise Otherwise (default reply).
//
// Rules nest: a sequence step may itself be probabilistic, and so on.
type Rule struct {
	Action Action `json:"action,omitempty" yaml:"action,omitempty"`
	// Delay postpones whatever the action sends (or the close/reset).
	Delay Duration `json:"delay,omitempty" yaml:"delay,omitempty"`
	// Node and Error are the failing node and error text of fail.
	Node  string `json:"node,omitempty" yaml:"node,omitempty"`
	Error string `json:"error,omitempty" yaml:"error,omitempty"`
	// Stdout and Stderr are the failing node's outputs (NodeOutputs) that
	// fail puts into a mgmt deploy_response.
	Stdout string `json:"stdout,omitempty" yaml:"stdout,omitempty"`
	Stderr string `json:"stderr,omitempty" yaml:"stderr,omitempty"`
	// Instance is the name other_instance claims.
	Instance string `json:"instance,omitempty" yaml:"instance,omitempty"`

	// Count is how many messages this rule handles as a sequence step.
	Count    int    `json:"count,omitempty" yaml:"count,omitempty"`
	Sequence []Rule `json:"sequence,omitempty" yaml:"sequence,omitempty"`

	Probability float64 `json:"probability,omitempty" yaml:"probability,omitempty"`
	Otherwise   *Rule   `json:"otherwise,omitempty" yaml:"otherwise,omitempty"`
}

// Do returns a plain rule for action.
func Do(action Action) Rule { return Rule{Action: action} }

// Fail returns a rule failing with node and error text.
func Fail(node, errText string) Rule { return Rule{Action: ActionFail, Node: node, Error: errText} }

// Delayed returns a rule that replies normally after d.
func Delayed(d time.Duration) Rule { return Rule{Action: ActionReply, Delay: Duration(d)} }

// Sequence returns a rule that walks through steps.
func Sequence(steps ...Rule) Rule { return Rule{Sequence: steps} }

// WithProbability returns r taken with probability p (otherwise a normal
// reply).
func WithProbability(p float64, r Rule) Rule {
	r.Probability = p
	return r
}

// Times returns r as a sequence step handling n messages.
func (r Rule) Times(n int) Rule {
	r.Count = n
	return r
}

// Validate checks r; errors name the offending field by its path below
// path (e.g. "on.set_configuration_request.sequence[1].action").
func (r Rule) Validate(path string) error {
	var errs []error
	r.validate(path, false, &errs)
	return errors.Join(errs...)
}

func (r Rule) validate(path string, inSequence bool, errs *[]error) {
	add := func(field, format string, args ...any) {
		p := field
		if path != "" {
			p = path + "." + field
		}
		*errs = append(*errs, fmt.Errorf("%s: %s", p, fmt.Sprintf(format, args...)))
	}
	if !r.Action.Valid() {
		add("action", "unknown action %q (known: %s)", r.Action, joinActions(hookActions))
	}
	if r.Delay < 0 {
		add("delay", "must not be negative, got %s", r.Delay)
	}
	if r.Count < 0 {
		add("count", "must not be negative, got %d", r.Count)
	}
	if r.Count != 0 && !inSequence {
		add("count", "only a sequence step has a count")
	}
	if r.Probability < 0 || r.Probability > 1 {
		add("probability", "must be within (0, 1], got %g", r.Probability)
	}
	if r.Otherwise != nil && r.Probability == 0 {
		add("otherwise", "only a rule with a probability has an otherwise")
	}
	if r.Node != "" && r.Action != ActionFail {
		add("node", "only action fail takes a node, not %q", r.actionOrReply())
	}
	if (r.Stdout != "" || r.Stderr != "") && r.Action != ActionFail {
		add("stdout", "only action fail takes node outputs (stdout, stderr), not %q", r.actionOrReply())
	}
	if r.Error != "" && r.Action != ActionFail && r.Action != ActionFailNoNode {
		add("error", "only actions fail and fail_no_node take an error text, not %q", r.actionOrReply())
	}
	if r.Instance != "" && r.Action != ActionOtherInstance {
		add("instance", "only action other_instance takes an instance, not %q", r.actionOrReply())
	}
	if len(r.Sequence) > 0 {
		if r.Action != "" || r.Delay != 0 {
			add("sequence", "a sequence carries its actions and delays in its steps, not beside them")
		}
		for i, s := range r.Sequence {
			sp := fmt.Sprintf("sequence[%d]", i)
			if path != "" {
				sp = path + "." + sp
			}
			if s.Count == 0 && i != len(r.Sequence)-1 {
				*errs = append(*errs, fmt.Errorf("%s.count: only the last step may handle all remaining messages (count 0); give this step a count", sp))
			}
			s.validate(sp, true, errs)
		}
	}
	if r.Otherwise != nil {
		op := "otherwise"
		if path != "" {
			op = path + "." + op
		}
		r.Otherwise.validate(op, false, errs)
	}
}

func (r Rule) actionOrReply() Action {
	if r.Action == "" {
		return ActionReply
	}
	return r.Action
}

func joinActions(as []Action) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}

// AnyRequest is the Behaviour key for every request without its own entry.
const AnyRequest = "*"

// Behaviour is an agent's declarative hook table: for each request it
// answers, keyed by the event's short name ("agent_welcome_request",
// "set_configuration_request", …, or AnyRequest), the rule that decides
// what to do. Requests without a rule get a normal reply.
type Behaviour struct {
	On map[string]Rule `json:"on,omitempty" yaml:"on,omitempty"`
}

// With returns a copy of b in which event is decided by r.
func (b Behaviour) With(event string, r Rule) Behaviour {
	on := make(map[string]Rule, len(b.On)+1)
	for k, v := range b.On {
		on[k] = v
	}
	on[event] = r
	return Behaviour{On: on}
}

// IsZero reports whether b has no rules (a real agent's behaviour).
func (b Behaviour) IsZero() bool { return len(b.On) == 0 }

// Validate checks every rule, and that every key names a request that an
// agent of profile p receives.
func (b Behaviour) Validate(p *api.Profile) error {
	keys := make([]string, 0, len(b.On))
	for k := range b.On {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		if k != AnyRequest {
			if _, ok := requestKindByName(p, k); !ok {
				errs = append(errs, fmt.Errorf("on.%s: not a request an agent of profile %s receives (known: %s)",
					k, p.Name, strings.Join(RequestNames(p), ", ")))
				continue
			}
		}
		if err := b.On[k].Validate("on." + k); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// rule returns the rule for a request, and its key.
func (b Behaviour) rule(event string) (Rule, string, bool) {
	if r, ok := b.On[event]; ok {
		return r, event, true
	}
	if r, ok := b.On[AnyRequest]; ok {
		return r, AnyRequest, true
	}
	return Rule{}, "", false
}

// Call describes one incoming request to a Hook.
type Call struct {
	Agent string        // the agent's name
	Event string        // the request's short name, e.g. "set_configuration_request"
	Kind  api.EventKind // the request's kind
	Msg   api.Message   // the decoded request
	Reqid string        // its reqid
	N     int           // 1 for the first request of this kind the agent received, 2 for the next…
}

// Hook decides about one request in Go. Returning false leaves the
// decision to the agent's Behaviour. The returned rule may be a sequence or
// probabilistic: its state is kept per request kind.
//
// An agent calls its hook on its connection goroutine, one request at a
// time and in arrival order; a hook shared by a fleet's agents is called
// concurrently by different agents. It must not block for long: the agent
// reads nothing else meanwhile.
type Hook func(Call) (Rule, bool)

// decision is a resolved plain rule: what to do with this very message.
type decision struct {
	action   Action
	delay    time.Duration
	node     string
	errText  string
	stdout   string
	stderr   string
	instance string
	// source says which rule decided ("on.set_configuration_request.sequence[1]", "hook", "default").
	source string
}

// ruleState keeps what rule evaluation needs between messages: sequence
// positions (keyed by rule path) and the random source.
type ruleState struct {
	counters map[string]int
	rng      *rand.Rand
}

// resolve turns r into the decision for the next message. path identifies
// r so that sequence positions survive between messages.
func (s *ruleState) resolve(r Rule, path string, newRNG func() *rand.Rand) decision {
	if r.Probability > 0 {
		if s.rng == nil {
			s.rng = newRNG()
		}
		if s.rng.Float64() >= r.Probability {
			if r.Otherwise != nil {
				return s.resolve(*r.Otherwise, path+".otherwise", newRNG)
			}
			return decision{action: ActionReply, source: path + ".otherwise"}
		}
	}
	if len(r.Sequence) > 0 {
		if s.counters == nil {
			s.counters = make(map[string]int)
		}
		n := s.counters[path]
		s.counters[path] = n + 1
		for i, step := range r.Sequence {
			if step.Count == 0 || n < step.Count {
				return s.resolve(step, fmt.Sprintf("%s.sequence[%d]", path, i), newRNG)
			}
			n -= step.Count
		}
		return decision{action: ActionReply, source: path + ".sequence(done)"}
	}
	return decision{
		action:   r.actionOrReply(),
		delay:    r.Delay.D(),
		node:     r.Node,
		errText:  r.Error,
		stdout:   r.Stdout,
		stderr:   r.Stderr,
		instance: r.Instance,
		source:   path,
	}
}

// describe renders the decision's parameters for the transcript.
func (d decision) describe() string {
	var parts []string
	if d.delay > 0 {
		parts = append(parts, "delay "+d.delay.String())
	}
	if d.node != "" {
		parts = append(parts, "node "+d.node)
	}
	if d.errText != "" {
		parts = append(parts, "error "+d.errText)
	}
	if d.stdout != "" {
		parts = append(parts, "stdout "+strconv.Quote(d.stdout))
	}
	if d.stderr != "" {
		parts = append(parts, "stderr "+strconv.Quote(d.stderr))
	}
	if d.instance != "" {
		parts = append(parts, "instance "+d.instance)
	}
	if d.source != "" {
		parts = append(parts, "rule "+d.source)
	}
	return strings.Join(parts, "; ")
}
