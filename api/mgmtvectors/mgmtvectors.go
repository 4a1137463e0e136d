// Package mgmtvectors loads the Management-profile golden data in
// testdata/vectors/mgmt (see testdata/vectors/README.md): the frames the
// real zeek-client 1.5.0 sends (client-requests), canned controller
// responses with what zeek-client printed for them (client-outputs), and
// transcripts recorded from a real Zeek 8.1.2 controller (zeek-8.1).
//
// It is test support shared by the packages that check themselves against
// those recordings (api, zeekini, client, fakeagent, cmd/zcc, and the
// conformance suites); it only reads files.
package mgmtvectors

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Dir returns testdata/vectors/mgmt of the repository that contains the
// working directory (found by walking up to go.mod), so tests in any
// package find the vectors.
func Dir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("mgmtvectors: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "testdata", "vectors", "mgmt"), nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("mgmtvectors: no go.mod above %s", wd)
		}
	}
}

// Pointer is a JSON Pointer (RFC 6901, from the file's root) to a random
// value, with its role: "reqid", "config_id" or "websocket_key".
type Pointer struct {
	Path string `json:"path"`
	Role string `json:"role"`
}

// ServerFrame is one frame the stand-in controller sent, ack first.
type ServerFrame struct {
	Text      string `json:"text"`
	Answering string `json:"answering"`
}

// ClientResult is what zeek-client printed and returned.
type ClientResult struct {
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	ExitCode int    `json:"exit_code"`
}

// Request is one file of client-requests/: the frames zeek-client sent for
// one command line.
type Request struct {
	// Name is the file name without .json.
	Name         string            `json:"-"`
	Command      string            `json:"command"`
	Argv         []string          `json:"argv"`
	INI          *string           `json:"ini"`
	Handshake    []string          `json:"handshake"`
	Frames       []json.RawMessage `json:"frames"`
	FramesRaw    []string          `json:"frames_raw"`
	Normalise    []Pointer         `json:"normalise"`
	UUIDRegex    string            `json:"uuid_regex"`
	ServerFrames []ServerFrame     `json:"server_frames"`
	ClientResult ClientResult      `json:"client_result"`
	Notes        string            `json:"notes"`

	root any // the whole file, for the normalise pointers
}

// Output is one file of client-outputs/: canned responses and what
// zeek-client 1.5.0 printed for them.
type Output struct {
	Name          string   `json:"-"`
	Command       string   `json:"command"`
	Argv          []string `json:"argv"`
	INI           *string  `json:"ini"`
	Connected     bool     `json:"connected"`
	AckRaw        *string  `json:"ack_raw"`
	RequestEvents []string `json:"request_events"`
	// ResponseFrames holds null for a frame that is not valid JSON and
	// {"websocket_close": N} for a close frame.
	ResponseFrames    []json.RawMessage `json:"response_frames"`
	ResponseFramesRaw []*string         `json:"response_frames_raw"`
	ResponseTo        []string          `json:"response_to"`
	Stdout            string            `json:"stdout"`
	Stderr            string            `json:"stderr"`
	ExitCode          int               `json:"exit_code"`
	StderrNormalised  *string           `json:"stderr_normalised"`
	Synthetic         bool              `json:"synthetic_response"`
	Basis             *string           `json:"basis"`
	Notes             string            `json:"notes"`
}

// CloseCode returns the close code of response frame i when it is a
// close frame instead of a data frame.
func (o Output) CloseCode(i int) (int, bool) {
	var c struct {
		Code *int `json:"websocket_close"`
	}
	if i >= len(o.ResponseFrames) || json.Unmarshal(o.ResponseFrames[i], &c) != nil || c.Code == nil {
		return 0, false
	}
	return *c.Code, true
}

// ReqidPlaceholder stands for the reqid of the request a response answers
// in client-outputs frames and output.
const ReqidPlaceholder = "{{reqid}}"

// TranscriptFrame is one entry of a Zeek 8.1 transcript.
type TranscriptFrame struct {
	TMs int    `json:"t_ms"`
	Dir string `json:"dir"`
	// Text is the frame's text (ping payload for pings); empty for tcp-eof.
	Text string `json:"text"`
	// Kind is "" for text frames, else ping, pong, close, tcp-eof or event.
	Kind      string `json:"kind"`
	CloseCode int    `json:"close_code"`
}

// Transcript directions.
const (
	DirClientToController    = "client->controller"
	DirControllerToClient    = "controller->client"
	DirFakeAgentToController = "fake-agent->controller"
	DirControllerToFakeAgent = "controller->fake-agent"
	DirObserver              = "observer"
)

