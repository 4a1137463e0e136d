package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/api/mgmtvectors"
	"github.com/zcc-harness/zcc/broker"
)

// The reality check: every transcript of a real Zeek 8.1.2 controller in
// testdata/vectors/mgmt/zeek-8.1 is replayed against the reference
// controller, and its answers are compared with Zeek's.
//
// The transcripts come from three controller runs (told apart by the
// controller id in the acks) and are replayed run by run, in the order of
// the acks' connection counter, against one reference controller per run
// with the run's settings (timeout_interval, table_expire_interval,
// auto_assign_*_ports) and Zeek's exact agent identity (IdentityBrokerID).
//
//   - The client frames are sent as recorded; every frame the controller
//     sends is compared with Zeek's, modulo the controller's random ids
//     (agent-side request ids must map one to one) and set order.
//   - Zeek's own agent instance-1 (a Broker peer) is played by a stand-in
//     on a WebSocket whose hello id is registered as a Broker peer. It
//     answers each request with the agent Results that Zeek's response
//     shows for that case, so what is checked is the controller's part:
//     who gets asked, what is added, in which order, and the ids.
//   - The WebSocket-only fake agent fake-1 is played from its own
//     transcript: its hellos repeat, each controller request is compared
//     with the recorded one and answered with the recorded answer.
//   - After a case's last expected frame a sentinel get_instances request
//     on the same connection proves that nothing else was sent.
//
// Cases on transport behaviour (handshake errors, wrong path, ping
// timeout) run against a fresh controller each. Every difference is either
// fixed or listed in replayDeviations, and every listed deviation must
// still occur.

// replayDeviation is a known, justified difference from Zeek 8.1.2. Case
// "*" matches every case.
type replayDeviation struct {
	Case, What, Why string
}

var replayDeviations = []replayDeviation{
	{Case: "*", What: "ack-version",
		Why: "zcc's ack names version `zcc` where Zeek names its own version (`8.1.2`); the version is opaque to clients (spec §1.1) and zeek-client never reads it"},
	{Case: "event--not-an-event", What: "error-context-details",
		Why: "zcc appends `: <details>` to Zeek's context `failed to create Zeek event` (what was wrong, which event, which argument); the code and the prefix are Zeek's"},
	{Case: "event--unknown-name", What: "error-context-details", Why: "as above"},
	{Case: "event--wrong-arg-count", What: "error-context-details", Why: "as above"},
	{Case: "event--wrong-arg-type", What: "error-context-details", Why: "as above"},
	{Case: "event--malformed-json", What: "error-context-details",
		Why: "zcc appends the JSON decoder's message to `failed to decode JSON object`"},
	{Case: "handshake--first-frame-object", What: "handshake-error-closes",
		Why: "after a bad first frame zcc closes with 1008; Zeek 8.1.2 keeps the connection open but never acknowledges or answers it again (observations §2.1), so a client must reconnect either way"},
	{Case: "handshake--first-frame-non-string", What: "error-context-details",
		Why: "zcc appends where and what was wrong to `individual subscription not a string`"},
	{Case: "handshake--first-frame-non-string", What: "handshake-error-closes", Why: "as for handshake--first-frame-object"},
	{Case: "handshake--wrong-path", What: "wrong-path-404",
		Why: "zcc's hub refuses the upgrade on another path with HTTP 404 naming /v1/messages/json, as Zeek ≤ 8.0 did; Zeek 8.1 upgrades, sends `invalid_uri` and closes 1008"},
}

type replayDiff struct{ Case, What, Detail string }

type diffLog struct {
	mu    sync.Mutex
	diffs []replayDiff
}

func (l *diffLog) add(caseName, what, format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.diffs = append(l.diffs, replayDiff{Case: caseName, What: what, Detail: fmt.Sprintf(format, args...)})
}

func TestMgmtReplayZeek81(t *testing.T) {
	dir, err := mgmtvectors.Dir()
	if err != nil {
		t.Fatal(err)
	}
	ts, err := mgmtvectors.LoadTranscripts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 71 {
		t.Fatalf("%d transcripts, want the 71 of testdata/vectors/mgmt/zeek-8.1", len(ts))
	}
	runs, transport := planReplay(t, ts)
	log := &diffLog{}
	replayed := map[string]bool{}
	t.Run("runs", func(t *testing.T) {
		for _, r := range runs {
			for _, c := range r.cases {
				replayed[c.Case] = true
			}
			t.Run(r.name, func(t *testing.T) {
				t.Parallel()
				replayRun(t, r, log)
			})
		}
		for _, tr := range transport {
			replayed[tr.Case] = true
			t.Run(tr.Case, func(t *testing.T) {
				t.Parallel()
				replayTransport(t, tr, log)
			})
		}
	})
	if len(replayed) != len(ts) {
		t.Errorf("replayed %d of %d transcripts", len(replayed), len(ts))
	}
	checkDeviations(t, log.diffs)
}

