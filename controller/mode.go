package controller

import (
	"fmt"
	"strings"
)

// Mode selects how faithfully the controller reproduces Zeek: Zeek 4.2
// under profile cc42, Zeek 8.1.2 under profile mgmt.
type Mode uint8

const (
	// ModeZeek42 reproduces the Zeek controller exactly, quirks included:
	// Zeek 4.2's under cc42 and, despite the name, Zeek 8.1.2's under mgmt.
	// It is the default because the reference controller is what other
	// controllers are compared with.
	ModeZeek42 Mode = iota
	// ModeFixed repairs every quirk listed in Quirks.
	ModeFixed
)

var modeNames = [...]string{ModeZeek42: "zeek42", ModeFixed: "fixed"}

func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", m)
}

// ParseMode accepts "zeek42" or "fixed".
func ParseMode(s string) (Mode, error) {
	for i, n := range modeNames {
		if s == n {
			return Mode(i), nil
		}
	}
	return 0, fmt.Errorf("unknown controller mode %q (want %s)", s, strings.Join(modeNames[:], " or "))
}

// Quirk names one Zeek 4.2 controller behaviour that ModeFixed repairs.
type Quirk uint8

// The quirks; their IDs, descriptions and per-mode behaviour are in Quirks.
const (
	QuirkZeroInstances Quirk = iota + 1
	QuirkDuplicateWelcome
	QuirkConnectivityChange
	QuirkFailureWithoutNode
	QuirkDuplicateReqid
	QuirkPeerLoss
	QuirkNoDeployedConfig
	QuirkAgentDataType
	QuirkRedeployReadyInstances
)

// QuirkInfo is one row of the quirk table.
type QuirkInfo struct {
	Quirk Quirk
	// ID is the behaviour-catalogue ID (behaviors-cc42.md).
	ID string
	// Description, Zeek42 and Fixed describe the quirk under profile
	// cc42; all empty when Zeek 4.2 does not have it.
	Description string
	Zeek42      string
	Fixed       string
	// Mgmt describes the quirk under profile mgmt (Zeek 8.1.2); nil when
	// Zeek 8.1.2 does not have it.
	Mgmt *ProfileQuirk
	// In lists the modes that reproduce the quirk.
	In []Mode
}

// ProfileQuirk describes a quirk under one profile: the situation, what
// Zeek does (ModeZeek42) and what ModeFixed does.
type ProfileQuirk struct {
	Description string
	Zeek        string
	Fixed       string
}

