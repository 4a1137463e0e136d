package controller

import (
	"time"

	"github.com/zcc-harness/zcc/api"
)

// State is a read-only copy of the controller's state (spec §5.1).
type State struct {
	Mode Mode
	// Instances is g_instances: the instances of the last accepted
	// configuration, sorted by name.
	Instances []api.Instance
	// Known is g_instances_known, sorted.
	Known []string
	// KnownInstances (mgmt) are the known agents as get_instances lists
	// them, sorted by name.
	KnownInstances []api.Instance
	// Configs (mgmt) are the staged, ready and deployed configurations.
	Configs StoredConfigs
	// Ready is g_instances_ready, sorted.
	Ready []string
	// Pending is g_config_reqid_pending ("" when none).
	Pending string
	// Current is g_config_current, the last fully deployed configuration
	// (ID "" before any).
	Current api.Configuration
	// Speakers maps an instance to the peer its latest hello came from.
	Speakers map[string]Peer
	// Requests is the request table, oldest first.
	Requests []RequestInfo
}

// RequestInfo describes one entry of the request table.
type RequestInfo struct {
	ID string
	// Kind is what the request was created for: "set_configuration",
	// "test_timeout", "agent_welcome" or "agent_set_configuration"
	// (cc42); "stage_configuration", "deploy", "get_nodes",
	// "get_id_value", "restart", "agent_deploy", "agent_get_nodes",
	// "agent_node_dispatch" or "agent_restart" (mgmt).
	Kind     string
	Parent   string
	Created  time.Time
	Children []string
	// Target is the instance a welcome or child request went to.
	Target   string
	Finished bool
	Results  []api.Result
}

// Snapshot returns a deep copy of the core's state.
func (c *Core) Snapshot() State {
	s := State{
		Mode:     c.cfg.Mode,
		Known:    sortedKeys(c.known),
		Ready:    sortedKeys(c.ready),
		Pending:  c.pending,
		Current:  cloneConfig(c.current),
		Speakers: make(map[string]Peer, len(c.speakers)),
	}
	for _, name := range sortedKeys(c.instances) {
		s.Instances = append(s.Instances, c.instances[name])
	}
	for k, v := range c.speakers {
		s.Speakers[k] = v
	}
	if c.mgmt != nil {
		for _, name := range s.Known {
			s.KnownInstances = append(s.KnownInstances, c.known[name])
		}
		s.Configs = c.mgmt.configs.clone()
	}
	for e := c.table.order.Front(); e != nil; e = e.Next() {
		r := e.Value.(*request)
		info := RequestInfo{
			ID:       r.id,
			Kind:     r.kind.String(),
			Parent:   r.parent,
			Created:  r.created,
			Target:   r.target,
			Finished: r.finished,
			Results:  cloneResults(r.results),
		}
		var children []*request
		switch {
		case r.setConfig != nil:
			children = r.setConfig.children
		case r.deploy != nil:
			children = r.deploy.children
		case r.fanout != nil:
			children = r.fanout.children
		}
		for _, ch := range children {
			info.Children = append(info.Children, ch.id)
		}
		s.Requests = append(s.Requests, info)
	}
	return s
}

func cloneConfig(c api.Configuration) api.Configuration {
	out := api.Configuration{ID: c.ID}
	out.Instances = append([]api.Instance(nil), c.Instances...)
	out.Nodes = make([]api.Node, len(c.Nodes))
	for i, n := range c.Nodes {
		n.Scripts.V = append([]string(nil), n.Scripts.V...)
		n.Options.V = append([]api.Option(nil), n.Options.V...)
		if n.Env != nil {
			env := make(map[string]string, len(n.Env))
			for k, v := range n.Env {
				env[k] = v
			}
			n.Env = env
		}
		out.Nodes[i] = n
	}
	if c.Nodes == nil {
		out.Nodes = nil
	}
	return out
}