// checkDeviations fails for every difference that is not listed and for
// every listed deviation that no longer occurs.
func checkDeviations(t *testing.T, diffs []replayDiff) {
	t.Helper()
	used := make([]bool, len(replayDeviations))
	for _, d := range diffs {
		listed := false
		for i, dev := range replayDeviations {
			if dev.What == d.What && (dev.Case == "*" || dev.Case == d.Case) {
				used[i], listed = true, true
			}
		}
		if !listed {
			t.Errorf("%s: %s: %s (not a listed deviation)", d.Case, d.What, d.Detail)
		}
	}
	for i, dev := range replayDeviations {
		if !used[i] {
			t.Errorf("listed deviation %s/%s did not occur: remove it from replayDeviations", dev.Case, dev.What)
		}
	}
}

// --- the plan -------------------------------------------------------------------

type replayPlan struct {
	name     string // the Zeek controller's id prefix
	settings replaySettings
	cases    []mgmtvectors.Transcript // in connection order
}

type replaySettings struct {
	timeout, sweep         time.Duration
	noBrokerAutoAssign     bool
	noMetricsAutoAssign    bool
	agentName              string // Zeek's own agent, "" when none ran
	hasFakeAgentTranscript bool
}

var ackEndpoint = regexp.MustCompile(`^(.*)-websocket-(\d+)$`)

// planReplay groups the transcripts into controller runs, ordered by the
// ack's connection counter; transcripts without an ack, and the ping
// timeout (which needs a pinging controller), are transport cases.
func planReplay(t *testing.T, ts []mgmtvectors.Transcript) ([]replayPlan, []mgmtvectors.Transcript) {
	t.Helper()
	type ordered struct {
		n  int
		tr mgmtvectors.Transcript
	}
	byRun := map[string][]ordered{}
	var transport []mgmtvectors.Transcript
	for _, tr := range ts {
		run, n, ok := ackOf(tr)
		if !ok || strings.HasPrefix(tr.Case, "transport--") {
			transport = append(transport, tr)
			continue
		}
		byRun[run] = append(byRun[run], ordered{n, tr})
	}
	var runs []replayPlan
	for run, cs := range byRun {
		sort.Slice(cs, func(i, j int) bool { return cs[i].n < cs[j].n })
		p := replayPlan{name: run[:8], settings: parseSettings(t, cs[0].tr)}
		for _, c := range cs {
			if s := parseSettings(t, c.tr); s != p.settings {
				t.Fatalf("%s: settings %+v differ from the run's %+v", c.tr.Case, s, p.settings)
			}
			p.cases = append(p.cases, c.tr)
		}
		runs = append(runs, p)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].name < runs[j].name })
	return runs, transport
}

func ackOf(tr mgmtvectors.Transcript) (run string, n int, ok bool) {
	for _, f := range tr.Frames {
		if f.Kind != "" || !strings.HasPrefix(f.Dir, "controller->") {
			continue
		}
		fr, err := broker.DecodeFrame([]byte(f.Text))
		if err != nil || fr.Type != "ack" {
			continue
		}
		m := ackEndpoint.FindStringSubmatch(fr.Endpoint)
		if m == nil {
			return "", 0, false
		}
		n, _ := strconv.Atoi(m[2])
		return m[1], n, true
	}
	return "", 0, false
}

func parseSettings(t *testing.T, tr mgmtvectors.Transcript) replaySettings {
	t.Helper()
	var raw struct {
		Redefs []string `json:"redefs"`
	}
	if err := json.Unmarshal(tr.Settings, &raw); err != nil {
		t.Fatalf("%s: settings: %v", tr.Case, err)
	}
	var s replaySettings
	for _, r := range raw.Redefs {
		name, value, _ := strings.Cut(r, "=")
		switch name {
		case "Management::Request::timeout_interval":
			s.timeout = zeekInterval(t, value)
		case "table_expire_interval":
			s.sweep = zeekInterval(t, value)
		case "Management::Controller::auto_assign_broker_ports":
			s.noBrokerAutoAssign = value == "F"
		case "Management::Controller::auto_assign_metrics_ports":
			s.noMetricsAutoAssign = value == "F"
		case "Management::Agent::name":
			s.agentName = value
		}
	}
	if s.timeout == 0 || s.sweep == 0 {
		t.Fatalf("%s: settings lack the request timeout or the sweep interval: %s", tr.Case, tr.Settings)
	}
	return s
}

