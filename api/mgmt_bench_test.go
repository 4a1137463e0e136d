package api_test

import (
	"testing"

	"github.com/zcc-harness/zcc/api"
	"github.com/zcc-harness/zcc/broker"
)

// bigMgmtConfigFrame is bigConfigFrame's configuration (10 instances,
// 1,000 nodes) as a mgmt stage_configuration_request, metrics ports added.
func bigMgmtConfigFrame(tb testing.TB) []byte {
	tb.Helper()
	f, err := broker.DecodeFrame(bigConfigFrame(tb))
	if err != nil {
		tb.Fatal(err)
	}
	m, err := api.CC42.DecodeFrame(f)
	if err != nil {
		tb.Fatal(err)
	}
	cfg := m.(api.SetConfigurationRequest).Config
	for i := range cfg.Nodes {
		cfg.Nodes[i].MetricsPort = api.Some(broker.TCPPort(uint16(9000 + i%100)))
	}
	return controllerFrame(tb, api.Mgmt, api.StageConfigurationRequest{Reqid: clientReqid, Config: cfg})
}

// BenchmarkDecodeMgmtStageConfiguration1000 is
// BenchmarkDecodeSetConfiguration1000 for the mgmt profile.
func BenchmarkDecodeMgmtStageConfiguration1000(b *testing.B) {
	data := bigMgmtConfigFrame(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := broker.DecodeFrame(data)
		if err != nil {
			b.Fatal(err)
		}
		m, err := api.Mgmt.DecodeFrame(f)
		if err != nil {
			b.Fatal(err)
		}
		if n := len(m.(api.StageConfigurationRequest).Config.Nodes); n != 1000 {
			b.Fatalf("%d nodes", n)
		}
	}
}
