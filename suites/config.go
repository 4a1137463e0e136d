package suites

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/spf13/pflag"

	"github.com/zcc-harness/zcc/controller"
)

// Target modes.
const (
	TargetInproc    = "inproc"
	TargetExternal  = "external"
	TargetContainer = "container"
)

// Quirk modes a target declares: Zeek 4.2's behaviour or the repaired one.
const (
	QuirksZeek42 = "zeek42"
	QuirksFixed  = "fixed"
)

// Config is everything a conformance run needs. It loads from a YAML file,
// then ZCC_* environment variables, then flags: each layer overrides the
// one before (defaults < file < environment < flags).
type Config struct {
	// Profile is the API dialect: "cc42".
	Profile string `yaml:"profile"`
	// Target says which controller the specs talk to.
	Target TargetConfig `yaml:"target"`
	// Timeouts are every duration the harness waits on.
	Timeouts Timeouts `yaml:"timeouts"`
	// LabelFilter selects specs (Ginkgo label syntax, e.g. "pair:get_instances && !timeout").
	LabelFilter string `yaml:"label_filter"`
	// FocusStrings / SkipStrings select specs by text (regular expressions).
	Focus []string `yaml:"focus"`
	Skip  []string `yaml:"skip"`
	// ReportDir receives conformance-report.{json,yaml,md} and junit.xml.
	// Empty means no report files.
	ReportDir string `yaml:"report_dir"`
	// Seed randomises spec order and fake-agent faults; 0 picks one (the
	// report records it).
	Seed int64 `yaml:"seed"`
	// FailFast skips the rest of this configuration's specs after its
	// first failure (the suite self-test uses it: one failure is enough
	// to show a broken controller is caught).
	FailFast bool `yaml:"fail_fast"`
}

// TargetConfig describes the controller under test.
type TargetConfig struct {
	// Mode is inproc (the reference controller in this process), external
	// (a controller at URL) or container.
	Mode string `yaml:"mode"`
	// URL of an external controller: ws://host:port/v1/messages/json, or
	// host:port.
	URL string `yaml:"url"`
	// Quirks is the quirk mode the target declares (zeek42 or fixed); the
	// quirk specs expect that mode's behaviour. For inproc it also selects
	// the reference controller's mode.
	Quirks string `yaml:"quirks"`
	// Unsupported lists behaviour IDs the target does not claim (zcc
	// extensions such as set-config.listening-agent); their specs are
	// Skipped with that reason.
	Unsupported []string `yaml:"unsupported"`
	// Disabled lists behaviour IDs switched off by configuration; their
	// specs are reported as Disabled.
	Disabled []string `yaml:"disabled"`
	// Defects deliberately break the in-process reference controller
	// (names from controller.Defects, e.g. "no-pending-gate"): the suite
	// must then fail. This is how the suite tests itself; inproc only.
	Defects []string `yaml:"defects"`
	// MaxFrameSize is the largest frame the target accepts; the
	// oversized-frame spec sends one 64 KiB larger. Default 1 MiB.
	MaxFrameSize int64 `yaml:"max_frame_size"`
	// Container configures the container target.
	Container ContainerConfig `yaml:"container"`
}

// ContainerConfig is used by the container target.
type ContainerConfig struct {
	// Image to run; empty means build zcc's own image from the binary.
	Image string `yaml:"image"`
	// Command overrides the image's command.
	Command []string `yaml:"command"`
	// Env is extra environment for the container.
	Env map[string]string `yaml:"env"`
	// Port is the WebSocket port inside the container ("2150/tcp" or
	// "2149"); empty means the profile's default (cc42 2150, mgmt 2149).
	Port string `yaml:"port"`
	// RequireDocker turns a missing Docker engine into an Error instead of
	// a Skip (ZCC_REQUIRE_DOCKER=1).
	RequireDocker bool `yaml:"require_docker"`
	// ReadyLog is a regular expression for the log line that says the
	// controller is up; the harness then also probes it over the protocol.
	// Empty: "controller is live" for zcc's image (no command set),
	// protocol probe only otherwise.
	ReadyLog string `yaml:"ready_log"`
	// Build is a Docker build context directory (with its Dockerfile) to
	// build the image from once per run, instead of Image.
	Build string `yaml:"build"`
}

