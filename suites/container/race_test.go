//go:build race

package container

// raceEnabled: the test binary was built with -race, which links cgo.
const raceEnabled = true
