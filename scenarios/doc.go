// Package scenarios runs YAML scenarios inside zcc's conformance suite: a
// scenario file describes one case against a cluster controller — fake
// agents and how each behaves (the fakeagent vocabulary), the requests a
// client sends, and what must come back — without Go.
//
// Parse, LoadFile and LoadFS decode a file with goccy/go-yaml's positions
// and validate it, collecting every problem as "file:line:col: path: what
// is wrong" (unknown keys, wrong types, missing keys, references to
// undeclared agents or requests, behaviour IDs the catalogue lacks,
// timeouts that cannot work). Durations may be relative to the target's
// timing ("0.5x controller_timeout"), so one file runs against the
// in-process reference controller and a real one. Schema returns a JSON
// Schema generated from the same types.
//
// Define turns scenarios into suite specs (suites.DefineSpec): each runs
// in a suites.Env, with names made unique per run, fake agents whose
// transcripts are attached on failure, and report lines under its pair and
// behaviour IDs. Importing the package defines the embedded library
// (cc42/*.yaml), so `zcc conform`, `make conform` and any program that
// registers the suite run it; `go test` runs it against the reference
// controller in both quirk modes. docs/scenarios.md is the authoring guide.
package scenarios