// Transcript is one file of zeek-8.1/.
type Transcript struct {
	Case         string            `json:"case"`
	ZeekVersion  string            `json:"zeek_version"`
	Settings     json.RawMessage   `json:"settings"`
	ClientArgv   []string          `json:"client_argv"`
	INI          *string           `json:"ini"`
	Path         string            `json:"path"`
	Frames       []TranscriptFrame `json:"frames"`
	ClientStdout *string           `json:"client_stdout"`
	ClientStderr *string           `json:"client_stderr"`
	ClientExit   *int              `json:"client_exit"`
	Notes        string            `json:"notes"`
}

func loadDir[T any](dir, sub string, set func(*T, string, any)) ([]T, error) {
	paths, err := filepath.Glob(filepath.Join(dir, sub, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("mgmtvectors: %w", err)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("mgmtvectors: no vectors in %s", filepath.Join(dir, sub))
	}
	sort.Strings(paths)
	out := make([]T, 0, len(paths))
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("mgmtvectors: %w", err)
		}
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("mgmtvectors: %s: %w", p, err)
		}
		var root any
		if err := json.Unmarshal(raw, &root); err != nil {
			return nil, fmt.Errorf("mgmtvectors: %s: %w", p, err)
		}
		set(&v, strings.TrimSuffix(filepath.Base(p), ".json"), root)
		out = append(out, v)
	}
	return out, nil
}

// LoadRequests reads every file of dir/client-requests, sorted by name.
func LoadRequests(dir string) ([]Request, error) {
	return loadDir(dir, "client-requests", func(r *Request, name string, root any) { r.Name, r.root = name, root })
}

// LoadOutputs reads every file of dir/client-outputs, sorted by name.
func LoadOutputs(dir string) ([]Output, error) {
	return loadDir(dir, "client-outputs", func(o *Output, name string, _ any) { o.Name = name })
}

// LoadTranscripts reads every file of dir/zeek-8.1, sorted by name.
func LoadTranscripts(dir string) ([]Transcript, error) {
	return loadDir(dir, "zeek-8.1", func(*Transcript, string, any) {})
}

// Values returns the recorded values of the random ids with the given
// role, in the order of the normalise list.
func (r Request) Values(role string) ([]string, error) {
	var out []string
	for _, p := range r.Normalise {
		if p.Role != role {
			continue
		}
		v, err := resolve(r.root, p.Path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.Name, err)
		}
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%s: %s is not a string", r.Name, p.Path)
		}
		out = append(out, s)
	}
	return out, nil
}

// Placeholder names the n-th value of role (0-based) in normalised frames:
// "{{reqid0}}", "{{config_id0}}", "{{reqid1}}".
func Placeholder(role string, n int) string { return "{{" + role + strconv.Itoa(n) + "}}" }

// NormalisedFrames returns the client's frames (parsed form, re-encoded
// compactly) with every random id of role reqid and config_id replaced by
// its Placeholder, so that expectations need not know the recorded ids.
func (r Request) NormalisedFrames() ([][]byte, error) {
	repl := map[string]string{}
	for _, role := range []string{"reqid", "config_id"} {
		vals, err := r.Values(role)
		if err != nil {
			return nil, err
		}
		for i, v := range vals {
			repl[v] = Placeholder(role, i)
		}
	}
	out := make([][]byte, len(r.Frames))
	for i, f := range r.Frames {
		var v any
		if err := json.Unmarshal(f, &v); err != nil {
			return nil, fmt.Errorf("%s frame %d: %w", r.Name, i, err)
		}
		b, err := json.Marshal(replaceStrings(v, repl))
		if err != nil {
			return nil, fmt.Errorf("%s frame %d: %w", r.Name, i, err)
		}
		out[i] = b
	}
	return out, nil
}

// replaceStrings replaces every string equal to a key of repl.
func replaceStrings(v any, repl map[string]string) any {
	switch x := v.(type) {
	case string:
		if r, ok := repl[x]; ok {
			return r
		}
		return x
	case []any:
		for i := range x {
			x[i] = replaceStrings(x[i], repl)
		}
		return x
	case map[string]any:
		for k := range x {
			x[k] = replaceStrings(x[k], repl)
		}
		return x
	}
	return v
}

// resolve evaluates an RFC 6901 JSON Pointer against a decoded document.
func resolve(doc any, pointer string) (any, error) {
	if pointer == "" {
		return doc, nil
	}
	if !strings.HasPrefix(pointer, "/") {
		return nil, fmt.Errorf("JSON pointer %q does not start with /", pointer)
	}
	cur := doc
	for _, tok := range strings.Split(pointer[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch x := cur.(type) {
		case map[string]any:
			v, ok := x[tok]
			if !ok {
				return nil, fmt.Errorf("JSON pointer %q: no key %q", pointer, tok)
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) {
				return nil, fmt.Errorf("JSON pointer %q: bad index %q", pointer, tok)
			}
			cur = x[i]
		default:
			return nil, errors.New("JSON pointer " + strconv.Quote(pointer) + " runs past a scalar")
		}
	}
	return cur, nil
}
