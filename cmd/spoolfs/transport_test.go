package main

import (
	"strings"
	"testing"
)

func TestTransportFlag(t *testing.T) {
	for _, ok := range []string{"auto", "uring", "dev"} {
		var m transportMode
		if err := m.Set(ok); err != nil || string(m) != ok {
			t.Errorf("Set(%q): %v, %q", ok, err, m)
		}
	}
	var m transportMode
	if err := m.Set("io_uring"); err == nil || !strings.Contains(err.Error(), "auto, uring or dev") {
		t.Errorf("Set(io_uring): %v, want the choices", err)
	}
}

// uring where the kernel does not offer it is refused before mounting,
// saying how to turn it on; auto and dev never are.
func TestCheckTransport(t *testing.T) {
	no := func() bool { return false }
	yes := func() bool { return true }
	err := checkTransport(transportURing, no)
	if err == nil || !strings.Contains(err.Error(), "echo Y > /sys/module/fuse/parameters/enable_uring") || strings.Contains(err.Error(), "\n") {
		t.Errorf("uring, not offered: %v; want one line saying how to enable it", err)
	}
	for _, c := range []struct {
		m       transportMode
		offered func() bool
	}{{transportURing, yes}, {transportAuto, no}, {transportAuto, yes}, {transportDev, no}} {
		if err := checkTransport(c.m, c.offered); err != nil {
			t.Errorf("%s (offered %v): %v", c.m, c.offered(), err)
		}
	}
}
