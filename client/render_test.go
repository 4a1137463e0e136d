package client

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

func TestJSONValueEveryKind(t *testing.T) {
	ts := time.Date(2022, 1, 2, 3, 4, 5, 6000000, time.UTC)
	tests := []struct {
		v    broker.Value
		want string
	}{
		{broker.None(), `null`},
		{broker.Bool(true), `true`},
		{broker.Count(18446744073709551615), `18446744073709551615`},
		{broker.Integer(-3), `-3`},
		{broker.Real(1.5), `1.5`},
		{broker.Real(math.Inf(1)), `"+Inf"`},
		{broker.String("a<b>"), `"a<b>"`},
		{broker.Address(netip.MustParseAddr("::ffff:10.0.0.1")), `"10.0.0.1"`},
		{broker.Address(netip.MustParseAddr("2001:db8::1")), `"2001:db8::1"`},
		{broker.Subnet(netip.MustParsePrefix("10.0.0.0/8")), `"10.0.0.0/8"`},
		{broker.FromPort(broker.TCPPort(2151)), `"2151/tcp"`},
		{broker.Timestamp(ts), `"2022-01-02T03:04:05.006Z"`},
		{broker.Timespan(1500 * time.Millisecond), `"1.5s"`},
		{broker.Enum("Supervisor::WORKER"), `"Supervisor::WORKER"`},
		{broker.Set(broker.Count(2), broker.Count(1)), `[1,2]`},
		{broker.Vector(broker.String("x"), broker.None()), `["x",null]`},
		{broker.StringTable(map[string]string{"b": "2", "a": "1"}), `{"a":"1","b":"2"}`},
		{broker.Table(broker.TableEntry{Key: broker.Count(1), Value: broker.Bool(false)}), `[{"key":1,"value":false}]`},
		{broker.Vector(), `[]`},
	}
	for _, tc := range tests {
		got, err := marshalNoEscape(JSONValue(tc.v))
		if err != nil || string(got) != tc.want {
			t.Errorf("JSONValue(%v) = %s, %v; want %s", tc.v, got, err, tc.want)
		}
	}
}

func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func TestResultAndInstancesJSON(t *testing.T) {
	got, _ := json.Marshal(ResultJSON(api.Result{Reqid: "R", Instance: "i", Error: "e", Node: api.Some("n"), Data: broker.String("d")}))
	if want := `{"data":"d","error":"e","instance":"i","node":"n","reqid":"R","success":false}`; string(got) != want {
		t.Errorf("ResultJSON = %s, want %s", got, want)
	}
	got, _ = json.Marshal(InstancesJSON([]api.Instance{
		{Name: "b", Host: netip.IPv4Unspecified()},
		{Name: "a", Host: netip.MustParseAddr("::ffff:127.0.0.1"), ListenPort: api.Some(broker.TCPPort(2151))},
	}))
	if want := `[{"addr":"127.0.0.1","name":"a","port":"2151/tcp"},{"addr":"0.0.0.0","name":"b","port":null}]`; string(got) != want {
		t.Errorf("InstancesJSON = %s, want %s", got, want)
	}
}

// Observe sees messages that arrive before anyone could call Monitor.
func TestObserveSeesEverythingFromTheStart(t *testing.T) {
	s := newScripted(t)
	connected := make(chan struct{}, 1)
	s.hub.OnPeer(func(ev broker.PeerEvent) {
		if ev.Connected {
			connected <- struct{}{}
		}
	})
	seen := make(chan Received, 4)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	// Publish from the hub as soon as the client is registered, racing
	// with Dial's return.
	go func() {
		select {
		case <-connected:
		case <-ctx.Done():
			return
		}
		s.local.Publish(api.CC42.ControllerTopic, broker.String("first"))
		s.local.Publish(api.CC42.ControllerTopic, broker.String("second"))
	}()
	c, err := Dial(ctx, s.srv.URL(), Options{Observe: func(r Received) { seen <- r }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, want := range []string{"first", "second"} {
		select {
		case r := <-seen:
			if got, _ := r.Data.AsString(); got != want {
				t.Errorf("observed %v, want %q", r.Data, want)
			}
		case <-ctx.Done():
			t.Fatalf("did not observe %q", want)
		}
	}
}
