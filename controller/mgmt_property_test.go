package controller

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// The Management property test drives the core with random interleavings
// of hellos (also with a wrong version), connection losses, welcome
// answers (success, failure, foreign instance, stale id), stage_configuration
// (random instances and nodes, sometimes invalid), deploy, get_nodes,
// get_id_value and restart (random node sets, unknown nodes included),
// get_configuration, get_instances, test_timeout, agent answers (right,
// stale, duplicated, with wrong data) and time, and checks after every step:
//
//   - at most one deployment is in the request table;
//   - every response names the reqid of a request of its kind that a
//     client sent;
//   - no agent gets a deploy_request before it answered a welcome with
//     success in its own name;
//
// and at the end, once every request has had time to expire:
//
//   - every client request got exactly one response (test_timeout without
//     state none), and nothing is left pending.
//
// In zeek42 this holds while clients use fresh reqids and agents answer
// with the ids they were sent (the duplicate-reqid quirk deletes a live
// request otherwise); the fixed run reuses reqids and feeds client reqids
// to the agent handlers, and the invariants still hold.
func TestMgmtCoreProperties(t *testing.T) {
	for _, mode := range bothModes {
		t.Run(mode.String(), func(t *testing.T) {
			rapid.Check(t, func(rt *rapid.T) { newMgmtProp(rt, mode).run() })
		})
	}
}

var mgmtPropNames = []string{"a1", "a2", "a3"}

type mgmtPropModel struct {
	rt   *rapid.T
	mode Mode
	c    *Core
	ids  int
	now  time.Duration

	peer     map[string]Peer
	nextPeer uint64

	welcomesTo      map[string][]string
	answeredWelcome map[string]bool
	answeredIDs     map[string]bool // welcome ids cooperate answered
	// spoke is the connection an agent's last good hello came on: losing
	// it makes the agent unknown and not ready (Broker::peer_lost).
	spoke     map[string]Peer
	agentReqs []mgmtAgentReq // requests the controller sent to agents
	answered  int            // agentReqs[:answered] were answered by cooperate

	seq       int
	clientIDs []string
	// requests and responses per kind and reqid
	reqs  map[api.EventKind]map[string]int
	resps map[api.EventKind]map[string]int
}

type mgmtAgentReq struct {
	name string
	msg  api.Message
}

func newMgmtProp(rt *rapid.T, mode Mode) *mgmtPropModel {
	m := &mgmtPropModel{
		rt: rt, mode: mode,
		peer:            map[string]Peer{},
		welcomesTo:      map[string][]string{},
		answeredWelcome: map[string]bool{},
		answeredIDs:     map[string]bool{},
		spoke:           map[string]Peer{},
		reqs:            map[api.EventKind]map[string]int{},
		resps:           map[api.EventKind]map[string]int{},
	}
	c, err := NewCore(Config{
		Profile: api.Mgmt, Mode: mode, RequestTimeout: 10 * sec, SweepInterval: sec, Start: t0,
		NewID: func() string { m.ids++; return "id" + strconv.Itoa(m.ids) },
	})
	if err != nil {
		rt.Fatal(err)
	}
	m.c = c
	for _, n := range mgmtPropNames {
		m.connect(n)
	}
	return m
}

func (m *mgmtPropModel) connect(name string) {
	m.nextPeer++
	m.peer[name] = hubPeer(m.nextPeer)
	m.step(PeerConnected{Peer: m.peer[name], Addr: localhost})
}

func (m *mgmtPropModel) run() {
	m.rt.Repeat(map[string]func(*rapid.T){
		"hello":         m.hello,
		"peerLoss":      m.peerLoss,
		"welcomeAnswer": m.welcomeAnswer,
		"stage":         m.stage,
		"deploy":        m.deploy,
		"fanout":        m.fanout,
		"read":          m.read,
		"agentAnswer":   m.agentAnswer,
		"cooperate":     m.cooperate,
		"cooperate2":    m.cooperate,
		"bringUp":       m.bringUp,
		"advance":       m.advance,
		"":              func(*rapid.T) {},
	})
	for i := 0; i < 3; i++ {
		m.now += 15 * sec
		m.step(Tick{})
	}
	m.checkFinal()
}

func (m *mgmtPropModel) step(in Input) {
	out := m.c.Step(t0.Add(m.now), in)
	m.observe(out)
}

