package controller

import (
	"container/list"
	"strings"
	"time"

	"github.com/zcc-harness/zcc/api"
)

// reqKind is what a request was created for. Zeek tells requests apart
// only by which state record is attached; zcc also records the kind for
// snapshots and for the fixed mode's per-kind namespaces.
type reqKind uint8

const (
	kindShared reqKind = iota // zeek42: every request lives in one namespace
	kindSetConfiguration
	kindTestTimeout
	kindWelcome
	kindChild

	// The Management profile's requests: client requests, then the
	// controller's requests to agents on their behalf.
	kindStage
	kindDeploy
	kindGetNodes
	kindGetIDValue
	kindRestart
	kindAgentDeploy
	kindAgentGetNodes
	kindAgentDispatch
	kindAgentRestart
)

// kindTest is the kind of test_timeout requests.
const kindTest = kindTestTimeout

var reqKindNames = [...]string{
	kindShared:           "shared",
	kindSetConfiguration: "set_configuration",
	kindTestTimeout:      "test_timeout",
	kindWelcome:          "agent_welcome",
	kindChild:            "agent_set_configuration",
	kindStage:            "stage_configuration",
	kindDeploy:           "deploy",
	kindGetNodes:         "get_nodes",
	kindGetIDValue:       "get_id_value",
	kindRestart:          "restart",
	kindAgentDeploy:      "agent_deploy",
	kindAgentGetNodes:    "agent_get_nodes",
	kindAgentDispatch:    "agent_node_dispatch",
	kindAgentRestart:     "agent_restart",
}

func (k reqKind) String() string { return reqKindNames[k] }

type reqKey struct {
	ns  reqKind
	id  string
	seq uint64
}

// setConfigState is SetConfigurationState: the configuration and the
// child requests, in send order.
type setConfigState struct {
	config   api.Configuration
	children []*request
}

// request is ClusterController::Request::Request (spec §6.1).
type request struct {
	key       reqKey
	id        string
	kind      reqKind
	parent    string
	hasParent bool
	// parentKey is the parent's table key (mgmt): in the fixed mode a
	// client's fan-out request has a slot of its own, so its agents'
	// answers find it even when another request reuses its reqid.
	parentKey reqKey
	results   []api.Result
	finished  bool
	created   time.Time

	setConfig *setConfigState
	test      bool

	// The Management profile's request states (Zeek's deploy_state,
	// get_nodes_state, node_dispatch_state, restart_state); at most one
	// is set.
	deploy *deployState
	fanout *fanoutState

	// target is the instance a welcome or child request was sent to. Zeek
	// does not keep it; the fixed mode needs it for peer loss.
	target string
	// lost marks a child finished by the fixed mode's peer-loss handling:
	// its Result's error is reported verbatim.
	lost bool

	elem *list.Element
}

// String is Request::to_string:
// "[request <id>[ (via <parent>)] <finished|pending>, results: <r1>,<r2>]".
func (r *request) String() string {
	var b strings.Builder
	b.WriteString("[request ")
	b.WriteString(r.id)
	if r.hasParent {
		b.WriteString(" (via " + r.parent + ")")
	}
	if r.finished {
		b.WriteString(" finished")
	} else {
		b.WriteString(" pending")
	}
	b.WriteString(", results: ")
	for i, res := range r.results {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(res.String())
	}
	b.WriteByte(']')
	return b.String()
}

// requestTable is g_requests: a map plus the entries in creation order, so
// that a sweep only looks at the entries that are due.
type requestTable struct {
	byKey map[reqKey]*request
	order *list.List
}

func (t *requestTable) init() {
	t.byKey = map[reqKey]*request{}
	t.order = list.New()
}

// put inserts r, or replaces the entry with r's key. A replacement takes
// over the old entry's creation time and place (Zeek keeps the expiry time
// of an overwritten &create_expire entry).
func (t *requestTable) put(r *request) {
	if old := t.byKey[r.key]; old != nil {
		r.created = old.created
		r.elem = old.elem
		r.elem.Value = r
		old.elem = nil
	} else {
		r.elem = t.order.PushBack(r)
	}
	t.byKey[r.key] = r
}

func (t *requestTable) get(k reqKey) *request { return t.byKey[k] }

func (t *requestTable) remove(r *request) {
	if t.byKey[r.key] != r {
		return
	}
	delete(t.byKey, r.key)
	t.order.Remove(r.elem)
	r.elem = nil
}

func (t *requestTable) oldest() *request {
	if e := t.order.Front(); e != nil {
		return e.Value.(*request)
	}
	return nil
}

// expire removes and returns, oldest first, every entry created at or
// before sweep − timeout.
func (t *requestTable) expire(sweep time.Time, timeout time.Duration) []*request {
	var due []*request
	for e := t.order.Front(); e != nil; e = t.order.Front() {
		r := e.Value.(*request)
		if r.created.Add(timeout).After(sweep) {
			break
		}
		t.remove(r)
		due = append(due, r)
	}
	return due
}

func (t *requestTable) len() int { return len(t.byKey) }