func zeekInterval(t *testing.T, v string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(strings.TrimSuffix(v, "ec")) // "2sec" -> "2s"
	if err != nil {
		t.Fatalf("interval %q: %v", v, err)
	}
	return d
}

func isFakeAgentTranscript(tr mgmtvectors.Transcript) bool {
	for _, f := range tr.Frames {
		if f.Dir == mgmtvectors.DirFakeAgentToController {
			return true
		}
	}
	return false
}

// --- one run ----------------------------------------------------------------------

const standinBrokerID = "zeek-agent-broker-id"

func replayRun(t *testing.T, p replayPlan, log *diffLog) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := Options{
		Name: "controller", Profile: api.Mgmt,
		RequestTimeout: p.settings.timeout, SweepInterval: p.settings.sweep,
		Mgmt: MgmtConfig{
			NoBrokerPortAutoAssign:  p.settings.noBrokerAutoAssign,
			NoMetricsPortAutoAssign: p.settings.noMetricsAutoAssign,
			Identity:                IdentityBrokerID,
			BrokerPeerIDs:           []string{standinBrokerID},
		},
	}
	c := startController(t, ctx, opts)
	rp := &replayer{t: t, ctx: ctx, c: c, log: log}

	var standin *standinAgent
	if p.settings.agentName != "" {
		standin = startStandin(t, ctx, c, p.settings.agentName)
		defer standin.stop()
	}
	var fake *scriptedFake
	for _, tr := range p.cases {
		if isFakeAgentTranscript(tr) {
			fake = startScriptedFake(t, ctx, c, tr, log)
			defer fake.stop()
			continue
		}
		if fake != nil && fake.exhausted.Load() {
			// Its last answer is given: it leaves before the next case,
			// as the recorded fake agent did.
			fake.waitGone()
		}
		if standin != nil {
			standin.script(tr)
		}
		rp.clientCase(tr)
	}
}

// --- the client side ----------------------------------------------------------------

type replayer struct {
	t   *testing.T
	ctx context.Context
	c   *Controller
	log *diffLog
	seq int
}

// clientCase replays one transcript's client connection.
func (rp *replayer) clientCase(tr mgmtvectors.Transcript) {
	t := rp.t
	url := "ws://" + rp.c.Addr().String() + tr.Path
	ws, resp, err := websocket.DefaultDialer.DialContext(rp.ctx, url, nil)
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusNotFound && tr.Path != "/v1/messages/json" {
			rp.log.add(tr.Case, "wrong-path-404", "upgrade on %s refused: %s", tr.Path, resp.Status)
			return
		}
		t.Errorf("%s: dial %s: %v", tr.Case, url, err)
		return
	}
	defer ws.Close()
	if !pongs(tr) {
		ws.SetPingHandler(func(string) error { return nil })
	}
	clientIDs, subscribed := clientReqids(tr)
	ids := newIDUnifier()
	acked, broken := false, false
	sentinelDone := false
	sentinel := func() {
		if sentinelDone || broken || !acked || !subscribed {
			return
		}
		sentinelDone = true
		rp.sentinel(tr, ws)
		if reqid := lastTestTimeoutWithoutState(tr); reqid != "" {
			// Nothing can ever answer it: no request is kept for it.
			for _, r := range rp.c.Snapshot().Requests {
				if r.ID == reqid {
					t.Errorf("%s: test_timeout without state left request %+v", tr.Case, r)
				}
			}
		}
	}
	for _, f := range tr.Frames {
		switch {
		case f.Dir == mgmtvectors.DirClientToController && f.Kind == "":
			if broken {
				continue
			}
			if err := ws.WriteMessage(websocket.TextMessage, []byte(f.Text)); err != nil {
				rp.log.add(tr.Case, "write-failed", "%v", err)
				broken = true
			}
		case f.Dir == mgmtvectors.DirClientToController && f.Kind == "tcp-eof":
			sentinel()
			_ = ws.UnderlyingConn().Close()
			if !sentinelDone {
				rp.barrier(tr)
			}
			return
		case f.Dir == mgmtvectors.DirObserver && strings.Contains(f.Text, "client closing"):
			sentinel()
			if !broken {
				_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			}
		case f.Dir == mgmtvectors.DirControllerToClient && f.Kind == "":
			if broken {
				continue
			}
			got, closeErr := rp.read(ws, 10*time.Second)
			if closeErr != nil {
				rp.closedEarly(tr, closeErr)
				broken = true
				continue
			}
			compareFrames(rp.log, tr.Case, f.Text, got, clientIDs, ids)
			if fr, err := broker.DecodeFrame(got); err == nil {
				acked = acked || fr.Type == "ack"
				if fr.Type == "error" && !acked {
					// Zeek keeps a connection with a failed handshake
					// open (and dead); zcc closes it at once.
					_, err := rp.read(ws, time.Second)
					var ce *websocket.CloseError
					if errors.As(err, &ce) && ce.Code == websocket.ClosePolicyViolation {
						rp.log.add(tr.Case, "handshake-error-closes", "closed %d %q after the handshake error", ce.Code, ce.Text)
						broken = true
					} else if err == nil {
						rp.log.add(tr.Case, "extra-frame", "a frame after the handshake error")
					}
				}
			}
		case f.Dir == mgmtvectors.DirControllerToClient && f.Kind == "close":
			if broken {
				continue
			}
			_, err := rp.read(ws, 10*time.Second)
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				t.Errorf("%s: want close %d, got %v", tr.Case, f.CloseCode, err)
			} else if ce.Code != f.CloseCode {
				rp.log.add(tr.Case, "close-code", "closed %d %q, Zeek %d %q", ce.Code, ce.Text, f.CloseCode, f.Text)
			} else if f.Text != "" && ce.Text != f.Text {
				rp.log.add(tr.Case, "close-reason", "close reason %q, Zeek %q", ce.Text, f.Text)
			}
			broken = true
		}
	}
	sentinel()
	if !sentinelDone {
		rp.barrier(tr)
	}
}

