package zeekini

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkParse100Nodes parses a configuration of 10 instances and 100
// nodes, a large real deployment.
func BenchmarkParse100Nodes(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("[instances]\n")
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&sb, "instance-%d = 10.0.0.%d:2151\n", i, i+1)
	}
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&sb, "\n[worker-%03d]\ninstance = instance-%d\nrole = worker\nport = %d\ninterface = eth%d\ncpu_affinity = %d\n", i, i%10, 5000+i, i%4, i%16)
	}
	text := sb.String()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		cfg, err := ParseOptions("bench.ini", strings.NewReader(text), Options{NewID: fixedID})
		if err != nil || len(cfg.Nodes) != 100 {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseMgmt100Nodes is BenchmarkParse100Nodes in zeek-client
// 1.5's format, with scripts and env (shlex) on every node.
func BenchmarkParseMgmt100Nodes(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("[instances]\n")
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&sb, "instance-%d = 10.0.0.%d:2151\n", i, i+1)
	}
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&sb, "\n[worker-%03d]\ninstance = instance-%d\nrole = worker\nport = %d\ninterface = eth%d\ncpu_affinity = %d\nscripts = local.zeek \"site/w %d.zeek\"\nenv = LANG=C ID=%d\n", i, i%10, 5000+i, i%4, i%16, i, i)
	}
	text := sb.String()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		cfg, err := ParseOptions("bench.ini", strings.NewReader(text), Options{Dialect: DialectMgmt, NewID: fixedID})
		if err != nil || len(cfg.Nodes) != 100 {
			b.Fatal(err)
		}
	}
}
