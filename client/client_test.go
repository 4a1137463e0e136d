package client

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testWait bounds every wait in these tests; it is a safety net, never
// the thing being measured.
const testWait = 5 * time.Second

// scripted is a hub with an in-process peer on the controller topic that
// hands each request to the test and publishes whatever the test scripts.
type scripted struct {
	t     *testing.T
	srv   *broker.Server
	hub   *broker.Hub
	local *broker.Local
	reqs  chan api.Message
}

func newScripted(t *testing.T) *scripted {
	t.Helper()
	s := &scripted{t: t, reqs: make(chan api.Message, 64)}
	s.hub = broker.NewHub(broker.HubOptions{Endpoint: "scripted-endpoint"})
	s.local = s.hub.Subscribe([]string{api.CC42.ControllerTopic}, func(d broker.Delivery) {
		ev, err := broker.EventFromValue(d.Data)
		if err != nil {
			return
		}
		m, err := api.CC42.Decode(ev)
		if err != nil {
			return
		}
		switch m.(type) {
		case api.GetInstancesRequest, api.SetConfigurationRequest, api.TestTimeoutRequest:
			s.reqs <- m
		}
	})
	srv, err := broker.Serve(context.Background(), "127.0.0.1:0", s.hub)
	if err != nil {
		t.Fatal(err)
	}
	s.srv = srv
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *scripted) dial(opts Options) *Client {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	c, err := Dial(ctx, s.srv.URL(), opts)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

// next returns the next request a client sent.
func (s *scripted) next() api.Message {
	s.t.Helper()
	select {
	case m := <-s.reqs:
		return m
	case <-time.After(testWait):
		s.t.Fatal("no request reached the scripted controller")
		return nil
	}
}

func (s *scripted) send(m api.Message) {
	s.t.Helper()
	ev, err := api.CC42.Encode(m)
	if err != nil {
		s.t.Fatal(err)
	}
	s.sendEvent(ev)
}

func (s *scripted) sendEvent(ev broker.Event) {
	s.t.Helper()
	if err := s.local.PublishEvent(api.CC42.ControllerTopic, ev); err != nil {
		s.t.Fatal(err)
	}
}

type reply struct {
	msg api.Message
	err error
}

// async runs a request in the background.
func async(fn func() (api.Message, error)) <-chan reply {
	ch := make(chan reply, 1)
	go func() {
		m, err := fn()
		ch <- reply{m, err}
	}()
	return ch
}

func await(t *testing.T, ch <-chan reply) reply {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(testWait):
		t.Fatal("request did not return")
		return reply{}
	}
}

func instancesResult(t *testing.T, reqid string, instances ...api.Instance) api.Result {
	t.Helper()
	data, err := api.CC42.InstancesValue(instances)
	if err != nil {
		t.Fatal(err)
	}
	return api.Result{Reqid: reqid, Success: true, Data: data}
}