// barrier waits until the controller has handled everything the case
// sent when the case's own connection cannot carry a sentinel (it is not
// subscribed, or closed): a sentinel on a fresh connection. The case's
// connection was closed with a handshake or dropped, so its requests were
// queued before the sentinel; frames before the sentinel's response are
// answers to them, which Zeek sent to nobody either.
func (rp *replayer) barrier(tr mgmtvectors.Transcript) {
	conn, err := broker.Dial(rp.ctx, rp.c.URL(), []string{api.Mgmt.ControllerTopic}, nil)
	if err != nil {
		rp.t.Errorf("%s: barrier: %v", tr.Case, err)
		return
	}
	defer conn.Close()
	rp.seq++
	reqid := fmt.Sprintf("replay-barrier-%d", rp.seq)
	ev, err := api.Mgmt.Encode(api.GetInstancesRequest{Reqid: reqid})
	if err != nil {
		rp.t.Fatal(err)
	}
	if err := conn.Publish(rp.ctx, api.Mgmt.ControllerTopic, ev); err != nil {
		rp.t.Errorf("%s: barrier: %v", tr.Case, err)
		return
	}
	for {
		msg, err := conn.Next(rp.ctx)
		if err != nil {
			rp.t.Errorf("%s: barrier: %v", tr.Case, err)
			return
		}
		if ev, err := msg.Event(); err == nil {
			if m, err := api.Mgmt.Decode(ev); err == nil {
				if r, ok := m.(api.GetInstancesResponse); ok && r.Reqid == reqid {
					return
				}
			}
		}
	}
}

// closedEarly records a close where Zeek sent a frame.
func (rp *replayer) closedEarly(tr mgmtvectors.Transcript, err error) {
	rp.log.add(tr.Case, "closed-early", "connection ended where Zeek sent a frame: %v", err)
}

// read returns the next text frame; a close or failure comes back as the
// error.
func (rp *replayer) read(ws *websocket.Conn, limit time.Duration) ([]byte, error) {
	deadline := time.Now().Add(limit)
	if d, ok := rp.ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = ws.SetReadDeadline(deadline)
	for {
		mt, b, err := ws.ReadMessage()
		if err != nil {
			return nil, err
		}
		if mt == websocket.TextMessage {
			return b, nil
		}
	}
}

