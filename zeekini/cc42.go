package zeekini

import (
	"net/netip"
	"strconv"
	"strings"
	"unicode"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// instancesSection is the one section that is not a node.
const instancesSection = "instances"

// cc42NodeKeys are the keys of a node section in zeek-client 0.2.
var cc42NodeKeys = []string{"cpu_affinity", "instance", "interface", "port", "role", "state", "type"}

// laterNodeKeys arrived with the Management framework's zeek-client; in a
// cc42 file they most likely mean the wrong profile was chosen.
var laterNodeKeys = map[string]bool{"scripts": true, "env": true, "metrics_port": true}

// cc42States are the node states of ClusterController::Types::State in
// Zeek 4.2 (no PENDING, which arrived later).
var cc42States = map[string]api.State{
	"RUNNING": api.StateRunning,
	"STOPPED": api.StateStopped,
	"FAILED":  api.StateFailed,
	"CRASHED": api.StateCrashed,
	"UNKNOWN": api.StateUnknown,
}

// cc42Roles are Supervisor::ClusterRole's names.
var cc42Roles = map[string]api.ClusterRole{
	"NONE":    api.ClusterRoleNone,
	"LOGGER":  api.ClusterRoleLogger,
	"MANAGER": api.ClusterRoleManager,
	"PROXY":   api.ClusterRoleProxy,
	"WORKER":  api.ClusterRoleWorker,
}

// buildCC42 gives f zeek-client 0.2's meaning.
func buildCC42(errs *errorList, f *file) api.Configuration {
	var cfg api.Configuration
	declared := map[string]bool{}
	if s := f.lookup(instancesSection); s != nil {
		cfg.Instances = cc42Instances(errs, s)
		for _, inst := range cfg.Instances {
			declared[inst.Name] = true
		}
	}
	for _, s := range f.sections {
		if s.name == instancesSection {
			continue
		}
		if strings.EqualFold(s.name, "DEFAULT") {
			errs.add(s.line, "section [%s] is configparser's defaults section, which zcc does not support; name the node differently", s.name)
			continue
		}
		if n, ok := cc42Node(errs, s, declared); ok {
			cfg.Nodes = append(cfg.Nodes, n)
		}
	}
	return cfg
}

// cc42Instances reads [instances]: "name = host:port" for an agent the
// controller connects to, a bare "name" for one that connects itself.
func cc42Instances(errs *errorList, s *section) []api.Instance {
	var out []api.Instance
	first := map[string]int{}
	for _, e := range s.entries {
		if strings.IndexFunc(e.key, unicode.IsSpace) >= 0 {
			errs.add(e.line, "instance name %q contains whitespace (a missing '=' before host:port?)", e.key)
			continue
		}
		if line, dup := first[e.key]; dup {
			errs.add(e.line, "duplicate instance %q (first on line %d)", e.key, line)
			continue
		}
		first[e.key] = e.line
		if !e.hasValue {
			out = append(out, api.Instance{Name: e.key, Host: netip.IPv4Unspecified()})
			continue
		}
		host, port, msg := parseHostPort(e.value)
		if msg != "" {
			errs.add(e.line, "instance %q: %s", e.key, msg)
			continue
		}
		out = append(out, api.Instance{Name: e.key, Host: host, ListenPort: api.Some(broker.TCPPort(port))})
	}
	return out
}

// parseHostPort reads "ip:port" or "[ipv6]:port". It returns a message
// saying what is wrong, or "".
func parseHostPort(v string) (netip.Addr, uint16, string) {
	var hostText, portText string
	if strings.HasPrefix(v, "[") {
		end := strings.IndexByte(v, ']')
		if end < 0 || !strings.HasPrefix(v[end+1:], ":") {
			return netip.Addr{}, 0, "want host:port with the IPv6 host in brackets, \"[addr]:port\", got " + strconv.Quote(v)
		}
		hostText, portText = v[1:end], v[end+2:]
	} else {
		switch strings.Count(v, ":") {
		case 0:
			return netip.Addr{}, 0, "want host:port, got " + strconv.Quote(v) + " (leave the value out for an agent that connects to the controller)"
		case 1:
			i := strings.IndexByte(v, ':')
			hostText, portText = v[:i], v[i+1:]
		default:
			return netip.Addr{}, 0, "want host:port, got " + strconv.Quote(v) + " (write an IPv6 host in brackets: [addr]:port)"
		}
	}
	hostText, portText = strings.TrimSpace(hostText), strings.TrimSpace(portText)
	host, err := netip.ParseAddr(hostText)
	if err != nil || host.Zone() != "" {
		return netip.Addr{}, 0, "host " + strconv.Quote(hostText) + " is not an IP address (zeek-client takes addresses, not names)"
	}
	port, msg := parsePortNumber(portText)
	if msg != "" {
		return netip.Addr{}, 0, msg
	}
	return host.Unmap(), port, ""
}

// parsePortNumber reads a decimal TCP port, 1 to 65535.
func parsePortNumber(s string) (uint16, string) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, "port " + strconv.Quote(s) + " is not a number between 1 and 65535"
	}
	return uint16(n), ""
}