func TestReqidCorrelationSkipsEverythingElse(t *testing.T) {
	s := newScripted(t)
	a := s.dial(Options{})
	b := s.dial(Options{})

	// b watches the topic; it must see every message, foreign ones included.
	// Watch registers at once, so nothing sent from here on can be missed.
	seenByB, stopB := b.Watch()
	defer stopB()
	inst := api.Instance{Name: "instance-1", Host: netip.MustParseAddr("127.0.0.1"), ListenPort: api.Some(broker.TCPPort(2151))}
	ch := async(func() (api.Message, error) {
		res, err := a.GetInstances(context.Background(), WithReqid("r-A"))
		return api.GetInstancesResponse{Reqid: "r-A", Result: res}, err
	})
	if got := s.next(); !reflect.DeepEqual(got, api.GetInstancesRequest{Reqid: "r-A"}) {
		t.Fatalf("controller got %#v", got)
	}
	want := instancesResult(t, "r-A", inst)
	script := []broker.Event{
		mustEncode(t, api.GetInstancesResponse{Reqid: "r-other", Result: instancesResult(t, "r-other")}),
		mustEncode(t, api.TestTimeoutResponse{Reqid: "r-A", Result: api.Result{Reqid: "r-A", Error: "request timed out"}}),
		broker.NewEvent("Foo::unknown_event", broker.String("r-A")),
		mustEncode(t, api.GetInstancesRequest{Reqid: "r-foreign"}),
		mustEncode(t, api.GetInstancesResponse{Reqid: "r-A", Result: want}),
		mustEncode(t, api.GetInstancesResponse{Reqid: "r-A", Result: api.Result{Reqid: "r-A", Error: "a late duplicate"}}),
	}
	for _, ev := range script[:3] {
		s.sendEvent(ev)
	}
	if err := s.local.Publish(api.CC42.ControllerTopic, broker.String("not an event")); err != nil {
		t.Fatal(err)
	}
	for _, ev := range script[3:] {
		s.sendEvent(ev)
	}

	r := await(t, ch)
	if r.err != nil {
		t.Fatal(r.err)
	}
	res := r.msg.(api.GetInstancesResponse).Result
	if !res.Success || res.Reqid != "r-A" || !broker.Equal(res.Data, want.Data) {
		t.Errorf("got result %v, want %v", res, want)
	}
	insts, err := a.Profile().DecodeInstances(res.Data)
	if err != nil || len(insts) != 1 || !insts[0].Equal(inst) {
		t.Errorf("instances %v, %v", insts, err)
	}

	// b sees a's request too, at a point that depends on the hub's
	// routing order; apart from it, b sees exactly the script, in order.
	var got []Received
	var names []string
	for len(got) < 8 {
		select {
		case r := <-seenByB:
			got = append(got, r)
			if r.Msg != nil && r.Msg.Kind() == api.KindGetInstancesRequest && r.Msg.(api.GetInstancesRequest).Reqid == "r-A" {
				continue
			}
			if r.IsEvent {
				names = append(names, r.Event.String())
			} else {
				names = append(names, "data "+r.Data.String())
			}
		case <-time.After(testWait):
			t.Fatalf("b saw only %d messages", len(got))
		}
	}
	var wantNames []string
	for i, ev := range script {
		if i == 3 {
			wantNames = append(wantNames, `data "not an event"`)
		}
		wantNames = append(wantNames, ev.String())
	}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("monitor saw\n%s\nwant\n%s", strings.Join(names, "\n"), strings.Join(wantNames, "\n"))
	}
	for _, r := range got {
		switch {
		case r.IsEvent && r.Event.Name == "Foo::unknown_event":
			var unknown *api.UnknownEventError
			if !errors.As(r.Err, &unknown) {
				t.Errorf("unknown event: Err %v", r.Err)
			}
		case !r.IsEvent:
			if r.Err == nil || !strings.Contains(r.Err.Error(), "not a Zeek event") {
				t.Errorf("non-event data: Err %v", r.Err)
			}
		default:
			if r.Err != nil || r.Msg == nil || r.Topic != api.CC42.ControllerTopic || r.At.IsZero() || len(r.Raw) == 0 {
				t.Errorf("event %s: msg %v err %v topic %q", r.Event, r.Msg, r.Err, r.Topic)
			}
		}
	}
}

var errStopTest = errors.New("enough")

