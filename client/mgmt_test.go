package client

import (
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// mgmtController answers Management requests on a hub: answer maps each
// request to the responses it publishes.
func mgmtController(t *testing.T, answer func(api.Message) []api.Message) *broker.Server {
	t.Helper()
	hub := broker.NewHub(broker.HubOptions{Endpoint: "mgmt-endpoint"})
	var local *broker.Local
	local = hub.Subscribe([]string{api.Mgmt.ControllerTopic}, func(d broker.Delivery) {
		ev, err := broker.EventFromValue(d.Data)
		if err != nil {
			return
		}
		m, err := api.Mgmt.Decode(ev)
		if err != nil {
			return
		}
		for _, r := range answer(m) {
			out, err := api.Mgmt.Encode(r)
			if err != nil {
				t.Error(err)
				return
			}
			if err := local.PublishEvent(api.Mgmt.ControllerTopic, out); err != nil {
				t.Error(err)
			}
		}
	})
	srv, err := broker.Serve(context.Background(), "127.0.0.1:0", hub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func TestMgmtTypedRequests(t *testing.T) {
	ok := func(reqid string) api.Result {
		return api.Result{Reqid: reqid, Success: true, Data: broker.String("cfg-1")}
	}
	var got []api.Message
	srv := mgmtController(t, func(m api.Message) []api.Message {
		got = append(got, m)
		reqid, _ := api.ReqidOf(m)
		rs := []api.Result{ok(reqid)}
		switch m.(type) {
		case api.StageConfigurationRequest:
			return []api.Message{api.StageConfigurationResponse{Reqid: reqid, Results: rs}}
		case api.GetConfigurationRequest:
			return []api.Message{api.GetConfigurationResponse{Reqid: reqid, Result: api.Result{Reqid: reqid, Error: "no staged configuration available"}}}
		case api.DeployRequest:
			return []api.Message{api.DeployResponse{Reqid: reqid, Results: rs}}
		case api.GetNodesRequest:
			return []api.Message{api.GetNodesResponse{Reqid: reqid, Results: rs}}
		case api.GetIDValueRequest:
			return []api.Message{api.GetIDValueResponse{Reqid: reqid, Results: rs}}
		case api.RestartRequest:
			return []api.Message{api.RestartResponse{Reqid: reqid, Results: rs}}
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	c, err := Dial(ctx, srv.URL(), Options{Profile: api.Mgmt})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := api.Configuration{ID: "cfg-1"}
	check := func(name string, rs []api.Result, err error, reqid string) {
		t.Helper()
		if err != nil || len(rs) != 1 || !rs[0].Equal(ok(reqid)) {
			t.Errorf("%s: %+v, %v", name, rs, err)
		}
	}
	rs, err := c.StageConfiguration(ctx, cfg, WithReqid("s"))
	check("stage", rs, err, "s")
	r, err := c.GetConfiguration(ctx, true, WithReqid("g"))
	if err != nil || r.Success || r.Error != "no staged configuration available" {
		t.Errorf("get_configuration: %+v, %v", r, err)
	}
	rs, err = c.Deploy(ctx, WithReqid("d"))
	check("deploy", rs, err, "d")
	rs, err = c.GetNodes(ctx, WithReqid("n"))
	check("get_nodes", rs, err, "n")
	rs, err = c.GetIDValue(ctx, "bits_per_uid", []string{"worker", "manager"}, WithReqid("i"))
	check("get_id_value", rs, err, "i")
	rs, err = c.Restart(ctx, nil, WithReqid("r"))
	check("restart", rs, err, "r")
	want := []api.Message{
		api.StageConfigurationRequest{Reqid: "s", Config: cfg},
		api.GetConfigurationRequest{Reqid: "g", Deployed: true},
		api.DeployRequest{Reqid: "d"},
		api.GetNodesRequest{Reqid: "n"},
		api.GetIDValueRequest{Reqid: "i", ID: "bits_per_uid", Nodes: []string{"manager", "worker"}},
		api.RestartRequest{Reqid: "r"},
	}
	if len(got) != len(want) {
		t.Fatalf("controller got %d requests, want %d", len(got), len(want))
	}
	for i := range want {
		if !api.MessagesEqual(got[i], want[i]) {
			t.Errorf("request %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	// cc42 has none of these.
	cc, err := Dial(ctx, srv.URL(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := cc.Deploy(ctx); err == nil || !strings.Contains(err.Error(), "profile cc42 has no api.DeployRequest") {
		t.Errorf("cc42 deploy: %v", err)
	}
}

// Python's json module, checked against Python 3.11's own output.
func TestPyJSON(t *testing.T) {
	loadErrors := map[string]string{
		"hello":                   "Expecting value: line 1 column 1 (char 0)",
		"":                        "Expecting value: line 1 column 1 (char 0)",
		`{"a":1,}`:                "Expecting property name enclosed in double quotes: line 1 column 8 (char 7)",
		`[1 2]`:                   "Expecting ',' delimiter: line 1 column 4 (char 3)",
		`{"a" 1}`:                 "Expecting ':' delimiter: line 1 column 6 (char 5)",
		`"abc`:                    "Unterminated string starting at: line 1 column 1 (char 0)",
		"\"a\x01b\"":              "Invalid control character at: line 1 column 3 (char 2)",
		`"a\vb"`:                  "Invalid \\escape: line 1 column 3 (char 2)",
		`"\u12"`:                  "Invalid \\uXXXX escape: line 1 column 3 (char 2)",
		`{"type":"data-message",`: "Expecting property name enclosed in double quotes: line 1 column 24 (char 23)",
		"1 2":                     "Extra data: line 1 column 3 (char 2)",
		"{\n  \"a\": x}":          "Expecting value: line 2 column 8 (char 9)",
		"not json":                "Expecting value: line 1 column 1 (char 0)",
		"[01]":                    "Expecting ',' delimiter: line 1 column 3 (char 2)",
	}
	for in, want := range loadErrors {
		if v, err := pyLoads(in); err == nil || err.Error() != want {
			t.Errorf("pyLoads(%q) = %v, %v; want error %q", in, v, err, want)
		}
	}
	v, err := pyLoads(`{"z":1,"a":[true,false,null],"m":{"x":"caf\u00e9 \ud83d\ude00 \u0007 <>&\u007f"},"big":123456789012345678901234567890,"f":[0.1,1e-05,1e16,123.456,2.5e-10,1e22,-1.5,1e400,1.0]}`)
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "a": [
    true,
    false,
    null
  ],
  "big": 123456789012345678901234567890,
  "f": [
    0.1,
    1e-05,
    1e+16,
    123.456,
    2.5e-10,
    1e+22,
    -1.5,
    Infinity,
    1.0
  ],
  "m": {
    "x": "caf\u00e9 \ud83d\ude00 \u0007 <>&\u007f"
  },
  "z": 1
}`
	if got := pyDumps(v, 2); got != want {
		t.Errorf("pyDumps indent 2:\n%s\nwant\n%s", got, want)
	}
	if got := pyDumps(pyObject{"b": []any{}, "a": pyObject{}}, -1); got != `{"a": {}, "b": []}` {
		t.Errorf("pyDumps compact: %s", got)
	}
	for f, want := range map[float64]string{0: "0.0", 1e15: "1000000000000000.0", 1e-4: "0.0001", 5e-324: "5e-324",
		math.MaxFloat64: "1.7976931348623157e+308", -2.5e-7: "-2.5e-07", 9999999999999998: "9999999999999998.0", math.NaN(): "NaN"} {
		if got := pyFloatRepr(f); got != want {
			t.Errorf("pyFloatRepr(%g) = %s, want %s", f, got, want)
		}
	}
	if got := pyRepr(broker.Vector(broker.Count(1), broker.Enum("X::Y"), broker.FromPort(broker.TCPPort(0)))); got !=
		`{"@data-type": "vector", "data": [{"@data-type": "count", "data": 1}, {"@data-type": "enum-value", "data": "X::Y"}, {"@data-type": "port", "data": "0/tcp"}]}` {
		t.Errorf("pyRepr: %s", got)
	}
}

// zeek-client's Result order is not a total order; Python's sort gives
// these results (checked with CPython 3.11).
func TestPySortedResults(t *testing.T) {
	s := func(x string) *string { return &x }
	type item struct {
		k resultKey
		i int
	}
	cases := []struct {
		in   []resultKey
		want []int
	}{
		{[]resultKey{{nil, s("b")}, {s("i"), nil}, {nil, s("a")}}, []int{1, 2, 0}},
		{[]resultKey{{s("i"), s("c")}, {s("i"), nil}, {s("i"), s("a")}}, []int{0, 1, 2}},
		{[]resultKey{{s("b"), nil}, {s("a"), s("x")}, {nil, nil}, {s("a"), nil}}, []int{1, 3, 0, 2}},
	}
	for _, c := range cases {
		var in []item
		for i, k := range c.in {
			in = append(in, item{k, i})
		}
		out := pySorted(in, func(a, b item) bool { return pyLessResult(a.k, b.k) })
		var got []int
		for _, o := range out {
			got = append(got, o.i)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("order %v, want %v", got, c.want)
		}
	}
}

func TestZeekClientConnectFailures(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	start := time.Now()
	_, err = DialZeekClient(ctx, "ws://"+addr+"/v1/messages/json", ZeekClientOptions{PeeringAttempts: 3, RetryDelay: 10 * time.Millisecond})
	var ze *ZeekClientError
	if !errors.As(err, &ze) || ze.Msg != "websocket connection to "+addr+" timed out in connect()" {
		t.Fatalf("refused: %v", err)
	}
	if time.Since(start) < 30*time.Millisecond {
		t.Errorf("gave up after %v, before three attempts 10ms apart", time.Since(start))
	}

	// A server that accepts but never acks, and one that answers with a
	// WebSocket error page.
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		_, _, _ = ws.ReadMessage()
		_, _, _ = ws.ReadMessage() // until the client goes away
	}))
	defer silent.Close()
	host := strings.TrimPrefix(silent.URL, "http://")
	_, err = DialZeekClient(ctx, "ws://"+host+"/v1/messages/json", ZeekClientOptions{PeeringAttempts: 2, RetryDelay: 10 * time.Millisecond})
	if !errors.As(err, &ze) || ze.Msg != "websocket connection to "+host+" timed out in handshake" {
		t.Fatalf("no ack: %v", err)
	}
	notWS := httptest.NewServer(http.NotFoundHandler())
	defer notWS.Close()
	host = strings.TrimPrefix(notWS.URL, "http://")
	_, err = DialZeekClient(ctx, "ws://"+host+"/v1/messages/json", ZeekClientOptions{PeeringAttempts: 2, RetryDelay: 10 * time.Millisecond})
	if !errors.As(err, &ze) || !strings.HasPrefix(ze.Msg, "websocket error in connect() with controller "+host+": websocket: bad handshake") {
		t.Fatalf("not a WebSocket server: %v", err)
	}
}

// Transact gives up at the wall-clock deadline even while the controller
// keeps pinging (zeek-client's socket timeout would restart each time).
func TestZeekClientDeadlineDespitePings(t *testing.T) {
	pinging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		if _, _, err := ws.ReadMessage(); err != nil {
			return
		}
		ack, _ := broker.AckFrame("e", "8.1.2").Encode()
		_ = ws.WriteMessage(websocket.TextMessage, ack)
		// Pings on the server's schedule: a ticker is this fake server's
		// behaviour under test, not test synchronisation.
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for range tick.C {
			if ws.WriteControl(websocket.PingMessage, []byte("hb"), time.Now().Add(time.Second)) != nil {
				return
			}
		}
	}))
	defer pinging.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	host := strings.TrimPrefix(pinging.URL, "http://")
	z, err := DialZeekClient(ctx, "ws://"+host+"/v1/messages/json", ZeekClientOptions{RequestTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	if z.Endpoint() != "e" || z.Remote() != host {
		t.Errorf("endpoint %q remote %q", z.Endpoint(), z.Remote())
	}
	_, err = z.Transact(ctx, api.TestTimeoutRequest{Reqid: "r"})
	var ze *ZeekClientError
	if !errors.As(err, &ze) || ze.Msg != "no response received: websocket connection to "+host+" timed out" {
		t.Fatalf("Transact: %v", err)
	}
}