func (m *mgmtPropModel) client(t *rapid.T, req api.Message) {
	reqid, _ := api.ReqidOf(req)
	k := req.Kind()
	if m.reqs[k] == nil {
		m.reqs[k] = map[string]int{}
	}
	if tt, ok := req.(api.TestTimeoutRequest); !ok || tt.WithState {
		m.reqs[k][reqid]++
	}
	m.step(Receive{Topic: mgmtControllerTopic, From: hubPeer(1000), Msg: req})
}

// reqid is a fresh reqid, or in fixed mode sometimes a reused one.
func (m *mgmtPropModel) reqid(t *rapid.T) string {
	if m.mode == ModeFixed && len(m.clientIDs) > 0 && rapid.IntRange(0, 3).Draw(t, "reuse") == 0 {
		return rapid.SampledFrom(m.clientIDs).Draw(t, "reused reqid")
	}
	m.seq++
	id := "R" + strconv.Itoa(m.seq)
	m.clientIDs = append(m.clientIDs, id)
	return id
}

func (m *mgmtPropModel) hello(t *rapid.T) {
	name := rapid.SampledFrom(mgmtPropNames).Draw(t, "name")
	v := rapid.SampledFrom([]uint64{1, 1, 1, 1, 1, 2}).Draw(t, "version")
	if v == 1 {
		m.spoke[name] = m.peer[name]
	} else {
		delete(m.spoke, name)
	}
	m.step(Receive{Topic: mgmtAgentPrefix + name, From: m.peer[name],
		Msg: api.NotifyAgentHello{Instance: name, ID: "b-" + name, Connecting: true, APIVersion: v}})
}

func (m *mgmtPropModel) peerLoss(t *rapid.T) {
	name := rapid.SampledFrom(mgmtPropNames).Draw(t, "name")
	lost := m.peer[name]
	m.step(PeerLost{Peer: lost})
	if m.spoke[name] == lost {
		m.answeredWelcome[name] = false
		delete(m.spoke, name)
	}
	m.connect(name)
}

func (m *mgmtPropModel) welcomeAnswer(t *rapid.T) {
	name := rapid.SampledFrom(mgmtPropNames).Draw(t, "name")
	choices := append([]string{"stale-id"}, m.welcomesTo[name]...)
	if m.mode == ModeFixed {
		choices = append(choices, m.clientIDs...)
	}
	id := rapid.SampledFrom(choices).Draw(t, "welcome id")
	success := rapid.IntRange(0, 4).Draw(t, "success") > 0
	instance := name
	if rapid.IntRange(0, 5).Draw(t, "foreign") == 0 {
		instance = "intruder"
	}
	if success && instance == name && slices.Contains(m.welcomesTo[name], id) {
		m.answeredWelcome[name] = true
	}
	m.step(Receive{Topic: mgmtAgentPrefix + name, From: m.peer[name],
		Msg: api.AgentWelcomeResponse{Reqid: id, Result: api.Result{Reqid: id, Success: success, Instance: instance}}})
}

func (m *mgmtPropModel) stage(t *rapid.T) {
	var cfg api.Configuration
	m.seq++
	cfg.ID = "cfg" + strconv.Itoa(m.seq)
	for _, n := range mgmtPropNames {
		if rapid.Bool().Draw(t, "use "+n) {
			cfg.Instances = append(cfg.Instances, inst(n))
			role := rapid.SampledFrom([]api.ClusterRole{api.ClusterRoleManager, api.ClusterRoleLogger, api.ClusterRoleWorker}).Draw(t, "role")
			cfg.Nodes = append(cfg.Nodes, node("node-"+n, n, role, 0))
		}
	}
	if rapid.IntRange(0, 9).Draw(t, "invalid") == 0 {
		cfg.Nodes = append(cfg.Nodes, node("stray", "nowhere", api.ClusterRoleWorker, 2150))
	}
	m.client(t, api.StageConfigurationRequest{Reqid: m.reqid(t), Config: cfg})
}

func (m *mgmtPropModel) deploy(t *rapid.T) {
	m.client(t, api.DeployRequest{Reqid: m.reqid(t)})
}

