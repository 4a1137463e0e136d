//go:build race

package scenarios

// raceEnabled: the race detector slows everything several times over, so
// the library test stretches the controller's timing (the scenarios'
// durations are relative to it and follow).
const raceEnabled = true
