package suites

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// problems lists what cannot work in the container target's settings, in
// the words of Config.Validate.
func (c ContainerConfig) problems() []string {
	var out []string
	if c.Port != "" {
		if _, err := ContainerPortNumber(c.Port); err != nil {
			out = append(out, "target.container.port: "+err.Error())
		}
	}
	if c.ReadyLog != "" {
		if _, err := regexp.Compile(c.ReadyLog); err != nil {
			out = append(out, fmt.Sprintf("target.container.ready_log %q: %v", c.ReadyLog, err))
		}
	}
	if c.Image != "" && c.Build != "" {
		out = append(out, "target.container: set image or build, not both")
	}
	return out
}

// ContainerPortNumber parses a container port as Docker and Zeek write it,
// "2150/tcp" or a bare "2150". The controller listens on TCP, so another
// protocol is an error.
func ContainerPortNumber(s string) (uint16, error) {
	num, proto, hasProto := strings.Cut(strings.TrimSpace(s), "/")
	if hasProto && proto != "tcp" {
		return 0, fmt.Errorf("%q: the controller listens on TCP; want N/tcp or N", s)
	}
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q: want a port from 1 to 65535, optionally followed by /tcp (e.g. 2150/tcp)", s)
	}
	return uint16(n), nil
}