func (m *mgmtPropModel) fanout(t *rapid.T) {
	nodes := rapid.SliceOfDistinct(rapid.SampledFrom([]string{"node-a1", "node-a2", "node-a3", "ghost"}), func(s string) string { return s }).Draw(t, "nodes")
	switch rapid.IntRange(0, 2).Draw(t, "which") {
	case 0:
		m.client(t, api.GetNodesRequest{Reqid: m.reqid(t)})
	case 1:
		m.client(t, api.GetIDValueRequest{Reqid: m.reqid(t), ID: "x", Nodes: nodes})
	default:
		m.client(t, api.RestartRequest{Reqid: m.reqid(t), Nodes: nodes})
	}
}

func (m *mgmtPropModel) read(t *rapid.T) {
	switch rapid.IntRange(0, 2).Draw(t, "which") {
	case 0:
		m.client(t, api.GetConfigurationRequest{Reqid: m.reqid(t), Deployed: rapid.Bool().Draw(t, "deployed")})
	case 1:
		m.client(t, api.GetInstancesRequest{Reqid: m.reqid(t)})
	default:
		m.client(t, api.TestTimeoutRequest{Reqid: m.reqid(t), WithState: rapid.Bool().Draw(t, "with state")})
	}
}

func (m *mgmtPropModel) agentAnswer(t *rapid.T) {
	if len(m.agentReqs) == 0 {
		return
	}
	r := rapid.SampledFrom(m.agentReqs).Draw(t, "request")
	reqid, _ := api.ReqidOf(r.msg)
	if m.mode == ModeFixed && len(m.clientIDs) > 0 && rapid.IntRange(0, 5).Draw(t, "client id") == 0 {
		reqid = rapid.SampledFrom(m.clientIDs).Draw(t, "borrowed id")
	}
	res := api.Result{Reqid: reqid, Success: rapid.IntRange(0, 3).Draw(t, "success") > 0, Instance: r.name}
	wrongData := rapid.IntRange(0, 6).Draw(t, "wrong data") == 0
	var msg api.Message
	switch r.msg.(type) {
	case api.AgentDeployRequest:
		if wrongData {
			res.Data = broker.Count(1)
		}
		msg = api.AgentDeployResponse{Reqid: reqid, Results: []api.Result{res}}
	case api.AgentGetNodesRequest:
		res.Data, _ = api.Mgmt.NodeStatusesValue([]api.NodeStatus{{Node: r.name, State: api.StateRunning, MgmtRole: api.RoleAgent}})
		if wrongData {
			res.Data = broker.None()
		}
		msg = api.AgentGetNodesResponse{Reqid: reqid, Result: res}
	case api.AgentNodeDispatchRequest:
		res.Data = broker.String(`"v"`)
		if wrongData {
			res.Data = broker.Bool(true)
		}
		msg = api.AgentNodeDispatchResponse{Reqid: reqid, Results: []api.Result{res}}
	case api.AgentRestartRequest:
		msg = api.AgentRestartResponse{Reqid: reqid, Results: []api.Result{res}}
	}
	m.step(Receive{Topic: mgmtAgentPrefix + r.name, From: m.peer[r.name], Msg: msg})
}

// bringUp is the happy path in one action: every agent says hello, a
// valid configuration is staged and deployed, and the agents cooperate.
func (m *mgmtPropModel) bringUp(t *rapid.T) {
	for _, name := range mgmtPropNames {
		m.spoke[name] = m.peer[name]
		m.step(Receive{Topic: mgmtAgentPrefix + name, From: m.peer[name],
			Msg: api.NotifyAgentHello{Instance: name, ID: "b-" + name, Connecting: true, APIVersion: 1}})
	}
	m.stage(t)
	m.deploy(t)
	m.cooperate(t)
	m.cooperate(t)
}