// Timeouts are the named durations of a run. Controller timings are pushed
// into targets that accept them (inproc, container), so timeout specs take
// about a second; for an external target they must match how that
// controller was started.
type Timeouts struct {
	// Connect bounds dialing the controller (and container readiness).
	Connect time.Duration `yaml:"connect"`
	// Hello bounds waiting for fake agents to be welcomed.
	Hello time.Duration `yaml:"hello"`
	// ControllerRequest is the controller's own request timeout (Zeek's
	// ClusterController::request_timeout).
	ControllerRequest time.Duration `yaml:"controller_request"`
	// ExpirySweep is the controller's expiry sweep interval (Zeek's
	// table_expire_interval): a timeout lands between ControllerRequest and
	// ControllerRequest+ExpirySweep after the request.
	ExpirySweep time.Duration `yaml:"expiry_sweep"`
	// ResponseWait bounds waiting for a response that must come.
	ResponseWait time.Duration `yaml:"response_wait"`
	// Consistency is how long the harness watches to conclude that
	// something does NOT happen (no response, no push).
	Consistency time.Duration `yaml:"consistency"`
	// Slack is added to computed deadlines to absorb scheduling delays.
	Slack time.Duration `yaml:"slack"`
}

// DefaultConfig is the configuration of `make conform`: the reference
// controller in-process with compressed timings.
func DefaultConfig() Config {
	return Config{
		Profile: "cc42",
		Target: TargetConfig{
			Mode:         TargetInproc,
			Quirks:       QuirksZeek42,
			MaxFrameSize: 1 << 20,
		},
		Timeouts: Timeouts{
			Connect:           10 * time.Second,
			Hello:             5 * time.Second,
			ControllerRequest: 100 * time.Millisecond,
			ExpirySweep:       25 * time.Millisecond,
			ResponseWait:      5 * time.Second,
			Consistency:       100 * time.Millisecond,
			Slack:             250 * time.Millisecond,
		},
	}
}

// TimeoutWindow is the interval in which a controller-side timeout is
// expected after the request: [ControllerRequest, ControllerRequest +
// ExpirySweep + Slack].
func (t Timeouts) TimeoutWindow() (earliest, latest time.Duration) {
	return t.ControllerRequest, t.ControllerRequest + t.ExpirySweep + t.Slack
}

// MgmtTimeoutWindow is TimeoutWindow for the Management profile: a real
// Zeek 8.1 expired requests anywhere from 0.6× the request timeout to
// 1.5× of timeout + sweep (real-zeek-8.1-observations.md §3), so the
// window is [ControllerRequest/2, 1.5 × (ControllerRequest + ExpirySweep)
// + Slack]. The reference controller keeps to the narrower TimeoutWindow.
func (t Timeouts) MgmtTimeoutWindow() (earliest, latest time.Duration) {
	return t.ControllerRequest / 2, (t.ControllerRequest+t.ExpirySweep)*3/2 + t.Slack
}

// LoadConfigFile reads a YAML config over base. Unknown keys are errors
// that name the file, line and column.
func LoadConfigFile(path string, base Config) (Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return base, fmt.Errorf("read config: %w", err)
	}
	cfg := base
	if err := yaml.UnmarshalWithOptions(raw, &cfg, yaml.Strict(), yaml.DisallowUnknownField()); err != nil {
		return base, fmt.Errorf("config %s: %s", path, yaml.FormatError(err, false, true))
	}
	return cfg, nil
}

