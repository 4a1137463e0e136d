// Package controller is zcc's reference cluster controller. It speaks the
// ClusterController API v1 of Zeek 4.2 (profile cc42) and the Management
// API of Zeek 5.2 and later (profile mgmt, checked against a real Zeek
// 8.1.2), over Broker's WebSocket JSON transport.
//
// It has two layers. Core is a pure state machine in the style of
// go.etcd.io/raft: it takes one input at a time (a decoded event with its
// sender, an undecodable message, a connection that came or went, the
// start, or just the passage of time) and returns what to publish, which
// error frames to send, what to log, which listening agents to dial, the
// notify_agents_ready events it raised, the configurations to persist and
// when it next needs to be woken. It reads no clock and does no I/O, so
// every rule of the specs is testable message by message. Both profiles
// share its request table and expiry, the hello → welcome → ready →
// notify_agents_ready handshake and instance reconciliation; each has its
// own request handlers and hello fields.
//
// Start runs a Core behind a broker Hub on a WebSocket listener with one
// event loop goroutine, and adds what only a process can do: decoding
// frames, answering bad ones with error frames, dialling listening agents,
// reporting connections, and keeping the Management configurations in a
// state directory (Options.StateDir).
//
// Mode chooses between reproducing Zeek exactly (ModeZeek42, quirks
// included; under mgmt that is Zeek 8.1.2) and repairing its quirks
// (ModeFixed); Quirks is the one table of the differences.
package controller
