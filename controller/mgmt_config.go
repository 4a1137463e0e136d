package controller

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// validateConfig is Zeek 8.1's config_validate: one failure Result (only
// reqid and error set) per problem, sorted by error string. Each problem
// is reported once however often it occurs.
func validateConfig(reqid string, cfg api.Configuration, m *MgmtConfig) []api.Result {
	var errs []string

	instNames := map[string]bool{}
	dupInst := map[string]bool{}
	for _, inst := range cfg.Instances {
		if !instNames[inst.Name] {
			instNames[inst.Name] = true
			continue
		}
		if !dupInst[inst.Name] {
			errs = append(errs, fmt.Sprintf("multiple instances named '%s'", inst.Name))
			dupInst[inst.Name] = true
		}
	}
	nodeNames := map[string]bool{}
	dupNode := map[string]bool{}
	for _, n := range cfg.Nodes {
		if !nodeNames[n.Name] {
			nodeNames[n.Name] = true
			continue
		}
		if !dupNode[n.Name] {
			errs = append(errs, fmt.Sprintf("multiple nodes named '%s'", n.Name))
			dupNode[n.Name] = true
		}
	}

	// Zeek joins the names in set order; zcc sorts them.
	var both []string
	for name := range instNames {
		if nodeNames[name] {
			both = append(both, name)
		}
	}
	if len(both) > 0 {
		sort.Strings(both)
		errs = append(errs, "node and instance names collide: "+strings.Join(both, ", "))
	}

	for _, n := range cfg.Nodes {
		if !instNames[n.Instance] {
			errs = append(errs, fmt.Sprintf("node '%s' has undeclared instance name '%s'", n.Name, n.Instance))
		}
	}

	// Ports a node spells out must not collide with its agent's, the
	// controller's or another node's on the same instance.
	agentPorts := map[string]map[broker.Port]bool{}
	for _, inst := range cfg.Instances {
		if p, ok := inst.ListenPort.Get(); ok {
			if agentPorts[inst.Name] == nil {
				agentPorts[inst.Name] = map[broker.Port]bool{}
			}
			agentPorts[inst.Name][p] = true
		}
	}
	type instPort struct {
		instance string
		port     broker.Port
	}
	nodePorts := map[instPort]bool{}
	dupPorts := map[instPort]bool{}
	for _, n := range cfg.Nodes {
		p, ok := n.Port.Get()
		if !ok {
			continue
		}
		if agentPorts[n.Instance][p] {
			errs = append(errs, fmt.Sprintf("node '%s' port %s conflicts with agent port on instance '%s'", n.Name, p, n.Instance))
		}
		if p == m.BrokerPort {
			errs = append(errs, fmt.Sprintf("node '%s' port %s conflicts with controller port", n.Name, p))
		}
		key := instPort{n.Instance, p}
		if !nodePorts[key] {
			nodePorts[key] = true
			continue
		}
		if !dupPorts[key] {
			errs = append(errs, fmt.Sprintf("multiple nodes on instance '%s' using port %s", n.Instance, p))
			dupPorts[key] = true
		}
	}

	if m.NoBrokerPortAutoAssign {
		if lacking := nodesLackingBrokerPorts(cfg); len(lacking) > 0 {
			errs = append(errs, fmt.Sprintf("Broker port auto-assignment disabled but nodes %s lack ports", strings.Join(lacking, ", ")))
		}
	}

	sort.Strings(errs) // Zeek sorts with strcmp: byte order
	out := make([]api.Result, len(errs))
	for i, e := range errs {
		out[i] = api.Result{Reqid: reqid, Success: false, Error: e}
	}
	return out
}

// needsBrokerPort reports the roles that listen for Broker peerings.
func needsBrokerPort(r api.ClusterRole) bool {
	return r == api.ClusterRoleManager || r == api.ClusterRoleLogger || r == api.ClusterRoleProxy
}

// roleRank is Zeek's role order for port assignment: manager, logger,
// proxy, worker.
func roleRank(r api.ClusterRole) int {
	switch r {
	case api.ClusterRoleManager:
		return 0
	case api.ClusterRoleLogger:
		return 1
	case api.ClusterRoleProxy:
		return 2
	}
	return 3
}

func nodesLackingBrokerPorts(cfg api.Configuration) []string {
	var names []string
	for _, n := range cfg.Nodes {
		if needsBrokerPort(n.Role) && !n.Port.Set {
			names = append(names, n.Name)
		}
	}
	sort.Strings(names)
	return names
}