// sentinel sends get_instances on the case's connection and reads up to
// its response: any frame before it is one Zeek did not send.
func (rp *replayer) sentinel(tr mgmtvectors.Transcript, ws *websocket.Conn) {
	rp.seq++
	reqid := fmt.Sprintf("replay-sentinel-%d", rp.seq)
	ev, err := api.Mgmt.Encode(api.GetInstancesRequest{Reqid: reqid})
	if err != nil {
		rp.t.Fatal(err)
	}
	b, err := broker.EventFrame(api.Mgmt.ControllerTopic, ev).Encode()
	if err != nil {
		rp.t.Fatal(err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
		rp.log.add(tr.Case, "sentinel", "cannot send the sentinel: %v", err)
		return
	}
	for {
		got, err := rp.read(ws, 10*time.Second)
		if err != nil {
			rp.log.add(tr.Case, "sentinel", "no sentinel response: %v", err)
			return
		}
		if fr, err := broker.DecodeFrame(got); err == nil && fr.Type == "data-message" {
			if m, err := api.Mgmt.DecodeFrame(fr); err == nil {
				if r, ok := m.(api.GetInstancesResponse); ok && r.Reqid == reqid {
					return
				}
			}
		}
		rp.log.add(tr.Case, "extra-frame", "the controller sent a frame Zeek did not: %s", got)
	}
}

// pongs reports whether the recorded client answered pings.
func pongs(tr mgmtvectors.Transcript) bool {
	pinged := false
	for _, f := range tr.Frames {
		switch {
		case f.Kind == "pong":
			return true
		case f.Kind == "ping":
			pinged = true
		}
	}
	return !pinged
}

// clientReqids are the reqids in the client's requests, and whether the
// client subscribed to the controller topic.
func clientReqids(tr mgmtvectors.Transcript) (map[string]bool, bool) {
	ids := map[string]bool{}
	subscribed := false
	for _, f := range tr.Frames {
		if f.Dir != mgmtvectors.DirClientToController || f.Kind != "" {
			continue
		}
		if topics, err := broker.DecodeHandshake([]byte(f.Text)); err == nil {
			for _, tp := range topics {
				subscribed = subscribed || strings.HasPrefix(api.Mgmt.ControllerTopic, tp)
			}
			continue
		}
		if m, ok := decodeRecorded(f.Text); ok {
			if id, ok := api.ReqidOf(m); ok {
				ids[id] = true
			}
		}
	}
	return ids, subscribed
}

func lastTestTimeoutWithoutState(tr mgmtvectors.Transcript) string {
	id := ""
	for _, f := range tr.Frames {
		if f.Dir != mgmtvectors.DirClientToController || f.Kind != "" {
			continue
		}
		if m, ok := decodeRecorded(f.Text); ok {
			if r, ok := m.(api.TestTimeoutRequest); ok && !r.WithState {
				id = r.Reqid
			}
		}
	}
	return id
}

func decodeRecorded(text string) (api.Message, bool) {
	fr, err := broker.DecodeFrame([]byte(text))
	if err != nil || fr.Type != "data-message" {
		return nil, false
	}
	m, err := api.Mgmt.DecodeFrame(fr)
	return m, err == nil
}

// --- comparing frames -------------------------------------------------------------

// idUnifier maps Zeek's random ids to zcc's, one to one.
type idUnifier struct {
	mu       sync.Mutex
	e2g, g2e map[string]string
}

func newIDUnifier() *idUnifier {
	return &idUnifier{e2g: map[string]string{}, g2e: map[string]string{}}
}

func (u *idUnifier) unify(e, g string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if x, ok := u.e2g[e]; ok {
		return x == g
	}
	if _, ok := u.g2e[g]; ok {
		return false
	}
	u.e2g[e], u.g2e[g] = g, e
	return true
}

// compareFrames compares one frame zcc sent with the one Zeek sent.
func compareFrames(log *diffLog, caseName, want string, got []byte, clientIDs map[string]bool, ids *idUnifier) {
	wf, err := broker.DecodeFrame([]byte(want))
	if err != nil {
		log.add(caseName, "bad-transcript", "recorded frame %s: %v", want, err)
		return
	}
	gf, err := broker.DecodeFrame(got)
	if err != nil {
		log.add(caseName, "bad-frame", "zcc sent %s: %v", got, err)
		return
	}
	if wf.Type != gf.Type {
		log.add(caseName, "frame-type", "zcc sent %s where Zeek sent %s", got, want)
		return
	}
	switch wf.Type {
	case "ack":
		if gf.Endpoint == "" {
			log.add(caseName, "ack-endpoint", "empty endpoint: %s", got)
		}
		if gf.Version != wf.Version {
			log.add(caseName, "ack-version", "version %q, Zeek %q", gf.Version, wf.Version)
		}
	case "error":
		switch {
		case gf.Code != wf.Code:
			log.add(caseName, "error-code", "error %s %q, Zeek %s %q", gf.Code, gf.Context, wf.Code, wf.Context)
		case gf.Context == wf.Context:
		case strings.HasPrefix(gf.Context, wf.Context+": "):
			log.add(caseName, "error-context-details", "%q", gf.Context)
		default:
			log.add(caseName, "error-context", "context %q, Zeek %q", gf.Context, wf.Context)
		}
	default:
		if gf.Topic != wf.Topic {
			log.add(caseName, "topic", "topic %q, Zeek %q", gf.Topic, wf.Topic)
		}
		wm, err := api.Mgmt.DecodeFrame(wf)
		if err != nil {
			log.add(caseName, "bad-transcript", "recorded event: %v", err)
			return
		}
		gm, err := api.Mgmt.DecodeFrame(gf)
		if err != nil {
			log.add(caseName, "undecodable", "zcc's event %s: %v", got, err)
			return
		}
		if !messagesMatch(wm, gm, clientIDs, ids) {
			log.add(caseName, "message", "zcc sent\n  %s\nZeek sent\n  %s", renderMsg(gm), renderMsg(wm))
		}
	}
}

// messagesMatch compares two messages after mapping zcc's controller-made
// ids onto Zeek's: the reqid of a request to an agent and every Result
// reqid that is not the client's.
func messagesMatch(want, got api.Message, clientIDs map[string]bool, ids *idUnifier) bool {
	if want.Kind() != got.Kind() {
		return false
	}
	ok := true
	mapID := func(w string, g *string) {
		if clientIDs[w] {
			return
		}
		if !ids.unify(w, *g) {
			ok = false
			return
		}
		*g = w
	}
	mapResults := func(w []api.Result, g []api.Result) []api.Result {
		out := cloneResults(g)
		if len(w) != len(g) {
			ok = false
			return out
		}
		for i := range w {
			mapID(w[i].Reqid, &out[i].Reqid)
		}
		return out
	}
	switch g := got.(type) {
	case api.DeployResponse:
		g.Results = mapResults(want.(api.DeployResponse).Results, g.Results)
		got = g
	case api.GetNodesResponse:
		g.Results = mapResults(want.(api.GetNodesResponse).Results, g.Results)
		got = g
	case api.GetIDValueResponse:
		g.Results = mapResults(want.(api.GetIDValueResponse).Results, g.Results)
		got = g
	case api.RestartResponse:
		g.Results = mapResults(want.(api.RestartResponse).Results, g.Results)
		got = g
	case api.StageConfigurationResponse:
		g.Results = mapResults(want.(api.StageConfigurationResponse).Results, g.Results)
		got = g
	case api.AgentWelcomeRequest:
		mapID(want.(api.AgentWelcomeRequest).Reqid, &g.Reqid)
		got = g
	case api.AgentDeployRequest:
		mapID(want.(api.AgentDeployRequest).Reqid, &g.Reqid)
		got = g
	case api.AgentNodeDispatchRequest:
		mapID(want.(api.AgentNodeDispatchRequest).Reqid, &g.Reqid)
		got = g
	case api.AgentRestartRequest:
		mapID(want.(api.AgentRestartRequest).Reqid, &g.Reqid)
		got = g
	case api.AgentGetNodesRequest:
		mapID(want.(api.AgentGetNodesRequest).Reqid, &g.Reqid)
		got = g
	}
	return ok && api.MessagesEqual(want, got)
}

func renderMsg(m api.Message) string {
	ev, err := api.Mgmt.Encode(m)
	if err != nil {
		return fmt.Sprintf("%T%+v", m, m)
	}
	b, err := broker.EventFrame("", ev).Encode()
	if err != nil {
		return fmt.Sprintf("%T%+v", m, m)
	}
	return string(b)
}

// --- Zeek's own agent, played by a stand-in ---------------------------------------

// standinAgent plays Zeek's agent instance-1, a Broker peer of the
// recorded controller: its hello id is registered as one. Before each case
// it is told the agent Results Zeek's response shows, and answers with
// them under the request id it was sent.
type standinAgent struct {
	t    *testing.T
	name string
	conn *broker.Conn
	done chan struct{}

	mu      sync.Mutex
	answers map[api.EventKind][]api.Result
	caseID  string
}

func startStandin(t *testing.T, ctx context.Context, c *Controller, name string) *standinAgent {
	t.Helper()
	topic := api.Mgmt.AgentTopic(name)
	conn, err := broker.Dial(ctx, c.URL(), []string{topic}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &standinAgent{t: t, name: name, conn: conn, done: make(chan struct{}), answers: map[api.EventKind][]api.Result{}}
	go s.serve(ctx)
	s.send(ctx, api.NotifyAgentHello{Instance: name, ID: standinBrokerID, Connecting: true, APIVersion: 1})
	waitKnown(t, ctx, c, name)
	return s
}

func (s *standinAgent) stop() {
	_ = s.conn.Close()
	<-s.done
}

func (s *standinAgent) send(ctx context.Context, m api.Message) {
	ev, err := api.Mgmt.Encode(m)
	if err != nil {
		s.t.Errorf("stand-in: encode %T: %v", m, err)
		return
	}
	if err := s.conn.Publish(ctx, api.Mgmt.AgentTopic(s.name), ev); err != nil && ctx.Err() == nil {
		s.t.Errorf("stand-in: publish %T: %v", m, err)
	}
}

// script takes the agent Results of the case's responses: those that do
// not carry the client's reqid and name the stand-in's instance.
func (s *standinAgent) script(tr mgmtvectors.Transcript) {
	clientIDs, _ := clientReqids(tr)
	answers := map[api.EventKind][]api.Result{}
	for _, f := range tr.Frames {
		if f.Dir != mgmtvectors.DirControllerToClient || f.Kind != "" {
			continue
		}
		m, ok := decodeRecorded(f.Text)
		if !ok {
			continue
		}
		var kind api.EventKind
		var rs []api.Result
		switch r := m.(type) {
		case api.DeployResponse:
			kind, rs = api.KindAgentDeployRequest, r.Results
		case api.GetNodesResponse:
			kind, rs = api.KindAgentGetNodesRequest, r.Results
		case api.GetIDValueResponse:
			kind, rs = api.KindAgentNodeDispatchRequest, r.Results
		case api.RestartResponse:
			kind, rs = api.KindAgentRestartRequest, r.Results
		default:
			continue
		}
		var mine []api.Result
		for _, r := range rs {
			if !clientIDs[r.Reqid] && r.Instance == s.name {
				mine = append(mine, r)
			}
		}
		answers[kind] = mine
	}
	s.mu.Lock()
	s.answers, s.caseID = answers, tr.Case
	s.mu.Unlock()
}

func (s *standinAgent) answer(kind api.EventKind, reqid string) ([]api.Result, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs, ok := s.answers[kind]
	out := cloneResults(rs)
	for i := range out {
		out[i].Reqid = reqid
	}
	return out, s.caseID, ok
}

func (s *standinAgent) serve(ctx context.Context) {
	defer close(s.done)
	for {
		msg, err := s.conn.Next(ctx)
		if err != nil {
			return
		}
		ev, err := msg.Event()
		if err != nil {
			s.t.Errorf("stand-in: not an event: %s", msg.Raw)
			continue
		}
		m, err := api.Mgmt.Decode(ev)
		if err != nil {
			s.t.Errorf("stand-in: %v", err)
			continue
		}
		reqid, _ := api.ReqidOf(m)
		switch m.(type) {
		case api.AgentWelcomeRequest:
			s.send(ctx, api.AgentWelcomeResponse{Reqid: reqid, Result: api.Result{Reqid: reqid, Success: true, Instance: s.name}})
			continue
		case api.AgentStandbyRequest:
			s.send(ctx, api.AgentStandbyResponse{Reqid: reqid, Result: api.Result{Reqid: reqid, Success: true, Instance: s.name}})
			continue
		}
		rs, caseName, ok := s.answer(m.Kind(), reqid)
		if !ok {
			s.t.Errorf("%s: the controller sent %T%+v to %s, which Zeek's response does not show", caseName, m, m, s.name)
			continue
		}
		switch m.(type) {
		case api.AgentDeployRequest:
			s.send(ctx, api.AgentDeployResponse{Reqid: reqid, Results: rs})
		case api.AgentGetNodesRequest:
			if len(rs) != 1 {
				s.t.Errorf("%s: %d get_nodes Results for %s in Zeek's response", caseName, len(rs), s.name)
				continue
			}
			s.send(ctx, api.AgentGetNodesResponse{Reqid: reqid, Result: rs[0]})
		case api.AgentNodeDispatchRequest:
			s.send(ctx, api.AgentNodeDispatchResponse{Reqid: reqid, Results: rs})
		case api.AgentRestartRequest:
			s.send(ctx, api.AgentRestartResponse{Reqid: reqid, Results: rs})
		}
	}
}

// --- the WebSocket-only fake agent, played from its transcript ---------------------

// scriptedFake replays a recorded WebSocket-only fake agent: it repeats
// the recorded hello, checks every request the controller sends it against
// the recorded one and answers with the recorded answer (ids mapped). It
// leaves once its last recorded answer is given.
type scriptedFake struct {
	t         *testing.T
	tr        mgmtvectors.Transcript
	log       *diffLog
	conn      *broker.Conn
	hello     []byte
	steps     []fakeStep
	ids       *idUnifier
	exhausted atomic.Bool
	done      chan struct{}
	cancel    context.CancelFunc
}

type fakeStep struct {
	request string // what the controller sent
	reply   string // what the fake answered ("" for none)
}

// fakeHelloInterval spaces the fake's hellos. Zeek's fake sent one a
// second; any interval works as long as a welcome is answered before the
// next hello, or the controller would rightly welcome twice.
const fakeHelloInterval = 200 * time.Millisecond

func startScriptedFake(t *testing.T, ctx context.Context, c *Controller, tr mgmtvectors.Transcript, log *diffLog) *scriptedFake {
	t.Helper()
	f := &scriptedFake{t: t, tr: tr, log: log, ids: newIDUnifier(), done: make(chan struct{})}
	var topics []string
	var ack string
	for i, fr := range tr.Frames {
		switch {
		case fr.Dir == mgmtvectors.DirFakeAgentToController && fr.Kind == "" && topics == nil:
			var err error
			if topics, err = broker.DecodeHandshake([]byte(fr.Text)); err != nil {
				t.Fatalf("%s: handshake %s: %v", tr.Case, fr.Text, err)
			}
		case fr.Dir == mgmtvectors.DirFakeAgentToController && fr.Kind == "":
			if m, ok := decodeRecorded(fr.Text); ok && f.hello == nil {
				if _, isHello := m.(api.NotifyAgentHello); isHello {
					f.hello = []byte(fr.Text)
				}
			}
		case fr.Dir == mgmtvectors.DirControllerToFakeAgent && fr.Kind == "":
			if ack == "" {
				ack = fr.Text
				continue
			}
			step := fakeStep{request: fr.Text}
			for _, next := range tr.Frames[i+1:] {
				if next.Dir == mgmtvectors.DirControllerToFakeAgent && next.Kind == "" {
					break
				}
				if next.Dir != mgmtvectors.DirFakeAgentToController || next.Kind != "" {
					continue
				}
				if m, ok := decodeRecorded(next.Text); ok {
					if _, isHello := m.(api.NotifyAgentHello); !isHello {
						step.reply = next.Text
						break
					}
				}
			}
			f.steps = append(f.steps, step)
		}
	}
	if topics == nil || f.hello == nil || len(f.steps) == 0 {
		t.Fatalf("%s: no handshake, hello or controller requests in the fake agent's transcript", tr.Case)
	}
	conn, err := broker.Dial(ctx, c.URL(), topics, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.conn = conn
	compareFrames(log, tr.Case, ack, mustEncodeFrame(t, conn.Ack()), nil, f.ids)
	runCtx, cancel := context.WithCancel(ctx)
	f.cancel = cancel
	go f.run(runCtx)
	return f
}

func mustEncodeFrame(t *testing.T, fr broker.Frame) []byte {
	b, err := fr.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *scriptedFake) run(ctx context.Context) {
	defer close(f.done)
	defer func() { _ = f.conn.Close() }()
	hello := time.NewTimer(0)
	defer hello.Stop()
	next := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-hello.C:
			if err := f.conn.WriteRaw(ctx, f.hello); err != nil {
				return
			}
			hello.Reset(fakeHelloInterval)
		case msg, ok := <-f.conn.Messages():
			if !ok {
				return
			}
			if next >= len(f.steps) {
				f.log.add(f.tr.Case, "extra-frame", "the controller sent the fake agent a frame Zeek did not: %s", msg.Raw)
				continue
			}
			step := f.steps[next]
			next++
			compareFrames(f.log, f.tr.Case, step.request, msg.Raw, nil, f.ids)
			if next == len(f.steps) {
				f.exhausted.Store(true)
			}
			if step.reply != "" {
				reply := step.reply
				if wm, ok := decodeRecorded(step.request); ok {
					if gm, err := api.Mgmt.DecodeFrame(mustDecodeFrame(f.t, msg.Raw)); err == nil {
						w, _ := api.ReqidOf(wm)
						g, _ := api.ReqidOf(gm)
						reply = strings.ReplaceAll(reply, strconv.Quote(w), strconv.Quote(g))
					}
				}
				if err := f.conn.WriteRaw(ctx, []byte(reply)); err != nil {
					return
				}
			}
			if next == len(f.steps) {
				return
			}
		}
	}
}

func mustDecodeFrame(t *testing.T, b []byte) broker.Frame {
	fr, err := broker.DecodeFrame(b)
	if err != nil {
		t.Errorf("frame %s: %v", b, err)
	}
	return fr
}

// waitGone waits until the fake agent has left.
func (f *scriptedFake) waitGone() { <-f.done }

func (f *scriptedFake) stop() {
	f.cancel()
	<-f.done
}

// --- transport cases ------------------------------------------------------------------

// replayTransport replays a transport case against a fresh controller. The
// ping timeout runs with a short ping interval: the rule (ping at connect,
// close 1011 "Ping timeout" at the next tick without a pong) is Zeek's,
// its 5 s are not.
func replayTransport(t *testing.T, tr mgmtvectors.Transcript, log *diffLog) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := parseSettings(t, tr)
	opts := Options{Name: "controller", Profile: api.Mgmt, RequestTimeout: s.timeout, SweepInterval: s.sweep,
		Mgmt: MgmtConfig{NoMetricsPortAutoAssign: s.noMetricsAutoAssign}}
	if !pongs(tr) {
		opts.Hub.PingInterval = 300 * time.Millisecond
	}
	c := startController(t, ctx, opts)
	rp := &replayer{t: t, ctx: ctx, c: c, log: log}
	rp.clientCase(tr)
}