func mustEncode(t *testing.T, m api.Message) broker.Event {
	t.Helper()
	ev, err := api.CC42.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestConcurrentRequestsAnsweredInReverse(t *testing.T) {
	s := newScripted(t)
	a := s.dial(Options{})
	b := s.dial(Options{})

	chA1 := async(func() (api.Message, error) {
		return a.Request(context.Background(), api.GetInstancesRequest{Reqid: "a1"})
	})
	first := s.next()
	chA2 := async(func() (api.Message, error) {
		return a.Request(context.Background(), api.TestTimeoutRequest{Reqid: "a2", WithState: true})
	})
	second := s.next()
	chB := async(func() (api.Message, error) {
		return b.Request(context.Background(), api.GetInstancesRequest{Reqid: "b1"})
	})
	third := s.next()
	if !reflect.DeepEqual([]api.Message{first, second, third}, []api.Message{
		api.GetInstancesRequest{Reqid: "a1"}, api.TestTimeoutRequest{Reqid: "a2", WithState: true}, api.GetInstancesRequest{Reqid: "b1"},
	}) {
		t.Fatalf("requests %v %v %v", first, second, third)
	}
	rb := api.GetInstancesResponse{Reqid: "b1", Result: instancesResult(t, "b1")}
	ra2 := api.TestTimeoutResponse{Reqid: "a2", Result: api.Result{Reqid: "a2", Error: "request timed out"}}
	ra1 := api.GetInstancesResponse{Reqid: "a1", Result: instancesResult(t, "a1")}
	s.send(rb)
	s.send(ra2)
	s.send(ra1)
	for _, c := range []struct {
		ch   <-chan reply
		want api.Message
	}{{chB, rb}, {chA2, ra2}, {chA1, ra1}} {
		r := await(t, c.ch)
		if r.err != nil {
			t.Fatal(r.err)
		}
		if !sameMessage(r.msg, c.want) {
			t.Errorf("got %#v, want %#v", r.msg, c.want)
		}
	}
}

// sameMessage compares by wire form, since Result.Data holds broker values.
func sameMessage(a, b api.Message) bool {
	ea, err1 := api.CC42.Encode(a)
	eb, err2 := api.CC42.Encode(b)
	return err1 == nil && err2 == nil && broker.Equal(ea.Value(), eb.Value())
}

func TestNoResponseIsADeadlineNotADisconnect(t *testing.T) {
	s := newScripted(t)
	c := s.dial(Options{})

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.TestTimeout(ctx, false, WithReqid("silent"))
	if !errors.Is(err, ErrNoResponse) || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrDisconnected) {
		t.Fatalf("error %v", err)
	}
	var nr *NoResponseError
	if !errors.As(err, &nr) || nr.Event != "test_timeout_response" || nr.Reqid != "silent" || nr.Waited < 100*time.Millisecond {
		t.Errorf("NoResponseError %+v", nr)
	}
	if time.Since(start) < 100*time.Millisecond {
		t.Errorf("returned before the deadline")
	}
	if got := s.next(); !reflect.DeepEqual(got, api.TestTimeoutRequest{Reqid: "silent"}) {
		t.Errorf("controller got %#v", got)
	}
	if want := `no response received: no test_timeout_response for reqid "silent" after`; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message %q", err)
	}

	// A response after the deadline is dropped; the client keeps working.
	s.send(api.TestTimeoutResponse{Reqid: "silent", Result: api.Result{Reqid: "silent"}})
	ch := async(func() (api.Message, error) {
		return c.Request(context.Background(), api.GetInstancesRequest{Reqid: "next"})
	})
	s.next()
	s.send(api.GetInstancesResponse{Reqid: "next", Result: instancesResult(t, "next")})
	if r := await(t, ch); r.err != nil {
		t.Fatal(r.err)
	}

	// Cancellation is "no response" too, with its own cause.
	cctx, ccancel := context.WithCancel(context.Background())
	ch = async(func() (api.Message, error) { return c.Request(cctx, api.TestTimeoutRequest{Reqid: "cancelled"}) })
	s.next()
	ccancel()
	if r := await(t, ch); !errors.Is(r.err, ErrNoResponse) || !errors.Is(r.err, context.Canceled) {
		t.Errorf("cancelled request: %v", r.err)
	}
}

func TestDefaultRequestTimeoutApplies(t *testing.T) {
	s := newScripted(t)
	c := s.dial(Options{RequestTimeout: 50 * time.Millisecond})
	_, err := c.GetInstances(context.Background())
	if !errors.Is(err, ErrNoResponse) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v", err)
	}
	m := s.next().(api.GetInstancesRequest)
	if len(m.Reqid) != 36 || m.Reqid[14] != '1' {
		t.Errorf("generated reqid %q is not a uuid1 string", m.Reqid)
	}
}

