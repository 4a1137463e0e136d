package main

import (
	"bytes"
	"testing"
)

// The conform command is wrapped so that the container target's sweep
// runs after every conform run.
func TestConformSweepsContainers(t *testing.T) {
	root := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
	for _, c := range root.Commands() {
		if c.Name() == "conform" {
			if c.Annotations[sweepAnnotation] != "true" {
				t.Fatal("zcc conform does not sweep the container target's leftovers")
			}
			return
		}
	}
	t.Fatal("no conform command")
}
