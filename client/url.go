package client

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/zcc-harness/zcc/broker"
)

// DefaultHost is where zeek-client looks for the controller.
const DefaultHost = "127.0.0.1"

// ControllerURL turns a controller address as users write it into the
// WebSocket URL to dial. A ws:// or wss:// URL is taken as is (a missing
// path becomes /v1/messages/json). Otherwise it is HOST:PORT as
// zeek-client takes it, either part optional ("", "10.0.0.1", ":2150",
// "[::1]:2150", "[::1]"), defaulting to 127.0.0.1 and defaultPort.
func ControllerURL(addr string, defaultPort uint16) (string, error) {
	addr = strings.TrimSpace(addr)
	if strings.Contains(addr, "://") {
		u, err := url.Parse(addr)
		if err != nil {
			return "", fmt.Errorf("controller URL %q: %w", addr, err)
		}
		if u.Scheme != "ws" && u.Scheme != "wss" {
			return "", fmt.Errorf("controller URL %q: scheme must be ws or wss", addr)
		}
		if u.Host == "" {
			return "", fmt.Errorf("controller URL %q has no host", addr)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = broker.DefaultPath
		}
		return u.String(), nil
	}
	host, portText := addr, ""
	switch {
	case strings.HasPrefix(addr, "["):
		end := strings.IndexByte(addr, ']')
		if end < 0 {
			return "", fmt.Errorf("controller address %q: missing ']'", addr)
		}
		host, portText = addr[1:end], addr[end+1:]
		if portText != "" {
			if !strings.HasPrefix(portText, ":") {
				return "", fmt.Errorf("controller address %q: want [IPv6]:PORT", addr)
			}
			portText = portText[1:]
		}
		if _, err := netip.ParseAddr(host); err != nil {
			return "", fmt.Errorf("controller address %q: %q is not an IPv6 address", addr, host)
		}
	case strings.Count(addr, ":") == 1:
		i := strings.IndexByte(addr, ':')
		host, portText = addr[:i], addr[i+1:]
	case strings.Count(addr, ":") > 1:
		return "", fmt.Errorf("controller address %q: write an IPv6 address in brackets, [ADDR]:PORT", addr)
	}
	if host == "" {
		host = DefaultHost
	}
	port := defaultPort
	if portText != "" {
		n, err := strconv.ParseUint(portText, 10, 16)
		if err != nil || n == 0 {
			return "", fmt.Errorf("controller address %q: port %q is not a number between 1 and 65535", addr, portText)
		}
		port = uint16(n)
	}
	return "ws://" + net.JoinHostPort(host, strconv.Itoa(int(port))) + broker.DefaultPath, nil
}
