package controller

import (
	"fmt"
	"sort"
	"strings"
)

// Defect is a deliberate protocol violation the reference controller can
// be told to commit. Defects exist to test conformance suites: a suite
// that still passes against a controller with a defect enabled has a hole.
// They are options of the real controller rather than copies of it, so
// each broken variant differs from the correct one in exactly one place.
// Never enable one outside a test of the harness.
//
// Under profile mgmt every defect applies to the matching Management rule
// (deploy for the pending gate, deploy_request for configurations), except
// success-not-anded and error-without-node: the Management controller
// passes the agents' Results through instead of aggregating them.
type Defect uint8

// The defects. Each names the one rule it breaks.
const (
	// DefectWrongReqidEcho: responses to clients carry a reqid other than
	// the request's.
	DefectWrongReqidEcho Defect = iota + 1
	// DefectNoTimeoutResponse: expired requests end without a response.
	DefectNoTimeoutResponse
	// DefectWrongPendingText: the pending gate's error text differs from
	// "request <R1> still pending".
	DefectWrongPendingText
	// DefectReadyTooEarly: notify_agents_ready fires as soon as one
	// configured instance is ready, not when all are.
	DefectReadyTooEarly
	// DefectConfigToUnwelcomed: a configured instance counts as ready as
	// soon as it checks in, so it gets the configuration before (or
	// without) answering its welcome.
	DefectConfigToUnwelcomed
	// DefectNoPendingGate: a set_configuration is accepted while another
	// is pending.
	DefectNoPendingGate
	// DefectStatelessTimeoutAnswered: test_timeout without state is
	// answered like test_timeout with state.
	DefectStatelessTimeoutAnswered
	// DefectNoStandbyOnDrop: instances dropped by a reconfiguration get no
	// agent_standby_request.
	DefectNoStandbyOnDrop
	// DefectSuccessNotAnded: an agent's Result reports success even when
	// the agent failed.
	DefectSuccessNotAnded
	// DefectWrongResponseTopic: responses are published on a topic clients
	// do not subscribe to.
	DefectWrongResponseTopic
	// DefectGetInstancesNoneData: get_instances data is none instead of an
	// (empty) vector.
	DefectGetInstancesNoneData
	// DefectIgnoresAPIVersion: hellos with another api_version are
	// accepted like version 1.
	DefectIgnoresAPIVersion
	// DefectDuplicateResponse: every response to a client is published
	// twice.
	DefectDuplicateResponse
	// DefectErrorWithoutNode: failure errors lack the "node <n> failed: "
	// prefix.
	DefectErrorWithoutNode
	numDefects
)

var defectNames = map[Defect]string{
	DefectWrongReqidEcho:           "wrong-reqid-echo",
	DefectNoTimeoutResponse:        "no-timeout-response",
	DefectWrongPendingText:         "wrong-pending-text",
	DefectReadyTooEarly:            "ready-too-early",
	DefectConfigToUnwelcomed:       "config-to-unwelcomed",
	DefectNoPendingGate:            "no-pending-gate",
	DefectStatelessTimeoutAnswered: "stateless-timeout-answered",
	DefectNoStandbyOnDrop:          "no-standby-on-drop",
	DefectSuccessNotAnded:          "success-not-anded",
	DefectWrongResponseTopic:       "wrong-response-topic",
	DefectGetInstancesNoneData:     "get-instances-none-data",
	DefectIgnoresAPIVersion:        "ignores-api-version",
	DefectDuplicateResponse:        "duplicate-response",
	DefectErrorWithoutNode:         "error-without-node",
}

func (d Defect) String() string {
	if n, ok := defectNames[d]; ok {
		return n
	}
	return fmt.Sprintf("Defect(%d)", d)
}

// Defects lists every defect.
func Defects() []Defect {
	out := make([]Defect, 0, len(defectNames))
	for d := Defect(1); d < numDefects; d++ {
		out = append(out, d)
	}
	return out
}

// ParseDefect accepts a defect's name, e.g. "no-pending-gate".
func ParseDefect(s string) (Defect, error) {
	for d, n := range defectNames {
		if n == s {
			return d, nil
		}
	}
	names := make([]string, 0, len(defectNames))
	for _, n := range defectNames {
		names = append(names, n)
	}
	sort.Strings(names)
	return 0, fmt.Errorf("unknown defect %q (known: %s)", s, strings.Join(names, ", "))
}

// defectSet is a bit set of defects.
type defectSet uint64

func newDefectSet(ds []Defect) (defectSet, error) {
	var s defectSet
	for _, d := range ds {
		if d == 0 || d >= numDefects {
			return 0, fmt.Errorf("controller: unknown defect %d", d)
		}
		s |= 1 << d
	}
	return s, nil
}

func (s defectSet) has(d Defect) bool { return s&(1<<d) != 0 }
