// Package controller is zcc's reference cluster controller for the
// ClusterController API v1 of Zeek 4.2 (profile cc42).
//
// It has two layers. Core is a pure state machine in the style of
// go.etcd.io/raft: it takes one input at a time (a decoded event with its
// sender, an undecodable message, a lost peer, or just the passage of time)
// and returns what to publish, which error frames to send, what to log,
// which listening agents to dial, the notify_agents_ready events it raised
// and when it next needs to be woken. It reads no clock and does no I/O, so
// every rule of spec §5 and §6 is testable message by message.
//
// Start runs a Core behind a broker Hub on a WebSocket listener with one
// event loop goroutine, and adds what only a process can do: decoding
// frames, answering bad ones with error frames, dialling listening agents
// and reporting lost peers.
//
// Mode chooses between reproducing Zeek 4.2 exactly (ModeZeek42, quirks
// included) and repairing its quirks (ModeFixed); Quirks is the one table
// of the differences.
package controller
