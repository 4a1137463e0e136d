package api_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// bigConfigFrame is a set_configuration_request frame with 10 instances and
// 1,000 nodes: per instance one logger or proxy or manager role mix, and
// workers with an interface, a CPU, two scripts, an option and an env.
func bigConfigFrame(tb testing.TB) []byte {
	tb.Helper()
	cfg := api.Configuration{ID: "8c49f7b4-6a5b-11ec-9d1e-0242ac110002"}
	for i := range 10 {
		cfg.Instances = append(cfg.Instances, api.Instance{
			Name:       fmt.Sprintf("instance-%02d", i),
			Host:       netip.AddrFrom4([4]byte{10, 0, byte(i), 1}),
			ListenPort: api.Some(broker.TCPPort(2151)),
		})
	}
	for i := range 1000 {
		n := api.Node{
			Name:        fmt.Sprintf("worker-%04d", i),
			Instance:    fmt.Sprintf("instance-%02d", i%10),
			Port:        api.Some(broker.TCPPort(uint16(5000 + i))),
			Role:        api.ClusterRoleWorker,
			State:       api.StateRunning,
			Scripts:     api.Some([]string{"local.zeek", "site/worker-extra.zeek"}),
			Options:     api.Some([]api.Option{{Name: "Site::local_nets", Value: "10.0.0.0/8"}}),
			Interface:   api.Some(fmt.Sprintf("eth%d", i%4)),
			CPUAffinity: api.Some(int64(i % 32)),
			Env:         map[string]string{"LANG": "C", "ZEEK_WORKER": fmt.Sprint(i)},
		}
		switch i {
		case 0:
			n.Name, n.Role = "manager", api.ClusterRoleManager
		case 1:
			n.Name, n.Role = "logger", api.ClusterRoleLogger
		case 2, 3, 4:
			n.Name, n.Role = fmt.Sprintf("proxy-%02d", i-1), api.ClusterRoleProxy
		}
		cfg.Nodes = append(cfg.Nodes, n)
	}
	return controllerFrame(tb, api.CC42, api.SetConfigurationRequest{Reqid: "8c4a1f32-6a5b-11ec-9d1e-0242ac110002", Config: cfg})
}

// controllerFrame is m as the frame a client sends on p's controller topic.
func controllerFrame(tb testing.TB, p *api.Profile, m api.Message) []byte {
	tb.Helper()
	ev, err := p.Encode(m)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := broker.EventFrame(p.ControllerTopic, ev).Encode()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// BenchmarkDecodeSetConfiguration1000 measures the whole typed receive
// path: frame text to broker.Frame to broker.Event to the typed message.
func BenchmarkDecodeSetConfiguration1000(b *testing.B) {
	data := bigConfigFrame(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := broker.DecodeFrame(data)
		if err != nil {
			b.Fatal(err)
		}
		ev, err := f.Event()
		if err != nil {
			b.Fatal(err)
		}
		m, err := api.CC42.Decode(ev)
		if err != nil {
			b.Fatal(err)
		}
		if n := len(m.(api.SetConfigurationRequest).Config.Nodes); n != 1000 {
			b.Fatalf("%d nodes", n)
		}
	}
}

// BenchmarkJSONUnmarshalAny1000 is the yardstick: encoding/json into any,
// on the same bytes, with no typing at all.
func BenchmarkJSONUnmarshalAny1000(b *testing.B) {
	data := bigConfigFrame(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTypedDecodeOnly1000 isolates CC42.Decode from the broker
// decoder, to tell which side a regression is on.
func BenchmarkTypedDecodeOnly1000(b *testing.B) {
	f, err := broker.DecodeFrame(bigConfigFrame(b))
	if err != nil {
		b.Fatal(err)
	}
	ev, err := f.Event()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := api.CC42.Decode(ev); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBigConfigRoundTrip keeps the benchmark input honest: it decodes to
// the configuration it was built from.
func TestBigConfigRoundTrip(t *testing.T) {
	f, err := broker.DecodeFrame(bigConfigFrame(t))
	if err != nil {
		t.Fatal(err)
	}
	m, err := api.CC42.DecodeFrame(f)
	if err != nil {
		t.Fatal(err)
	}
	cfg := m.(api.SetConfigurationRequest).Config
	if len(cfg.Instances) != 10 || len(cfg.Nodes) != 1000 {
		t.Fatalf("%d instances, %d nodes", len(cfg.Instances), len(cfg.Nodes))
	}
	if env := cfg.Nodes[0].Env; env["LANG"] != "C" || len(env) != 2 {
		t.Fatalf("env %v", env)
	}
}