// readyConfig is the READY copy of a staged configuration: agents that
// connect to the controller (host 0.0.0.0) and are known get the address
// they connect from, then Broker and metrics ports are auto-assigned.
func (c *Core) readyConfig(cfg api.Configuration) api.Configuration {
	out := cloneConfig(cfg)
	for i, inst := range out.Instances {
		known, ok := c.known[inst.Name]
		if ok && isUnspecifiedV4(inst.Host) && known.Host.IsValid() && !isUnspecifiedV4(known.Host) {
			out.Instances[i].Host = known.Host
		}
	}
	m := c.mgmt.cfg
	if !m.NoBrokerPortAutoAssign {
		assignBrokerPorts(&out, int(m.BrokerStartPort))
	}
	if !m.NoMetricsPortAutoAssign {
		assignMetricsPorts(&out, int(m.MetricsStartPort))
	}
	return out
}

func isUnspecifiedV4(a netip.Addr) bool { return a.Unmap() == unspecifiedV4 }

// sortForPorts orders nodes as Zeek 7+ assigns ports: by instance, then
// role (manager, logger, proxy, worker), then name.
func sortForPorts(idx []int, nodes []api.Node) {
	sort.SliceStable(idx, func(a, b int) bool {
		x, y := nodes[idx[a]], nodes[idx[b]]
		if x.Instance != y.Instance {
			return x.Instance < y.Instance
		}
		if rx, ry := roleRank(x.Role), roleRank(y.Role); rx != ry {
			return rx < ry
		}
		return x.Name < y.Name
	})
}

// assignBrokerPorts gives every manager, logger and proxy without a port
// the next free port from start, counting across all instances and
// skipping the ports agents and other nodes use (config_assign_broker_ports).
func assignBrokerPorts(cfg *api.Configuration, start int) {
	used := map[int]bool{}
	for _, inst := range cfg.Instances {
		if p, ok := inst.ListenPort.Get(); ok {
			used[int(p.Number)] = true
		}
	}
	var idx []int
	for i, n := range cfg.Nodes {
		if p, ok := n.Port.Get(); ok {
			used[int(p.Number)] = true
		} else if needsBrokerPort(n.Role) {
			idx = append(idx, i)
		}
	}
	sortForPorts(idx, cfg.Nodes)
	p := start
	for _, i := range idx {
		for used[p] {
			p++
		}
		if p > 65535 {
			return // out of ports: the rest stay without one
		}
		cfg.Nodes[i].Port = api.Some(broker.TCPPort(uint16(p)))
		used[p] = true
		p++
	}
}

// assignMetricsPorts gives every cluster node without a metrics port the
// next free port from start on its host: counting is per host address,
// skipping the host's agent, Broker and metrics ports
// (config_assign_metrics_ports). Zeek forgets the agent port of all but
// one of several instances sharing an address; zcc keeps them all.
func assignMetricsPorts(cfg *api.Configuration, start int) {
	hostOf := map[string]netip.Addr{}
	used := map[netip.Addr]map[int]bool{}
	next := map[netip.Addr]int{}
	for _, inst := range cfg.Instances {
		h := inst.Host.Unmap()
		hostOf[inst.Name] = h
		next[h] = start
		if used[h] == nil {
			used[h] = map[int]bool{}
		}
		if p, ok := inst.ListenPort.Get(); ok {
			used[h][int(p.Number)] = true
		}
	}
	var idx []int
	for i, n := range cfg.Nodes {
		h, ok := hostOf[n.Instance]
		if !ok {
			continue // validation rejects undeclared instances
		}
		if p, ok := n.Port.Get(); ok {
			used[h][int(p.Number)] = true
		}
		if p, ok := n.MetricsPort.Get(); ok {
			used[h][int(p.Number)] = true
		} else if n.Role != api.ClusterRoleNone {
			idx = append(idx, i)
		}
	}
	sortForPorts(idx, cfg.Nodes)
	for _, i := range idx {
		h := hostOf[cfg.Nodes[i].Instance]
		p := next[h]
		for used[h][p] {
			p++
		}
		if p > 65535 {
			continue
		}
		cfg.Nodes[i].MetricsPort = api.Some(broker.TCPPort(uint16(p)))
		used[h][p] = true
		next[h] = p + 1
	}
}
