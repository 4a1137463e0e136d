package fakeagent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/zcc-harness/zcc/api"
)

// ConnectMode says who opens the connection.
type ConnectMode string

// Connect directions.
const (
	// ConnectDial: the agent dials the controller (Instance without a
	// listen port). The default.
	ConnectDial ConnectMode = "dial"
	// ConnectListen: the agent listens on 127.0.0.1 and the controller
	// dials it (Instance with a listen port).
	ConnectListen ConnectMode = "listen"
)

// HelloPolicy says when the agent announces itself.
type HelloPolicy string

// Hello policies.
const (
	// HelloOnce: one hello per connection, as a Zeek 4.2 agent does on
	// every peering. The default.
	HelloOnce HelloPolicy = "once"
	// HelloRepeat: a hello at once and then every HelloInterval until the
	// agent is welcomed. The default of profile mgmt: a Zeek controller
	// drops the hello of a WebSocket agent that is not yet in its
	// configuration, and welcomes it only on a later hello (spec
	// management-websocket.md §3.6).
	HelloRepeat HelloPolicy = "repeat"
	// HelloNone: never say hello.
	HelloNone HelloPolicy = "none"
)

// Backoff bounds the delay between connection attempts: it starts at
// Initial and doubles up to Max.
type Backoff struct {
	Initial Duration `json:"initial,omitempty" yaml:"initial,omitempty"`
	Max     Duration `json:"max,omitempty" yaml:"max,omitempty"`
}

// Defaults.
const (
	DefaultHelloInterval  = time.Second
	DefaultBackoffInitial = 100 * time.Millisecond
	DefaultBackoffMax     = 5 * time.Second
	DefaultDialTimeout    = 5 * time.Second
	// DefaultQueueSize is the inbound queue of an agent's connection. A
	// controller sends an agent a handful of requests at a time; a small
	// queue keeps 10,000 agents' memory down (each slot is a Message).
	DefaultQueueSize = 16
)

// Options configure an Agent. The fields with a json tag are plain data,
// named as a YAML scenario names them; the others are Go-only.
type Options struct {
	// Name is the agent's instance name (required).
	Name string `json:"name" yaml:"name"`
	// Profile is the dialect; default api.CC42.
	Profile *api.Profile `json:"-" yaml:"-"`
	// Controller is where a dialing agent connects: a ws:// URL or
	// host:port (see ControllerURL).
	Controller string `json:"controller,omitempty" yaml:"controller,omitempty"`
	// Host is the address announced in the hello; default 127.0.0.1.
	Host netip.Addr `json:"host,omitempty" yaml:"host,omitempty"`
	// APIVersion is announced in the hello; default the profile's. Any
	// value, including 0, can be set.
	APIVersion *uint64 `json:"api_version,omitempty" yaml:"api_version,omitempty"`
	// Hello is the hello policy; default once per connection for cc42 and
	// repeat (until welcomed) for mgmt.
	Hello HelloPolicy `json:"hello,omitempty" yaml:"hello,omitempty"`
	// HelloInterval is the repeat interval of HelloRepeat; default 1 s.
	HelloInterval Duration `json:"hello_interval,omitempty" yaml:"hello_interval,omitempty"`
	// Connect is the connect direction; default dial.
	Connect ConnectMode `json:"connect,omitempty" yaml:"connect,omitempty"`
	// ListenPort is the port a listening agent binds on 127.0.0.1 (0: any
	// free port, see Agent.URL and Agent.Port).
	ListenPort int `json:"listen_port,omitempty" yaml:"listen_port,omitempty"`
	// Backoff bounds reconnect delays; default 100 ms doubling to 5 s.
	Backoff Backoff `json:"backoff,omitempty" yaml:"backoff,omitempty"`
	// NoReconnect ends the agent when its first connection ends instead of
	// reconnecting.
	NoReconnect bool `json:"no_reconnect,omitempty" yaml:"no_reconnect,omitempty"`
	// Seed seeds the agent's random source, together with its name.
	Seed uint64 `json:"seed,omitempty" yaml:"seed,omitempty"`
	// Behaviour decides per request; nil rules mean a real agent's answers.
	Behaviour Behaviour `json:"behaviour,omitempty" yaml:"behaviour,omitempty"`
	// Hook decides per request in Go, before Behaviour.
	Hook Hook `json:"-" yaml:"-"`
	// ExactTopic makes the agent ignore requests published on another
	// agent's topic that its subscription prefix also matches ("a1" sees
	// "a10"'s traffic, spec §12.1). A real agent handles them.
	ExactTopic bool `json:"exact_topic,omitempty" yaml:"exact_topic,omitempty"`
	// IDValues are the script identifiers the agent's nodes know (mgmt
	// node_dispatch get_id_value), as JSON text, on top of
	// DefaultIDValues; other identifiers fail with "unknown id".
	IDValues map[string]string `json:"id_values,omitempty" yaml:"id_values,omitempty"`
	// TranscriptLimit keeps only the newest N entries (0: all).
	TranscriptLimit int `json:"transcript_limit,omitempty" yaml:"transcript_limit,omitempty"`
	// DialTimeout bounds one connection attempt; default 5 s.
	DialTimeout Duration `json:"dial_timeout,omitempty" yaml:"dial_timeout,omitempty"`
	// QueueSize is the connection's inbound queue; default DefaultQueueSize.
	QueueSize int `json:"-" yaml:"-"`
	// Epoch is the zero of transcript timestamps; default the agent's
	// creation. A fleet gives all its agents one epoch.
	Epoch time.Time `json:"-" yaml:"-"`
}

