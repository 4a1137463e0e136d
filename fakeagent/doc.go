// Package fakeagent provides programmable fake cluster agents: WebSocket
// peers that look exactly like real Zeek agents on the wire until told to
// misbehave, and that record every frame they see.
//
// An Agent either dials the controller (the usual direction) or listens on
// 127.0.0.1 and lets the controller dial it (an Instance with a listen
// port). Its default behaviour is that of a real Zeek 4.2 agent (spec
// clustercontroller-v1.md §7): a hello on every connection, success answers
// naming itself, and no answer to a configuration with an empty reqid.
//
// With profile api.Mgmt it is a Zeek 5.2+ agent as a real Zeek controller
// accepts it over WebSocket (spec management-websocket.md §3): its hello
// carries an endpoint id and the connecting flag and repeats every second
// until the agent is welcomed; deploy is answered with one Result per node
// of the agent's instance; get_nodes with the NodeStatus of the agent and
// its nodes (RUNNING, with made-up process ids that change when a node is
// started again); node_dispatch get_id_value with each node's value as JSON
// text (Options.IDValues); restart with one Result per restarted node. The
// fail action fails one node of such per-node answers and carries the
// rule's stdout and stderr as the node's NodeOutputs.
//
// What an agent does with each incoming request is decided per message by a
// Behaviour — a plain, serialisable value whose field names are those of the
// YAML scenario format — or by a Go Hook function. The vocabulary of actions
// (reply, fail, never, twice, stale_reqid, close_before, …) is exported as
// Action constants. Probabilistic rules draw from a per-agent random source
// derived from the seed and the agent's name, so a fleet injects the same
// faults for the same seed whatever the goroutine scheduling.
//
// Every frame in and out, and every connection change, goes into the
// agent's Transcript with a monotonic timestamp, the decoded event (or the
// decode error) and the action taken. Suites query it (Received, Count,
// WaitFor) and attach its JSON-lines dump to failed specs.
//
// A Fleet runs many agents from a name pattern (10,000 in one process are
// supported: the only per-agent goroutines are the connection's own, and
// hello repeats share one ticker).
//
// Nothing here depends on one dialect: the wire format comes from the
// api.Profile, and the answers are built from the profile-neutral api
// message types.
package fakeagent
