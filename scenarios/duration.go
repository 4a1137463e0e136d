package scenarios

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/zcc-harness/zcc/suites"
)

// Timing names: the durations of the target that a scenario may write
// its own durations relative to, so that one file works against the
// in-process reference controller (100 ms request timeout) and against a
// real controller (10 s).
const (
	TimingControllerTimeout = "controller_timeout" // the controller's request timeout
	TimingExpirySweep       = "expiry_sweep"       // its expiry sweep interval
	TimingSlack             = "slack"              // scheduling slack added to computed deadlines
	TimingTimeoutLatest     = "timeout_latest"     // controller_timeout + expiry_sweep + slack: the latest a timeout Result may arrive
	TimingConsistency       = "consistency"        // how long to watch to conclude that something does not happen
	TimingResponseWait      = "response_wait"      // the bound on a response that must come
	TimingHello             = "hello"              // the bound on agents saying hello and being welcomed
)

var timingNames = []string{
	TimingControllerTimeout, TimingExpirySweep, TimingSlack, TimingTimeoutLatest,
	TimingConsistency, TimingResponseWait, TimingHello,
}

// Timing is a target's timing, the values timing names stand for.
type Timing map[string]time.Duration

// TimingOf derives the timing names from a run's timeouts.
func TimingOf(t suites.Timeouts) Timing {
	_, latest := t.TimeoutWindow()
	return Timing{
		TimingControllerTimeout: t.ControllerRequest,
		TimingExpirySweep:       t.ExpirySweep,
		TimingSlack:             t.Slack,
		TimingTimeoutLatest:     latest,
		TimingConsistency:       t.Consistency,
		TimingResponseWait:      t.ResponseWait,
		TimingHello:             t.Hello,
	}
}

// referenceTiming is a timing a scenario is checked against at load time:
// a duration that cannot work under one of them is an error.
type referenceTiming struct {
	label  string
	timing Timing
}

// referenceTimings are the in-process defaults of `make conform` and the
// timing of a real Zeek 4.2 controller (10 s request timeout, swept every
// 10 s, spec §6.3).
var referenceTimings = []referenceTiming{
	{"in-process", TimingOf(suites.DefaultConfig().Timeouts)},
	{"against Zeek's own timing", TimingOf(suites.Timeouts{
		Connect: 10 * time.Second, Hello: 10 * time.Second,
		ControllerRequest: 10 * time.Second, ExpirySweep: 10 * time.Second,
		ResponseWait: 30 * time.Second, Consistency: 2 * time.Second, Slack: 2 * time.Second,
	})},
}

// Duration is a duration in a scenario: a sum of terms, each an absolute
// duration ("50ms", "2s"), a timing name ("controller_timeout") or a
// multiple of one ("0.5x controller_timeout"). It is resolved against the
// target's Timing when the scenario runs.
type Duration struct {
	terms []durationTerm
	text  string
}

type durationTerm struct {
	abs    time.Duration
	factor float64
	name   string // empty for an absolute term
}

var relativeTerm = regexp.MustCompile(`^(?:([0-9]+(?:\.[0-9]+)?)x\s*)?([a-z_]+)$`)

// ParseDuration reads a scenario duration.
func ParseDuration(s string) (Duration, error) {
	text := strings.TrimSpace(s)
	if text == "" {
		return Duration{}, fmt.Errorf("empty duration")
	}
	d := Duration{text: text}
	for _, part := range strings.Split(text, "+") {
		part = strings.TrimSpace(part)
		if v, err := time.ParseDuration(part); err == nil {
			if v < 0 {
				return Duration{}, fmt.Errorf("duration %q is negative", part)
			}
			d.terms = append(d.terms, durationTerm{abs: v})
			continue
		}
		m := relativeTerm.FindStringSubmatch(part)
		if m == nil || !isTimingName(m[2]) {
			return Duration{}, fmt.Errorf("%q is not a duration: want an absolute one (50ms, 2s), a timing name (%s), a multiple of one (0.5x controller_timeout), or a sum of these joined by +",
				part, strings.Join(timingNames, ", "))
		}
		f := 1.0
		if m[1] != "" {
			f, _ = strconv.ParseFloat(m[1], 64)
			if f <= 0 {
				return Duration{}, fmt.Errorf("%q: the factor must be positive", part)
			}
		}
		d.terms = append(d.terms, durationTerm{factor: f, name: m[2]})
	}
	return d, nil
}

func isTimingName(s string) bool {
	for _, n := range timingNames {
		if n == s {
			return true
		}
	}
	return false
}

// MustDuration is ParseDuration for constants in Go code.
func MustDuration(s string) Duration {
	d, err := ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return d
}

// IsZero reports whether d was not given.
func (d Duration) IsZero() bool { return len(d.terms) == 0 }

// String returns d as written.
func (d Duration) String() string { return d.text }

// Relative reports whether d depends on the target's timing.
func (d Duration) Relative() bool {
	for _, t := range d.terms {
		if t.name != "" {
			return true
		}
	}
	return false
}

// Resolve returns d under timing t.
func (d Duration) Resolve(t Timing) time.Duration {
	var sum time.Duration
	for _, term := range d.terms {
		if term.name == "" {
			sum += term.abs
			continue
		}
		sum += time.Duration(term.factor * float64(t[term.name]))
	}
	return sum
}

// Or returns d, or def when d was not given.
func (d Duration) Or(def Duration) Duration {
	if d.IsZero() {
		return def
	}
	return d
}

// UnmarshalText parses a scenario duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalText writes d as it was written.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.text), nil }