func TestDisconnectDuringRequest(t *testing.T) {
	s := newScripted(t)
	c := s.dial(Options{})
	monErr := make(chan error, 1)
	go func() { monErr <- c.Monitor(context.Background(), func(Received) error { return nil }) }()

	ch := async(func() (api.Message, error) {
		return c.Request(context.Background(), api.GetInstancesRequest{Reqid: "r"})
	})
	s.next()
	s.srv.Close()
	r := await(t, ch)
	if !errors.Is(r.err, ErrDisconnected) || errors.Is(r.err, ErrNoResponse) {
		t.Fatalf("error %v", r.err)
	}
	select {
	case <-c.Done():
	case <-time.After(testWait):
		t.Fatal("Done not closed")
	}
	if _, err := c.GetInstances(context.Background()); !errors.Is(err, ErrDisconnected) {
		t.Errorf("request after the end: %v", err)
	}
	select {
	case err := <-monErr:
		if !errors.Is(err, ErrDisconnected) {
			t.Errorf("monitor: %v", err)
		}
	case <-time.After(testWait):
		t.Fatal("monitor did not end")
	}
	if err := c.Monitor(context.Background(), func(Received) error { return nil }); !errors.Is(err, ErrDisconnected) {
		t.Errorf("monitor after the end: %v", err)
	}
}

func TestMalformedMatchingResponseFailsAtOnce(t *testing.T) {
	s := newScripted(t)
	c := s.dial(Options{})
	ch := async(func() (api.Message, error) {
		return c.Request(context.Background(), api.GetInstancesRequest{Reqid: "r"})
	})
	s.next()
	// Same event and reqid, but the Result is a string: Zeek would drop it.
	s.sendEvent(broker.NewEvent("ClusterController::API::get_instances_response", broker.String("r"), broker.String("oops")))
	r := await(t, ch)
	var bad *BadResponseError
	if !errors.Is(r.err, ErrBadResponse) || !errors.As(r.err, &bad) || bad.Reqid != "r" || bad.Event != "get_instances_response" {
		t.Fatalf("error %v", r.err)
	}
	var argErr *api.ArgError
	if !errors.As(r.err, &argErr) || argErr.Index != 1 {
		t.Errorf("cause %v", bad.Err)
	}
}

func TestErrorFramesAndAck(t *testing.T) {
	s := newScripted(t)
	c := s.dial(Options{})
	if ack := c.Ack(); ack.Type != broker.FrameAck || ack.Endpoint != "scripted-endpoint" {
		t.Errorf("ack %v", ack)
	}
	peers := s.hub.Peers()
	if len(peers) != 1 {
		t.Fatalf("peers %v", peers)
	}
	if peers[0].Application != "zcc-client" {
		t.Errorf("X-Application-Name %q", peers[0].Application)
	}
	if err := s.hub.SendError(peers[0].ID, broker.CodeDeserializationFailed, "failed to create Zeek event: test"); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-c.Errors():
		if f.Type != broker.FrameError || f.Code != broker.CodeDeserializationFailed || f.Context != "failed to create Zeek event: test" {
			t.Errorf("error frame %v", f)
		}
	case <-time.After(testWait):
		t.Fatal("no error frame")
	}
}

func TestSetConfigurationRoundTrip(t *testing.T) {
	s := newScripted(t)
	c := s.dial(Options{})
	cfg := api.Configuration{
		ID:        "cfg",
		Instances: []api.Instance{{Name: "i1", Host: netip.IPv4Unspecified()}},
		Nodes: []api.Node{{Name: "w1", Instance: "i1", Port: api.Some(broker.TCPPort(5001)), Role: api.ClusterRoleWorker,
			State: api.StateRunning, Env: map[string]string{}}},
	}
	type out struct {
		res []api.Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := c.SetConfiguration(context.Background(), cfg, WithReqid("R"))
		done <- out{res, err}
	}()
	got, ok := s.next().(api.SetConfigurationRequest)
	if !ok || got.Reqid != "R" || !got.Config.Equal(cfg) {
		t.Fatalf("controller got %#v", got)
	}
	results := []api.Result{
		{Reqid: "R", Instance: "i1", Success: true},
		{Reqid: "R", Instance: "i2", Error: "node w2 failed: boom"},
	}
	s.send(api.SetConfigurationResponse{Reqid: "R", Results: results})
	select {
	case o := <-done:
		if o.err != nil {
			t.Fatal(o.err)
		}
		if len(o.res) != 2 || o.res[0].Instance != "i1" || !o.res[0].Success || o.res[1].Error != "node w2 failed: boom" || o.res[1].Success {
			t.Errorf("results %v", o.res)
		}
	case <-time.After(testWait):
		t.Fatal("no results")
	}
}