// ControllerURL turns host:port, ws://host:port or a full WebSocket URL into
// the URL of the controller's Broker WebSocket endpoint.
func ControllerURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("controller address is empty")
	}
	if !strings.Contains(s, "://") {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return "", fmt.Errorf("controller address %q: want host:port or a ws:// URL: %w", s, err)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return "", fmt.Errorf("controller address %q: port %q is not a number from 0 to 65535", s, port)
		}
		if host == "" {
			host = "127.0.0.1"
		}
		return "ws://" + net.JoinHostPort(host, port) + "/v1/messages/json", nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("controller URL %q: %w", s, err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return "", fmt.Errorf("controller URL %q: scheme must be ws or wss, not %q", s, u.Scheme)
	}
	if u.Host == "" {
		return "", fmt.Errorf("controller URL %q has no host", s)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/messages/json"
	}
	return u.String(), nil
}

// resolved is Options after defaults and checks.
type resolved struct {
	Options
	profile       *api.Profile
	url           string
	host          netip.Addr
	apiVersion    uint64
	helloInterval time.Duration
	backoffInit   time.Duration
	backoffMax    time.Duration
	dialTimeout   time.Duration
	queueSize     int
}

func (o Options) resolve() (resolved, error) {
	r := resolved{Options: o}
	var errs []error
	if o.Name == "" {
		errs = append(errs, errors.New("name: required"))
	}
	r.profile = o.Profile
	if r.profile == nil {
		r.profile = api.CC42
	}
	switch o.Connect {
	case "", ConnectDial:
		r.Connect = ConnectDial
		if o.Controller == "" {
			errs = append(errs, errors.New("controller: required for a dialing agent"))
		} else if u, err := ControllerURL(o.Controller); err != nil {
			errs = append(errs, fmt.Errorf("controller: %w", err))
		} else {
			r.url = u
		}
	case ConnectListen:
		if o.ListenPort < 0 || o.ListenPort > 65535 {
			errs = append(errs, fmt.Errorf("listen_port: %d is not a port from 0 to 65535", o.ListenPort))
		}
	default:
		errs = append(errs, fmt.Errorf("connect: %q is neither %q nor %q", o.Connect, ConnectDial, ConnectListen))
	}
	switch o.Hello {
	case "":
		r.Hello = HelloOnce
		if r.profile == api.Mgmt {
			r.Hello = HelloRepeat
		}
	case HelloOnce, HelloRepeat, HelloNone:
	default:
		errs = append(errs, fmt.Errorf("hello: %q is not one of %q, %q, %q", o.Hello, HelloOnce, HelloRepeat, HelloNone))
	}
	r.host = o.Host
	if !r.host.IsValid() {
		r.host = defaultHost
	}
	r.apiVersion = r.profile.APIVersion
	if o.APIVersion != nil {
		r.apiVersion = *o.APIVersion
	}
	r.helloInterval = pick(o.HelloInterval.D(), DefaultHelloInterval)
	r.backoffInit = pick(o.Backoff.Initial.D(), DefaultBackoffInitial)
	r.backoffMax = pick(o.Backoff.Max.D(), DefaultBackoffMax)
	if r.backoffMax < r.backoffInit {
		r.backoffMax = r.backoffInit
	}
	r.dialTimeout = pick(o.DialTimeout.D(), DefaultDialTimeout)
	for name, d := range map[string]Duration{"hello_interval": o.HelloInterval, "backoff.initial": o.Backoff.Initial,
		"backoff.max": o.Backoff.Max, "dial_timeout": o.DialTimeout} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s: must not be negative, got %s", name, d))
		}
	}
	r.queueSize = o.QueueSize
	if r.queueSize <= 0 {
		r.queueSize = DefaultQueueSize
	}
	for _, id := range sortedKeys(o.IDValues) {
		if !json.Valid([]byte(o.IDValues[id])) {
			errs = append(errs, fmt.Errorf("id_values.%s: %q is not JSON text (a string value needs its quotes)", id, o.IDValues[id]))
		}
	}
	if o.TranscriptLimit < 0 {
		errs = append(errs, fmt.Errorf("transcript_limit: must not be negative, got %d", o.TranscriptLimit))
	}
	if err := o.Behaviour.Validate(r.profile); err != nil {
		errs = append(errs, fmt.Errorf("behaviour: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		if o.Name != "" {
			return r, fmt.Errorf("agent %s: %w", o.Name, err)
		}
		return r, fmt.Errorf("agent: %w", err)
	}
	return r, nil
}

func pick(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Uint64 returns a pointer to v, for Options.APIVersion.
func Uint64(v uint64) *uint64 { return &v }