// envVars maps ZCC_* variables to setters on a Config.
var envVars = []struct {
	name, help string
	set        func(*Config, string) error
}{
	{"ZCC_PROFILE", "API profile (cc42)", func(c *Config, v string) error { c.Profile = v; return nil }},
	{"ZCC_TARGET", "target mode: inproc, external, container", func(c *Config, v string) error { c.Target.Mode = v; return nil }},
	{"ZCC_URL", "URL of an external controller", func(c *Config, v string) error { c.Target.URL = v; return nil }},
	{"ZCC_QUIRKS", "quirk mode the target declares: zeek42 or fixed", func(c *Config, v string) error { c.Target.Quirks = v; return nil }},
	{"ZCC_UNSUPPORTED", "comma-separated behaviour IDs the target does not claim", func(c *Config, v string) error { c.Target.Unsupported = splitList(v); return nil }},
	{"ZCC_DISABLED", "comma-separated behaviour IDs to disable", func(c *Config, v string) error { c.Target.Disabled = splitList(v); return nil }},
	{"ZCC_DEFECTS", "comma-separated defects to inject into the inproc reference controller (suite self-test)", func(c *Config, v string) error { c.Target.Defects = splitList(v); return nil }},
	{"ZCC_IMAGE", "container image to test", func(c *Config, v string) error { c.Target.Container.Image = v; return nil }},
	{"ZCC_REQUIRE_DOCKER", "1: a missing Docker engine is an Error, not a Skip", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		c.Target.Container.RequireDocker = b
		return err
	}},
	{"ZCC_LABEL_FILTER", "Ginkgo label filter", func(c *Config, v string) error { c.LabelFilter = v; return nil }},
	{"ZCC_REPORT_DIR", "directory for conformance reports", func(c *Config, v string) error { c.ReportDir = v; return nil }},
	{"ZCC_SEED", "random seed", func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		c.Seed = n
		return err
	}},
	{"ZCC_TIMEOUT_CONNECT", "", durSetter(func(c *Config) *time.Duration { return &c.Timeouts.Connect })},
	{"ZCC_TIMEOUT_HELLO", "", durSetter(func(c *Config) *time.Duration { return &c.Timeouts.Hello })},
	{"ZCC_TIMEOUT_CONTROLLER_REQUEST", "", durSetter(func(c *Config) *time.Duration { return &c.Timeouts.ControllerRequest })},
	{"ZCC_TIMEOUT_EXPIRY_SWEEP", "", durSetter(func(c *Config) *time.Duration { return &c.Timeouts.ExpirySweep })},
	{"ZCC_TIMEOUT_RESPONSE_WAIT", "", durSetter(func(c *Config) *time.Duration { return &c.Timeouts.ResponseWait })},
	{"ZCC_TIMEOUT_CONSISTENCY", "", durSetter(func(c *Config) *time.Duration { return &c.Timeouts.Consistency })},
	{"ZCC_TIMEOUT_SLACK", "", durSetter(func(c *Config) *time.Duration { return &c.Timeouts.Slack })},
}

func durSetter(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return err
		}
		*field(c) = d
		return nil
	}
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// ApplyEnv overrides cfg from ZCC_* variables read through getenv.
func ApplyEnv(cfg Config, getenv func(string) string) (Config, error) {
	for _, e := range envVars {
		v := getenv(e.name)
		if v == "" {
			continue
		}
		if err := e.set(&cfg, v); err != nil {
			return cfg, fmt.Errorf("environment %s=%q: %w", e.name, v, err)
		}
	}
	return cfg, nil
}

// EnvHelp lists the ZCC_* variables, for --help texts.
func EnvHelp() string {
	var b strings.Builder
	for _, e := range envVars {
		help := e.help
		if help == "" {
			help = "duration, e.g. 1s"
		}
		fmt.Fprintf(&b, "  %-32s %s\n", e.name, help)
	}
	return b.String()
}

// Flags binds command-line flags for cfg's fields. After parsing, call
// ApplyFlags to copy only the flags the user actually set.
type Flags struct {
	fs   *pflag.FlagSet
	vals Config
}