// cooperate plays well-behaved agents: the newest welcome of each agent
// and every request not yet answered get a proper answer.
func (m *mgmtPropModel) cooperate(t *rapid.T) {
	for _, name := range mgmtPropNames {
		ws := m.welcomesTo[name]
		if len(ws) == 0 || m.answeredIDs[ws[len(ws)-1]] {
			continue
		}
		id := ws[len(ws)-1]
		m.answeredIDs[id] = true
		m.answeredWelcome[name] = true
		m.step(Receive{Topic: mgmtAgentPrefix + name, From: m.peer[name],
			Msg: api.AgentWelcomeResponse{Reqid: id, Result: api.Result{Reqid: id, Success: true, Instance: name}}})
	}
	for m.answered < len(m.agentReqs) {
		r := m.agentReqs[m.answered]
		m.answered++
		reqid, _ := api.ReqidOf(r.msg)
		res := api.Result{Reqid: reqid, Success: true, Instance: r.name}
		var msg api.Message
		switch r.msg.(type) {
		case api.AgentDeployRequest:
			msg = api.AgentDeployResponse{Reqid: reqid, Results: []api.Result{res}}
		case api.AgentGetNodesRequest:
			res.Data, _ = api.Mgmt.NodeStatusesValue(nil)
			msg = api.AgentGetNodesResponse{Reqid: reqid, Result: res}
		case api.AgentNodeDispatchRequest:
			res.Data = broker.String(`"v"`)
			msg = api.AgentNodeDispatchResponse{Reqid: reqid, Results: []api.Result{res}}
		case api.AgentRestartRequest:
			msg = api.AgentRestartResponse{Reqid: reqid, Results: []api.Result{res}}
		}
		m.step(Receive{Topic: mgmtAgentPrefix + r.name, From: m.peer[r.name], Msg: msg})
	}
}

func (m *mgmtPropModel) advance(t *rapid.T) {
	m.now += time.Duration(rapid.IntRange(0, 3000).Draw(t, "advance ms")) * time.Millisecond
	m.step(Tick{})
}

// responseKinds maps each response to the request it answers.
var responseKinds = map[api.EventKind]api.EventKind{
	api.KindStageConfigurationResponse: api.KindStageConfigurationRequest,
	api.KindGetConfigurationResponse:   api.KindGetConfigurationRequest,
	api.KindDeployResponse:             api.KindDeployRequest,
	api.KindGetNodesResponse:           api.KindGetNodesRequest,
	api.KindGetIDValueResponse:         api.KindGetIDValueRequest,
	api.KindRestartResponse:            api.KindRestartRequest,
	api.KindGetInstancesResponse:       api.KindGetInstancesRequest,
	api.KindTestTimeoutResponse:        api.KindTestTimeoutRequest,
}

func (m *mgmtPropModel) observe(out Output) {
	t := m.rt
	for _, o := range out.Publish {
		name := strings.TrimPrefix(o.Topic, mgmtAgentPrefix)
		switch msg := o.Msg.(type) {
		case api.AgentWelcomeRequest:
			m.welcomesTo[name] = append(m.welcomesTo[name], msg.Reqid)
			continue
		case api.AgentStandbyRequest:
			continue
		case api.AgentDeployRequest:
			if !m.answeredWelcome[name] {
				t.Fatalf("deploy_request to %s before it answered a welcome", name)
			}
			m.agentReqs = append(m.agentReqs, mgmtAgentReq{name, msg})
			continue
		case api.AgentGetNodesRequest, api.AgentNodeDispatchRequest, api.AgentRestartRequest:
			m.agentReqs = append(m.agentReqs, mgmtAgentReq{name, msg})
			continue
		}
		if o.Topic != mgmtControllerTopic {
			t.Fatalf("unexpected %s", describe(o))
		}
		reqKind, ok := responseKinds[o.Msg.Kind()]
		if !ok {
			t.Fatalf("unexpected message %s", describe(o))
		}
		reqid, _ := api.ReqidOf(o.Msg)
		if m.reqs[reqKind][reqid] == 0 {
			t.Fatalf("%s for reqid %q that no client sent", describe(o), reqid)
		}
		if m.resps[reqKind] == nil {
			m.resps[reqKind] = map[string]int{}
		}
		m.resps[reqKind][reqid]++
	}
	deploys := 0
	for _, r := range m.c.Snapshot().Requests {
		if r.Kind == "deploy" {
			deploys++
		}
	}
	if deploys > 1 {
		t.Fatalf("%d deployments in the request table", deploys)
	}
}

func (m *mgmtPropModel) checkFinal() {
	t := m.rt
	for kind, ids := range m.reqs {
		for id, n := range ids {
			if got := m.resps[kind][id]; got != n {
				t.Fatalf("%d requests of kind %d with reqid %s, %d responses", n, kind, id, got)
			}
		}
	}
	if s := m.c.Snapshot(); s.Pending != "" || len(s.Requests) != 0 {
		t.Fatalf("after every timeout: pending %q, requests %+v", s.Pending, s.Requests)
	}
}
