// Command zcc is the one CLI of the zcc conformance and simulation harness
// for Zeek cluster controllers.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
