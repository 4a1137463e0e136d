package suites

import "runtime/debug"

// Version overrides the harness version recorded in reports (the CLI sets
// it from its own build version).
var Version = ""

func harnessVersion() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			if dep.Path == "github.com/zcc-harness/zcc" {
				return dep.Version
			}
		}
		if bi.Main.Path == "github.com/zcc-harness/zcc" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
	}
	return "dev"
}
