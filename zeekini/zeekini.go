// Package zeekini reads zeek-client's INI cluster configuration files into
// api.Configuration values, so that zcc's CLI, suites and scenarios accept
// the files operators already have.
//
// The format depends on the zeek-client generation. DialectCC42 is the one
// of zeek-client 0.2 (Zeek 4.2, the ClusterController API):
//
//	[instances]
//	instance-1 = 127.0.0.1:2151   # the controller connects to this agent
//	instance-2                    # this agent connects to the controller
//
//	[worker-01]                   # every other section is one node
//	instance = instance-1
//	role = worker                 # or "type"; manager|logger|proxy|worker|none
//	port = 5001
//	interface = eth0
//	cpu_affinity = 3
//	state = running               # the default
//
// (The trailing comments above are for this documentation only: like
// Python's configparser, the format has whole-line comments starting with
// '#' or ';' and no inline comments.)
//
// zcc is stricter than zeek-client 0.2, which logged and skipped bad node
// and instance entries, silently ignored unknown keys and crashed on a
// node key without a value. Here every problem is an error naming the file
// and line. The deliberate differences:
//
//   - unknown keys are errors: zeek-client 0.2 ignored them, so a typo such
//     as "intreface" silently changed the deployed cluster;
//   - a node must name an instance declared in [instances];
//   - instance names keep their case (configparser lowercased them, which
//     made "Instance-1" unreachable from a node's instance key);
//   - role and type must not both be given; [DEFAULT] (configparser's
//     defaults section) is not supported;
//   - IPv6 hosts are accepted in brackets, "[::1]:2151" (zeek-client 0.2
//     split host:port at the first colon and so could not take them).
//
// DialectMgmt is zeek-client 1.5's format (Zeek 5.2+, the Management
// API), and here zcc sends exactly what zeek-client sends for the same
// file, because operators feed both the same files:
//
//	[instances]                    # optional
//	instance-1                     # this agent connects to the controller
//	instance-2 = 10.0.0.2:2151     # the controller connects ([v6]:port too)
//
//	[manager]
//	instance = instance-1          # optional in every node or in none
//	role = manager                 # or type; Supervisor::MANAGER works too
//	port = 5000                    # optional: the controller assigns one
//	metrics_port = 9000            # optional
//	interface = eth0
//	cpu_affinity = 2
//	scripts = local.zeek "site/a b.zeek"   # shlex words, sent sorted
//	env = LANG=C GREETING="hello world"    # shlex KEY=VALUE words
//
// As in Python's configparser: keys are case-blind (so instance names in
// [instances] are lowercased, which zeek-client does too), [DEFAULT]'s keys
// are inherited by every section, values may continue on deeper-indented
// lines and use %(key)s and %%. As in zeek-client: without [instances] the
// nodes' instances are agents that connect; nodes without an instance use
// "agent-<hostname>"; a node's state, options and unknown keys are ignored
// (Options.Warn hears of them, as zeek-client -v shows them); problems
// zeek-client reports itself carry its exact words (Error.ZeekClient).
// Where zeek-client would die with a Python traceback (duplicate sections
// or keys, a host that is not an address, a bad %-reference, …) zcc
// reports the problem with its line instead; and it reports every problem,
// where zeek-client stops at the first.
package zeekini

import (
	"fmt"
	"io"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/client/uuid1"
)

// Dialect is one generation of zeek-client's configuration format.
type Dialect int

const (
	// DialectCC42 is zeek-client 0.2's format, for the cc42 profile.
	DialectCC42 Dialect = iota
	// DialectMgmt is zeek-client 1.5's format, for the mgmt profile (see
	// the package documentation's second half).
	DialectMgmt
)

func (d Dialect) String() string {
	switch d {
	case DialectCC42:
		return "cc42"
	case DialectMgmt:
		return "mgmt"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// DialectFor returns the format that goes with a profile.
func DialectFor(p *api.Profile) (Dialect, error) {
	if p != nil && p.Name == api.CC42.Name {
		return DialectCC42, nil
	}
	if p != nil && p.Name == api.Mgmt.Name {
		return DialectMgmt, nil
	}
	return 0, fmt.Errorf("no zeek-client configuration format for profile %v", p)
}

// Options tune Parse.
type Options struct {
	Dialect Dialect
	// NewID makes the configuration's id; default: a fresh uuid1 string,
	// as zeek-client does.
	NewID func() string
	// Hostname names the local host for DialectMgmt's instance-less
	// configurations (instance "agent-<hostname>"); default os.Hostname,
	// and "localhost" when that fails or is empty, as zeek-client does.
	Hostname func() string
	// Warn receives zeek-client 1.5's warnings about what DialectMgmt
	// ignores (a node's state, unexpected keys), which zeek-client shows
	// only with -v. Nil drops them.
	Warn func(msg string)
}

// Parse reads a configuration in zeek-client 0.2's format (DialectCC42).
// name labels errors ("cluster.ini:7: …"); use "<stdin>" for standard
// input. The error, if any, is an ErrorList.
func Parse(name string, r io.Reader) (api.Configuration, error) {
	return ParseOptions(name, r, Options{})
}

// ParseOptions is Parse with a choice of dialect and id.
func ParseOptions(name string, r io.Reader, opts Options) (api.Configuration, error) {
	if name == "" {
		name = "<input>"
	}
	errs := &errorList{name: name}
	f := readFile(errs, r, readRules{continuations: opts.Dialect == DialectMgmt})
	var cfg api.Configuration
	switch opts.Dialect {
	case DialectCC42:
		cfg = buildCC42(errs, f)
	case DialectMgmt:
		cfg = buildMgmt(errs, f, opts)
	default:
		return api.Configuration{}, fmt.Errorf("zeekini: unknown dialect %v", opts.Dialect)
	}
	if err := errs.err(); err != nil {
		return api.Configuration{}, err
	}
	newID := opts.NewID
	if newID == nil {
		newID = uuid1.New
	}
	cfg.ID = newID()
	return cfg, nil
}