func TestRequestRejectsNonRequests(t *testing.T) {
	s := newScripted(t)
	c := s.dial(Options{})
	if _, err := c.Request(context.Background(), nil); err == nil {
		t.Error("nil request accepted")
	}
	if _, err := c.Request(context.Background(), api.NotifyAgentHello{Instance: "x"}); err == nil || !strings.Contains(err.Error(), "not a controller request") {
		t.Errorf("hello as request: %v", err)
	}
	if _, err := c.Request(context.Background(), api.DeployRequest{Reqid: "x"}); err == nil || !strings.Contains(err.Error(), "profile cc42 has no") {
		t.Errorf("mgmt request in cc42: %v", err)
	}
	// Publish sends without waiting.
	if err := c.Publish(context.Background(), api.TestTimeoutRequest{Reqid: "p"}); err != nil {
		t.Fatal(err)
	}
	if got := s.next(); !reflect.DeepEqual(got, api.TestTimeoutRequest{Reqid: "p"}) {
		t.Errorf("published %#v", got)
	}
	if k, ok := ResponseKind(api.KindSetConfigurationRequest); !ok || k != api.KindSetConfigurationResponse {
		t.Errorf("ResponseKind = %v %v", k, ok)
	}
}

func TestDialRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	_, err = Dial(ctx, "ws://"+addr+"/v1/messages/json", Options{})
	if err == nil || !strings.Contains(err.Error(), "connect to controller") {
		t.Errorf("dial error %v", err)
	}
}

func TestManyConcurrentRequests(t *testing.T) {
	s := newScripted(t)
	c := s.dial(Options{})
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := NewReqid()
			res, err := c.GetInstances(context.Background(), WithReqid(id))
			if err == nil && res.Reqid != id {
				err = errors.New("reqid mismatch: " + res.Reqid + " != " + id)
			}
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		m := s.next().(api.GetInstancesRequest)
		s.send(api.GetInstancesResponse{Reqid: m.Reqid, Result: instancesResult(t, m.Reqid)})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestMonitorEndsOnFnErrorOrContext(t *testing.T) {
	s := newScripted(t)
	c := s.dial(Options{})

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Monitor(cancelled, func(Received) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled monitor: %v", err)
	}

	// Monitor cannot report when it is registered, so traffic keeps
	// coming until it has seen one message; the test waits on its return.
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				s.local.Publish(api.CC42.ControllerTopic, broker.String("tick"))
			}
		}
	}()
	var seen Received
	ctx, stop := context.WithTimeout(context.Background(), testWait)
	defer stop()
	err := c.Monitor(ctx, func(r Received) error { seen = r; return errStopTest })
	if !errors.Is(err, errStopTest) {
		t.Fatalf("monitor ended with %v", err)
	}
	if v, _ := seen.Data.AsString(); v != "tick" || seen.IsEvent || seen.Err == nil {
		t.Errorf("monitor saw %+v", seen)
	}

	// A stopped watcher receives nothing more. Messages are dispatched in
	// order, so once the response that follows "after-stop" has reached
	// its request, "after-stop" has been dispatched too.
	msgs, stopWatch := c.Watch()
	stopWatch()
	stopWatch() // idempotent
	ch := async(func() (api.Message, error) { return c.Request(ctx, api.GetInstancesRequest{Reqid: "sync"}) })
	s.next()
	s.local.Publish(api.CC42.ControllerTopic, broker.String("after-stop"))
	s.send(api.GetInstancesResponse{Reqid: "sync", Result: instancesResult(t, "sync")})
	if r := await(t, ch); r.err != nil {
		t.Fatal(r.err)
	}
drain:
	for {
		select {
		case r := <-msgs:
			if v, _ := r.Data.AsString(); v == "after-stop" || r.IsEvent {
				t.Errorf("stopped watcher received %v", r.Data)
			}
		default:
			break drain
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// After the end, Watch hands out a closed channel.
	if _, ok := <-func() <-chan Received { ch, _ := c.Watch(); return ch }(); ok {
		t.Error("Watch after the end delivered a message")
	}
}
