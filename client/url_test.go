package client

import "testing"

func TestControllerURL(t *testing.T) {
	good := map[string]string{
		"":                          "ws://127.0.0.1:2150/v1/messages/json",
		"10.0.0.1":                  "ws://10.0.0.1:2150/v1/messages/json",
		":2160":                     "ws://127.0.0.1:2160/v1/messages/json",
		"ctl.example:2149":          "ws://ctl.example:2149/v1/messages/json",
		"[::1]:2150":                "ws://[::1]:2150/v1/messages/json",
		"[::1]":                     "ws://[::1]:2150/v1/messages/json",
		"ws://127.0.0.1:9/":         "ws://127.0.0.1:9/v1/messages/json",
		"ws://127.0.0.1:9":          "ws://127.0.0.1:9/v1/messages/json",
		"wss://h:1/custom/path":     "wss://h:1/custom/path",
		" 127.0.0.1:2150 ":          "ws://127.0.0.1:2150/v1/messages/json",
		"ws://h:1/v1/messages/json": "ws://h:1/v1/messages/json",
	}
	for in, want := range good {
		got, err := ControllerURL(in, 2150)
		if err != nil || got != want {
			t.Errorf("ControllerURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := map[string]string{
		"h:0":         `controller address "h:0": port "0" is not a number between 1 and 65535`,
		"h:x":         `controller address "h:x": port "x" is not a number between 1 and 65535`,
		"::1:2150":    `controller address "::1:2150": write an IPv6 address in brackets, [ADDR]:PORT`,
		"[::1":        `controller address "[::1": missing ']'`,
		"[::1]2150":   `controller address "[::1]2150": want [IPv6]:PORT`,
		"[nope]:1":    `controller address "[nope]:1": "nope" is not an IPv6 address`,
		"http://h:1/": `controller URL "http://h:1/": scheme must be ws or wss`,
		"ws:///path":  `controller URL "ws:///path" has no host`,
	}
	for in, want := range bad {
		_, err := ControllerURL(in, 2150)
		if err == nil || err.Error() != want {
			t.Errorf("ControllerURL(%q) error %v; want %s", in, err, want)
		}
	}
}