// Quirks is the single table of Zeek 4.2 quirks. The controller consults
// it (Mode.Has) wherever the two modes differ, and the README's table is
// generated from the same rows (QuirkTableMarkdown).
var Quirks = []QuirkInfo{
	{
		Quirk: QuirkZeroInstances, ID: "quirk.zero-instances",
		Description: "a set_configuration_request whose configuration has no instances",
		Zeek42:      "no agent gets a child request, so the client only ever gets the timeout Result",
		Fixed:       "answered at once: success, with an empty ResultVec",
		// Zeek 5.0 deploys a configuration without instances at once.
		In: []Mode{ModeZeek42},
	},
	{
		Quirk: QuirkDuplicateWelcome, ID: "quirk.duplicate-welcome",
		Description: "two welcome responses for one instance while a configuration is pending (duplicate hellos)",
		Zeek42:      "notify_agents_ready fires twice; every agent gets the configuration twice and the response repeats its Results",
		Fixed:       "an instance that is already ready does not re-run the ready check, and no agent gets a second child of the same request",
		Mgmt: &ProfileQuirk{
			Description: "two welcome responses for one instance while a deployment is pending (its hello repeated before it answered the first welcome)",
			Zeek:        "notify_agents_ready fires twice; every ready agent gets a second deploy_request and the deploy_response carries its Results twice",
			Fixed:       "an instance that is already ready does not re-run the ready check, and no agent gets a second deploy_request for one deployment",
		},
		In: []Mode{ModeZeek42},
	},
	{
		Quirk: QuirkConnectivityChange, ID: "quirk.connectivity-change",
		Description: "a kept instance whose host, port or connect direction changes",
		Zeek42:      "dropped (standby) and never re-added: it gets no configuration and the response omits it",
		Fixed:       "dropped, then re-added: welcomed again if known, dialled if listening, and configured",
		Mgmt: &ProfileQuirk{
			Description: "a deployment keeps an instance whose host, port or connect direction changed",
			Zeek:        "dropped (standby) and never re-added: it gets no deploy_request and the response has none of its Results",
			Fixed:       "dropped, then re-added: welcomed again if known, dialled if listening, and deployed to",
		},
		In: []Mode{ModeZeek42},
	},
	{
		Quirk: QuirkFailureWithoutNode, ID: "quirk.failure-without-node",
		Description: "an agent answers set_configuration with success F and no node",
		Zeek42:      "the aggregation aborts reading res$node: no response, the request times out (Results aggregated before the abort stay in front of the timeout Result)",
		Fixed:       "the response is sent; that agent's Result has success F and error `node ? failed: <e>`",
		// Zeek 5.0+ passes the agents' Results through unchanged.
		In: []Mode{ModeZeek42},
	},
	{
		Quirk: QuirkDuplicateReqid, ID: "quirk.duplicate-reqid",
		Description: "a client request reuses the reqid of a live request (e.g. the pending set_configuration)",
		Zeek42:      "the new request overwrites the shared state and finishing it deletes it: the pending request never completes or expires, so every later set_configuration is `still pending` forever",
		Fixed:       "rejected with `still pending` and the pending request is untouched; request ids are kept per kind, so no request or reply can match a request of another kind",
		Mgmt: &ProfileQuirk{
			Description: "a client request reuses the reqid of a live request (e.g. the pending deploy)",
			Zeek:        "the new request overwrites the shared state and finishing it deletes it: the pending deployment never completes or expires, so every later deploy is `earlier deployment <R> still pending` forever; live get_nodes, get_id_value or restart requests with one reqid share one state",
			Fixed:       "a deploy is rejected with `earlier deployment <R> still pending` and the pending one is untouched; request ids are kept per kind and every get_nodes, get_id_value and restart has a slot of its own, so each gets its own response",
		},
		In: []Mode{ModeZeek42},
	},
	{
		Quirk: QuirkPeerLoss, ID: "quirk.peer-loss",
		Description: "the connection of a ready agent goes away",
		Zeek42:      "nothing happens: the agent stays known and ready, configurations go into the void and time out",
		Fixed:       "the agent is marked not ready and not known at once; its outstanding child gets Result success F, error `agent <name> disconnected`, and the response goes out as soon as all children are finished",
		Mgmt: &ProfileQuirk{
			Description: "the connection of a known agent goes away",
			Zeek:        "it is no longer known or ready (Zeek's Broker::peer_lost), but the requests waiting for it time out; an agent that is not known (IdentityBrokerID, i.e. any WebSocket agent in Zeek) is never noticed at all",
			Fixed:       "as in Zeek, and every request waiting for that agent gets Result(F, instance, `agent <name> disconnected`) at once, so the response goes out as soon as the other agents answered",
		},
		In: []Mode{ModeZeek42},
	},
	{
		Quirk: QuirkNoDeployedConfig, ID: "quirk.nodes-before-deployment",
		Mgmt: &ProfileQuirk{
			Description: "get_id_value names nodes while the first deployment is still pending (instances configured, nothing deployed yet)",
			Zeek:        "reading the absent DEPLOYED configuration is a runtime error that aborts the handler: nothing is dispatched and the client only gets `request timed out`",
			Fixed:       "every named node is answered `unknown cluster node` at once",
		},
		In: []Mode{ModeZeek42},
	},
	{
		Quirk: QuirkAgentDataType, ID: "quirk.agent-data-type",
		Mgmt: &ProfileQuirk{
			Description: "an agent answers with Result data of the wrong type (deploy: not NodeOutputs; get_nodes: not a NodeStatus vector, or none; node_dispatch: not a string)",
			Zeek:        "the cast is a runtime error that aborts the handler: the answer is lost and the client gets the timeout Result",
			Fixed:       "the data is dropped (none) with a warning and the answer counts",
		},
		In: []Mode{ModeZeek42},
	},
	{
		Quirk: QuirkRedeployReadyInstances, ID: "quirk.redeploy-ready-instances",
		Mgmt: &ProfileQuirk{
			Description: "the controller redeploys DEPLOYED by itself (at start from --state-dir, or when agents are ready again with nothing pending) after another configuration was staged",
			Zeek:        "the instances are reconciled against the staged READY configuration while DEPLOYED is sent: agents only in DEPLOYED get a standby and no deploy_request, agents only in READY are added and welcomed",
			Fixed:       "the instances are reconciled against the configuration being deployed",
		},
		In: []Mode{ModeZeek42},
	},
}

// Has reports whether mode m reproduces quirk q.
func (m Mode) Has(q Quirk) bool {
	for _, row := range Quirks {
		if row.Quirk != q {
			continue
		}
		for _, in := range row.In {
			if in == m {
				return true
			}
		}
		return false
	}
	return false
}

// QuirkTableMarkdown renders the cc42 rows of Quirks as the README's
// Markdown table.
func QuirkTableMarkdown() string {
	var b strings.Builder
	b.WriteString("| ID | description | zeek42 | fixed |\n|---|---|---|---|\n")
	for _, q := range Quirks {
		if q.Zeek42 == "" {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", q.ID, q.Description, q.Zeek42, q.Fixed)
	}
	return b.String()
}

// QuirkTableMarkdownMgmt renders the mgmt rows of Quirks (Zeek 8.1.2) as
// the README's Markdown table.
func QuirkTableMarkdownMgmt() string {
	var b strings.Builder
	b.WriteString("| ID | description | zeek42 (Zeek 8.1.2) | fixed |\n|---|---|---|---|\n")
	for _, q := range Quirks {
		if q.Mgmt == nil {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", q.ID, q.Mgmt.Description, q.Mgmt.Zeek, q.Mgmt.Fixed)
	}
	return b.String()
}