// cc42Node reads one node section.
func cc42Node(errs *errorList, s *section, declared map[string]bool) (api.Node, bool) {
	n := api.Node{Name: s.name, State: api.StateRunning, Env: map[string]string{}}
	seen := map[string]entry{}
	ok := true
	for _, e := range s.entries {
		key := strings.ToLower(e.key)
		if prior, dup := seen[key]; dup {
			errs.add(e.line, "node [%s]: duplicate key %q (first on line %d)", s.name, key, prior.line)
			ok = false
			continue
		}
		seen[key] = e
		if !knownKey(key) {
			if laterNodeKeys[key] {
				errs.add(e.line, "node [%s]: key %q is not part of the cc42 format (zeek-client 0.2); it belongs to the Management framework's format", s.name, e.key)
			} else {
				errs.add(e.line, "node [%s]: unknown key %q (known: %s)", s.name, e.key, strings.Join(cc42NodeKeys, ", "))
			}
			ok = false
			continue
		}
		if !e.hasValue || e.value == "" {
			errs.add(e.line, "node [%s]: key %q needs a value", s.name, key)
			ok = false
			continue
		}
	}

	roleEntry, hasRole := seen["role"]
	if typeEntry, hasType := seen["type"]; hasType {
		if hasRole {
			errs.add(typeEntry.line, "node [%s]: both role (line %d) and type (line %d) given; use one", s.name, roleEntry.line, typeEntry.line)
			ok = false
		}
		roleEntry, hasRole = typeEntry, true
	}
	valued := func(e entry, present bool) bool { return present && e.hasValue && e.value != "" }

	if e, present := seen["instance"]; !present {
		errs.add(s.line, "node [%s] has no instance key", s.name)
		ok = false
	} else if valued(e, present) {
		if !declared[e.value] {
			errs.add(e.line, "node [%s]: instance %q is not declared in [instances]", s.name, e.value)
			ok = false
		}
		n.Instance = e.value
	}

	if !hasRole {
		errs.add(s.line, "node [%s] has no role (or type) key", s.name)
		ok = false
	} else if valued(roleEntry, true) {
		r, known := cc42Roles[strings.ToUpper(roleEntry.value)]
		if !known {
			errs.add(roleEntry.line, "node [%s]: role %q is not one of manager, logger, proxy, worker, none", s.name, roleEntry.value)
			ok = false
		}
		n.Role = r
	}

	if e, present := seen["port"]; !present {
		errs.add(s.line, "node [%s] has no port key (the cc42 Node record requires a port)", s.name)
		ok = false
	} else if valued(e, present) {
		p, msg := parsePortNumber(e.value)
		if msg != "" {
			errs.add(e.line, "node [%s]: %s", s.name, msg)
			ok = false
		}
		n.Port = api.Some(broker.TCPPort(p))
	}

	if e, present := seen["state"]; valued(e, present) {
		st, known := cc42States[strings.ToUpper(e.value)]
		if !known {
			errs.add(e.line, "node [%s]: state %q is not one of running, stopped, failed, crashed, unknown", s.name, e.value)
			ok = false
		}
		n.State = st
	}

	if e, present := seen["interface"]; valued(e, present) {
		n.Interface = api.Some(e.value)
	}

	if e, present := seen["cpu_affinity"]; valued(e, present) {
		v, err := strconv.ParseInt(e.value, 10, 64)
		if err != nil {
			errs.add(e.line, "node [%s]: cpu_affinity %q is not an integer", s.name, e.value)
			ok = false
		}
		n.CPUAffinity = api.Some(v)
	}
	return n, ok
}

func knownKey(k string) bool {
	for _, known := range cc42NodeKeys {
		if k == known {
			return true
		}
	}
	return false
}
