package zeekini

import (
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// defaultSection is configparser's defaults section: its keys appear in
// every other section unless that section sets them itself.
const defaultSection = "DEFAULT"

// mgmtNodeKeys are the node keys zeek-client 1.5 uses; it warns about any
// other key and ignores it ("type" is role's alias and "state" is ignored,
// but both still count as unexpected in its warning).
var mgmtNodeKeys = map[string]bool{
	"instance": true, "role": true, "scripts": true, "port": true,
	"interface": true, "cpu_affinity": true, "env": true, "metrics_port": true,
}

// mgmtSection is one section after configparser's processing: keys
// lowercased, [DEFAULT] merged in and %-interpolation applied.
type mgmtSection struct {
	name    string
	line    int
	entries []entry // own keys first, in file order, then inherited defaults
}

func (s *mgmtSection) get(key string) (entry, bool) {
	for _, e := range s.entries {
		if e.key == key {
			return e, true
		}
	}
	return entry{}, false
}

// buildMgmt gives f zeek-client 1.5's meaning (types.py
// Configuration.from_config_parser and Node.from_config_parser).
func buildMgmt(errs *errorList, f *file, opts Options) api.Configuration {
	warn := opts.Warn
	if warn == nil {
		warn = func(string) {}
	}
	sections := mgmtSections(errs, f)

	var cfg api.Configuration
	hasInstances := false
	instanceFree := 0
	firstInstanceFree := 0
	for _, s := range sections {
		if s.name == instancesSection {
			hasInstances = true
			cfg.Instances = mgmtInstances(errs, s)
			continue
		}
		ok := true
		for _, e := range s.entries {
			if !e.hasValue {
				errs.addZeekClient(e.line, fmt.Sprintf("config item %s.%s needs a value", s.name, e.key))
				ok = false
			}
		}
		if !ok {
			continue
		}
		if _, has := s.get("instance"); !has {
			instanceFree++
			if firstInstanceFree == 0 {
				firstInstanceFree = s.line
			}
		}
		if n, msg := mgmtNode(s, opts, warn); msg != "" {
			errs.addZeekClient(s.line, fmt.Sprintf(`invalid node "%s" configuration: %s`, s.name, msg))
		} else {
			cfg.Nodes = append(cfg.Nodes, n)
		}
	}
	// zeek-client's rule: an instance-free configuration is instance-free
	// throughout, and then has no [instances] section.
	if instanceFree > 0 {
		if instanceFree != countNodeSections(sections) {
			errs.addZeekClient(firstInstanceFree, "either all or no nodes must state instances")
		} else if hasInstances {
			errs.addZeekClient(firstInstanceFree, "omit instances section when skipping instances in node definitions")
		}
	}
	if !hasInstances {
		// Without [instances], every instance a node names is an agent
		// that connects to the controller.
		seen := map[string]bool{}
		for _, n := range cfg.Nodes {
			if !seen[n.Instance] {
				seen[n.Instance] = true
				cfg.Instances = append(cfg.Instances, api.Instance{Name: n.Instance, Host: netip.IPv4Unspecified()})
			}
		}
		sort.Slice(cfg.Instances, func(i, j int) bool { return cfg.Instances[i].Name < cfg.Instances[j].Name })
	}
	return cfg
}

func countNodeSections(sections []*mgmtSection) int {
	n := 0
	for _, s := range sections {
		if s.name != instancesSection {
			n++
		}
	}
	return n
}

// mgmtSections applies configparser's rules to f: keys are lowercased
// (and must then be unique), [DEFAULT] is not a section but its keys are
// inherited by all others, and values are %-interpolated.
func mgmtSections(errs *errorList, f *file) []*mgmtSection {
	var defaults []entry
	var out []*mgmtSection
	for _, s := range f.sections {
		ms := &mgmtSection{name: s.name, line: s.line}
		first := map[string]int{}
		for _, e := range s.entries {
			e.key = strings.ToLower(e.key)
			if line, dup := first[e.key]; dup {
				errs.add(e.line, "[%s]: duplicate key %q (first on line %d)", s.name, e.key, line)
				continue
			}
			first[e.key] = e.line
			ms.entries = append(ms.entries, e)
		}
		if s.name == defaultSection {
			defaults = ms.entries
			continue
		}
		out = append(out, ms)
	}
	for _, ms := range out {
		own := map[string]bool{}
		for _, e := range ms.entries {
			own[e.key] = true
		}
		for _, d := range defaults {
			if !own[d.key] {
				ms.entries = append(ms.entries, d)
			}
		}
		for i := range ms.entries {
			e := &ms.entries[i]
			if !e.hasValue {
				continue
			}
			v, err := interpolate(ms, e.value, 1)
			if err != "" {
				errs.add(e.line, "[%s] %s: %s", ms.name, e.key, err)
				continue
			}
			e.value = v
		}
	}
	return out
}

// interpolate applies configparser's BasicInterpolation: "%%" is a
// percent sign and "%(key)s" the value of another key of the section
// (or of [DEFAULT]). It returns a problem description or "".
func interpolate(s *mgmtSection, v string, depth int) (string, string) {
	if !strings.Contains(v, "%") {
		return v, ""
	}
	if depth > 10 {
		return "", "interpolation nested deeper than 10 levels"
	}
	var b strings.Builder
	rest := v
	for rest != "" {
		p := strings.IndexByte(rest, '%')
		if p < 0 {
			b.WriteString(rest)
			break
		}
		b.WriteString(rest[:p])
		rest = rest[p:]
		switch {
		case strings.HasPrefix(rest, "%%"):
			b.WriteByte('%')
			rest = rest[2:]
		case strings.HasPrefix(rest, "%("):
			end := strings.Index(rest, ")s")
			if end < 2 || strings.Contains(rest[2:end], ")") {
				return "", fmt.Sprintf("bad interpolation variable reference %q (write %%%% for a percent sign)", rest)
			}
			ref := strings.ToLower(rest[2:end])
			e, ok := s.get(ref)
			if !ok || !e.hasValue {
				return "", fmt.Sprintf("%%(%s)s refers to a key that is not set", ref)
			}
			sub, problem := interpolate(s, e.value, depth+1)
			if problem != "" {
				return "", problem
			}
			if b.Len()+len(sub) > maxLine {
				// Nested references can grow a value exponentially.
				return "", fmt.Sprintf("interpolated value longer than %d bytes", maxLine)
			}
			b.WriteString(sub)
			rest = rest[end+2:]
		default:
			return "", fmt.Sprintf("'%%' must be followed by '%%' or '(', found: %q (write %%%% for a percent sign)", rest)
		}
	}
	return b.String(), ""
}

// mgmtInstances reads [instances] as zeek-client 1.5 does: a bare name is
// an agent that connects to the controller, "name = host:port" one the
// controller connects to (split at the last colon; brackets around an
// IPv6 host are dropped).
func mgmtInstances(errs *errorList, s *mgmtSection) []api.Instance {
	var out []api.Instance
	for _, e := range s.entries {
		if !e.hasValue || e.value == "" {
			out = append(out, api.Instance{Name: e.key, Host: netip.IPv4Unspecified()})
			continue
		}
		i := strings.LastIndexByte(e.value, ':')
		if i <= 0 || i == len(e.value)-1 {
			errs.addZeekClient(e.line, fmt.Sprintf(`invalid spec for instance "%s": "%s" should be <host>:<port>`, e.key, e.value))
			continue
		}
		hostText := strings.Trim(e.value[:i], "[] ")
		portText := strings.TrimSpace(e.value[i+1:])
		// zeek-client dies with a Python traceback on the next two; zcc
		// says what is wrong instead.
		host, err := netip.ParseAddr(hostText)
		if err != nil || host.Zone() != "" {
			errs.add(e.line, "instance %q: host %q is not an IP address (zeek-client takes addresses, not names)", e.key, hostText)
			continue
		}
		port, ok := pythonInt(portText)
		if !ok || port < 1 || port > 65535 {
			errs.add(e.line, "instance %q: port %q is not a number between 1 and 65535", e.key, portText)
			continue
		}
		out = append(out, api.Instance{Name: e.key, Host: host.Unmap(), ListenPort: api.Some(broker.TCPPort(uint16(port)))})
	}
	return out
}

// mgmtNode reads one node section, checking in zeek-client's order; the
// first problem ends it, in zeek-client's words.
func mgmtNode(s *mgmtSection, opts Options, warn func(string)) (api.Node, string) {
	value := func(keys ...string) (string, string, bool) {
		for _, k := range keys {
			if e, ok := s.get(k); ok {
				return e.value, k, true
			}
		}
		return "", "", false
	}
	intValue := func(key string) (int64, bool, string) {
		v, _, ok := value(key)
		if !ok {
			return 0, false, ""
		}
		n, valid := pythonInt(v)
		if !valid {
			return 0, false, fmt.Sprintf(`cannot convert "%s.%s" value "%s" to int`, s.name, key, v)
		}
		return n, true, ""
	}

	n := api.Node{Name: s.name, State: api.StateRunning}
	instance, _, _ := value("instance")
	role, _, _ := value("role", "type")
	if state, _, ok := value("state"); ok && state != "" {
		warn(fmt.Sprintf(`ignoring node "%s" state "%s" in configuration`, s.name, state))
	}
	port, hasPort, msg := intValue("port")
	if msg != "" {
		return n, msg
	}
	if iface, _, ok := value("interface"); ok {
		n.Interface = api.Some(iface)
	}
	cpu, hasCPU, msg := intValue("cpu_affinity")
	if msg != "" {
		return n, msg
	}
	metrics, hasMetrics, msg := intValue("metrics_port")
	if msg != "" {
		return n, msg
	}
	if instance == "" {
		instance = "agent-" + hostname(opts)
	}
	n.Instance = instance
	if role == "" {
		return n, "node requires a role"
	}
	r, ok := lookupClusterRole(role)
	if !ok {
		return n, fmt.Sprintf(`role "%s" is invalid`, role)
	}
	n.Role = r
	if hasPort {
		if port < 1 || port > 65535 {
			return n, fmt.Sprintf("port %d outside valid range", port)
		}
		n.Port = api.Some(broker.TCPPort(uint16(port)))
	}
	if hasMetrics {
		if metrics < 1 || metrics > 65535 {
			// zeek-client's message names the Broker port here.
			shown := "None"
			if hasPort {
				shown = strconv.FormatInt(port, 10)
			}
			return n, fmt.Sprintf("metrics port %s outside valid range", shown)
		}
		n.MetricsPort = api.Some(broker.TCPPort(uint16(metrics)))
	}
	if hasCPU {
		n.CPUAffinity = api.Some(cpu)
	}
	if v, _, _ := value("scripts"); v != "" {
		scripts, err := shlexSplit(v)
		if err != nil {
			return n, err.Error()
		}
		// zeek-client sends the scripts sorted.
		sort.Strings(scripts)
		n.Scripts = api.Some(scripts)
	}
	if v, _, _ := value("env"); v != "" {
		items, err := shlexSplit(v)
		if err != nil {
			return n, fmt.Sprintf(`env value "%s" is invalid`, v)
		}
		env := map[string]string{}
		for _, item := range items {
			k, val, ok := strings.Cut(item, "=")
			if !ok {
				return n, fmt.Sprintf(`env value "%s" is invalid`, v)
			}
			env[k] = val
		}
		n.Env = env
	}
	var unexpected []string
	for _, e := range s.entries {
		if !mgmtNodeKeys[e.key] {
			unexpected = append(unexpected, e.key)
		}
	}
	if len(unexpected) > 0 {
		sort.Strings(unexpected)
		warn("ignoring unexpected keys: " + strings.Join(unexpected, ", "))
	}
	return n, ""
}

// lookupClusterRole is zeek-client's Enum.lookup: any "Module::" or
// "Class." qualification is dropped and the rest matched in upper case.
func lookupClusterRole(s string) (api.ClusterRole, bool) {
	if i := strings.LastIndex(s, "::"); i >= 0 {
		s = s[i+2:]
	}
	if i := strings.LastIndexByte(s, '.'); i >= 0 {
		s = s[i+1:]
	}
	r, ok := cc42Roles[strings.ToUpper(s)]
	return r, ok
}

// pythonInt parses a decimal integer as Python's int(str) does for ASCII
// input: surrounding whitespace, an optional sign, and single underscores
// between digits are allowed.
func pythonInt(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' || strings.Contains(s, "__") {
		return 0, false
	}
	digits := strings.ReplaceAll(s, "_", "")
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

func hostname(opts Options) string {
	if opts.Hostname != nil {
		if h := opts.Hostname(); h != "" {
			return h
		}
		return "localhost"
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}
