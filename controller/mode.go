package controller

import (
	"fmt"
	"strings"
)

// Mode selects how faithfully the controller reproduces Zeek 4.2.
type Mode uint8

const (
	// ModeZeek42 reproduces the Zeek 4.2 controller exactly, quirks
	// included. It is the default because the reference controller is what
	// other controllers are compared with.
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
)

// QuirkInfo is one row of the quirk table.
type QuirkInfo struct {
	Quirk Quirk
	// ID is the behaviour-catalogue ID (behaviors-cc42.md).
	ID          string
	Description string
	Zeek42      string
	Fixed       string
	// In lists the modes that reproduce the quirk.
	In []Mode
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
		In:          []Mode{ModeZeek42},
	},
	{
		Quirk: QuirkDuplicateWelcome, ID: "quirk.duplicate-welcome",
		Description: "two welcome responses for one instance while a configuration is pending (duplicate hellos)",
		Zeek42:      "notify_agents_ready fires twice; every agent gets the configuration twice and the response repeats its Results",
		Fixed:       "an instance that is already ready does not re-run the ready check, and no agent gets a second child of the same request",
		In:          []Mode{ModeZeek42},
	},
	{
		Quirk: QuirkConnectivityChange, ID: "quirk.connectivity-change",
		Description: "a kept instance whose host, port or connect direction changes",
		Zeek42:      "dropped (standby) and never re-added: it gets no configuration and the response omits it",
		Fixed:       "dropped, then re-added: welcomed again if known, dialled if listening, and configured",
		In:          []Mode{ModeZeek42},
	},
	{
		Quirk: QuirkFailureWithoutNode, ID: "quirk.failure-without-node",
		Description: "an agent answers set_configuration with success F and no node",
		Zeek42:      "the aggregation aborts reading res$node: no response, the request times out (Results aggregated before the abort stay in front of the timeout Result)",
		Fixed:       "the response is sent; that agent's Result has success F and error `node ? failed: <e>`",
		In:          []Mode{ModeZeek42},
	},
	{
		Quirk: QuirkDuplicateReqid, ID: "quirk.duplicate-reqid",
		Description: "a client request reuses the reqid of a live request (e.g. the pending set_configuration)",
		Zeek42:      "the new request overwrites the shared state and finishing it deletes it: the pending request never completes or expires, so every later set_configuration is `still pending` forever",
		Fixed:       "rejected with `still pending` and the pending request is untouched; request ids are kept per kind, so no request or reply can match a request of another kind",
		In:          []Mode{ModeZeek42},
	},
	{
		Quirk: QuirkPeerLoss, ID: "quirk.peer-loss",
		Description: "the connection of a ready agent goes away",
		Zeek42:      "nothing happens: the agent stays known and ready, configurations go into the void and time out",
		Fixed:       "the agent is marked not ready and not known at once; its outstanding child gets Result success F, error `agent <name> disconnected`, and the response goes out as soon as all children are finished",
		In:          []Mode{ModeZeek42},
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

// QuirkTableMarkdown renders Quirks as the README's Markdown table.
func QuirkTableMarkdown() string {
	var b strings.Builder
	b.WriteString("| ID | description | zeek42 | fixed |\n|---|---|---|---|\n")
	for _, q := range Quirks {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", q.ID, q.Description, q.Zeek42, q.Fixed)
	}
	return b.String()
}
