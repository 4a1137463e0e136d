package scenarios

import (
	"strings"
	"testing"
	"time"

	"github.com/zcc-harness/zcc/suites"
)

func TestDurationResolvesAgainstTheTargetTiming(t *testing.T) {
	inproc := TimingOf(suites.DefaultConfig().Timeouts)
	zeek := referenceTimings[1].timing
	for _, tc := range []struct {
		in           string
		inproc, zeek time.Duration
		relative     bool
	}{
		{"50ms", 50 * time.Millisecond, 50 * time.Millisecond, false},
		{"0", 0, 0, false},
		{"1.5s", 1500 * time.Millisecond, 1500 * time.Millisecond, false},
		{"controller_timeout", 100 * time.Millisecond, 10 * time.Second, true},
		{"0.5x controller_timeout", 50 * time.Millisecond, 5 * time.Second, true},
		{"2xexpiry_sweep", 50 * time.Millisecond, 20 * time.Second, true},
		{"timeout_latest", 375 * time.Millisecond, 22 * time.Second, true},
		{"controller_timeout + expiry_sweep + 0.2x slack", 175 * time.Millisecond, 20400 * time.Millisecond, true},
		{" consistency + 10ms ", 110 * time.Millisecond, 2010 * time.Millisecond, true},
	} {
		d, err := ParseDuration(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got := d.Resolve(inproc); got != tc.inproc {
			t.Errorf("%q in-process = %s, want %s", tc.in, got, tc.inproc)
		}
		if got := d.Resolve(zeek); got != tc.zeek {
			t.Errorf("%q with Zeek's timing = %s, want %s", tc.in, got, tc.zeek)
		}
		if d.Relative() != tc.relative {
			t.Errorf("%q relative = %v", tc.in, d.Relative())
		}
		if d.String() != strings.TrimSpace(tc.in) {
			t.Errorf("%q renders as %q", tc.in, d.String())
		}
	}
}

func TestDurationRejects(t *testing.T) {
	for in, want := range map[string]string{
		"":                        "empty duration",
		"-5ms":                    `duration "-5ms" is negative`,
		"5":                       `"5" is not a duration`,
		"0x slack":                `"0x slack": the factor must be positive`,
		"half controller_timeout": `"half controller_timeout" is not a duration`,
		"request_timeout":         `"request_timeout" is not a duration`,
		"10ms +":                  `"" is not a duration`,
	} {
		_, err := ParseDuration(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one containing %q", in, err, want)
		}
	}
}

func TestDurationOr(t *testing.T) {
	def := MustDuration("consistency")
	if got := (Duration{}).Or(def); got.String() != "consistency" {
		t.Errorf("zero Or = %q", got)
	}
	if got := MustDuration("1s").Or(def); got.String() != "1s" {
		t.Errorf("given Or = %q", got)
	}
}