// BindFlags registers zcc's conformance flags on fs.
func BindFlags(fs *pflag.FlagSet) *Flags {
	f := &Flags{fs: fs, vals: DefaultConfig()}
	v := &f.vals
	fs.StringVar(&v.Profile, "profile", v.Profile, "API profile")
	fs.StringVar(&v.Target.Mode, "target", v.Target.Mode, "target mode: inproc, external or container")
	fs.StringVar(&v.Target.URL, "url", "", "URL (or host:port) of an external controller")
	fs.StringVar(&v.Target.Quirks, "quirks", v.Target.Quirks, "quirk mode the target declares: zeek42 or fixed")
	fs.StringSliceVar(&v.Target.Unsupported, "unsupported", nil, "behaviour IDs the target does not claim (Skip with reason)")
	fs.StringSliceVar(&v.Target.Disabled, "disable", nil, "behaviour IDs to disable")
	fs.StringVar(&v.Target.Container.Image, "image", "", "container image to test (container target)")
	fs.StringSliceVar(&v.Target.Defects, "defect", nil, "inject a defect into the inproc reference controller, to see the suite catch it (e.g. no-pending-gate)")
	fs.StringVar(&v.LabelFilter, "label-filter", "", "Ginkgo label filter, e.g. 'pair:get_instances'")
	fs.StringSliceVar(&v.Focus, "focus", nil, "run only specs whose text matches this regular expression")
	fs.StringSliceVar(&v.Skip, "skip", nil, "skip specs whose text matches this regular expression")
	fs.StringVar(&v.ReportDir, "report-dir", "", "directory for conformance-report.{json,yaml,md} and junit.xml")
	fs.Int64Var(&v.Seed, "seed", 0, "random seed (0 picks one)")
	fs.DurationVar(&v.Timeouts.Connect, "timeout-connect", v.Timeouts.Connect, "connect timeout")
	fs.DurationVar(&v.Timeouts.Hello, "timeout-hello", v.Timeouts.Hello, "wait for agents to be welcomed")
	fs.DurationVar(&v.Timeouts.ControllerRequest, "timeout-controller-request", v.Timeouts.ControllerRequest, "the controller's request timeout")
	fs.DurationVar(&v.Timeouts.ExpirySweep, "timeout-expiry-sweep", v.Timeouts.ExpirySweep, "the controller's expiry sweep interval")
	fs.DurationVar(&v.Timeouts.ResponseWait, "timeout-response-wait", v.Timeouts.ResponseWait, "wait for a response that must come")
	fs.DurationVar(&v.Timeouts.Consistency, "timeout-consistency", v.Timeouts.Consistency, "watch this long to conclude something does not happen")
	fs.DurationVar(&v.Timeouts.Slack, "timeout-slack", v.Timeouts.Slack, "added to computed deadlines")
	return f
}

// flagFields maps flag names to the Config field they set.
var flagFields = map[string]func(dst, src *Config){
	"profile":                    func(d, s *Config) { d.Profile = s.Profile },
	"target":                     func(d, s *Config) { d.Target.Mode = s.Target.Mode },
	"url":                        func(d, s *Config) { d.Target.URL = s.Target.URL },
	"quirks":                     func(d, s *Config) { d.Target.Quirks = s.Target.Quirks },
	"unsupported":                func(d, s *Config) { d.Target.Unsupported = s.Target.Unsupported },
	"disable":                    func(d, s *Config) { d.Target.Disabled = s.Target.Disabled },
	"defect":                     func(d, s *Config) { d.Target.Defects = s.Target.Defects },
	"image":                      func(d, s *Config) { d.Target.Container.Image = s.Target.Container.Image },
	"label-filter":               func(d, s *Config) { d.LabelFilter = s.LabelFilter },
	"focus":                      func(d, s *Config) { d.Focus = s.Focus },
	"skip":                       func(d, s *Config) { d.Skip = s.Skip },
	"report-dir":                 func(d, s *Config) { d.ReportDir = s.ReportDir },
	"seed":                       func(d, s *Config) { d.Seed = s.Seed },
	"timeout-connect":            func(d, s *Config) { d.Timeouts.Connect = s.Timeouts.Connect },
	"timeout-hello":              func(d, s *Config) { d.Timeouts.Hello = s.Timeouts.Hello },
	"timeout-controller-request": func(d, s *Config) { d.Timeouts.ControllerRequest = s.Timeouts.ControllerRequest },
	"timeout-expiry-sweep":       func(d, s *Config) { d.Timeouts.ExpirySweep = s.Timeouts.ExpirySweep },
	"timeout-response-wait":      func(d, s *Config) { d.Timeouts.ResponseWait = s.Timeouts.ResponseWait },
	"timeout-consistency":        func(d, s *Config) { d.Timeouts.Consistency = s.Timeouts.Consistency },
	"timeout-slack":              func(d, s *Config) { d.Timeouts.Slack = s.Timeouts.Slack },
}

// Apply copies the flags the user set onto cfg.
func (f *Flags) Apply(cfg Config) Config {
	f.fs.Visit(func(fl *pflag.Flag) {
		if set, ok := flagFields[fl.Name]; ok {
			set(&cfg, &f.vals)
		}
	})
	return cfg
}

// LoadConfig layers defaults, the YAML file (if path is not empty), the
// environment and the flags, then validates the result.
func LoadConfig(path string, getenv func(string) string, flags *Flags) (Config, error) {
	cfg := DefaultConfig()
	var err error
	if path != "" {
		if cfg, err = LoadConfigFile(path, cfg); err != nil {
			return cfg, err
		}
	}
	if getenv != nil {
		if cfg, err = ApplyEnv(cfg, getenv); err != nil {
			return cfg, err
		}
	}
	if flags != nil {
		cfg = flags.Apply(cfg)
	}
	return cfg, cfg.Validate()
}

// Validate checks the config for values that cannot work.
func (c Config) Validate() error {
	var problems []string
	switch c.Target.Mode {
	case TargetInproc, TargetContainer:
	case TargetExternal:
		if c.Target.URL == "" {
			problems = append(problems, "target.mode external needs target.url (--url, ZCC_URL)")
		}
	default:
		problems = append(problems, fmt.Sprintf("target.mode %q: want inproc, external or container", c.Target.Mode))
	}
	if c.Target.Quirks != QuirksZeek42 && c.Target.Quirks != QuirksFixed {
		problems = append(problems, fmt.Sprintf("target.quirks %q: want zeek42 or fixed", c.Target.Quirks))
	}
	for _, d := range c.Target.Defects {
		if _, err := controller.ParseDefect(d); err != nil {
			problems = append(problems, "target.defects: "+err.Error())
		}
	}
	if len(c.Target.Defects) > 0 && c.Target.Mode != TargetInproc {
		problems = append(problems, "target.defects only applies to the inproc target")
	}
	if c.Target.MaxFrameSize <= 0 {
		problems = append(problems, "target.max_frame_size must be positive")
	}
	if c.Profile == "" {
		problems = append(problems, "profile is empty")
	}
	problems = append(problems, c.Target.Container.problems()...)
	t := c.Timeouts
	for name, d := range map[string]time.Duration{
		"connect": t.Connect, "hello": t.Hello, "controller_request": t.ControllerRequest,
		"expiry_sweep": t.ExpirySweep, "response_wait": t.ResponseWait, "consistency": t.Consistency,
	} {
		if d <= 0 {
			problems = append(problems, fmt.Sprintf("timeouts.%s must be positive, got %s", name, d))
		}
	}
	if t.Slack < 0 {
		problems = append(problems, "timeouts.slack must not be negative")
	}
	if _, latest := t.TimeoutWindow(); t.ResponseWait < latest {
		problems = append(problems, fmt.Sprintf("timeouts.response_wait (%s) must be at least controller_request + expiry_sweep + slack (%s), or timeout specs cannot see the timeout", t.ResponseWait, latest))
	} else if _, latest := t.MgmtTimeoutWindow(); c.Profile == "mgmt" && t.ResponseWait < latest {
		problems = append(problems, fmt.Sprintf("timeouts.response_wait (%s) must be at least 1.5 × (controller_request + expiry_sweep) + slack (%s) for profile mgmt, whose timeouts may come that late", t.ResponseWait, latest))
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		return fmt.Errorf("invalid config: %s", strings.Join(problems, "; "))
	}
	return nil
}

// YAML renders the effective config, for the start of a run and the
// report.
func (c Config) YAML() string {
	out, err := yaml.MarshalWithOptions(c, yaml.UseLiteralStyleIfMultiline(true))
	if err != nil {
		return fmt.Sprintf("(config not renderable: %v)", err)
	}
	return string(bytes.TrimSpace(out))
}
