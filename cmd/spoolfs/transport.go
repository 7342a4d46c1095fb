package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/spoolfs/spoolfs/fs/fuseuring"
)

// transportMode is --transport: how the kernel's requests reach the
// daemon.
type transportMode string

const (
	transportAuto  = "auto"  // io_uring when the kernel offers it, else dev
	transportURing = "uring" // FUSE-over-io_uring, or no mount
	transportDev   = "dev"   // reads and writes of /dev/fuse
)

func (m *transportMode) Type() string   { return "transport" }
func (m *transportMode) String() string { return string(*m) }

func (m *transportMode) Set(s string) error {
	switch s {
	case transportAuto, transportURing, transportDev:
		*m = transportMode(s)
		return nil
	}
	return fmt.Errorf("%q: want auto, uring or dev", s)
}

// uringEnabled says whether the kernel offers FUSE-over-io_uring to new
// connections: the fuse module's enable_uring switch, which exists only
// in kernels built with it.
func uringEnabled() bool {
	b, err := os.ReadFile(fuseuring.EnableParameter)
	return err == nil && strings.TrimSpace(string(b)) == "Y"
}

// errNoURing is --transport uring where the kernel does not offer it.
var errNoURing = fmt.Errorf("--transport uring: the kernel does not offer FUSE over io_uring (on Linux 6.14 or later, as root: echo Y > %s)", fuseuring.EnableParameter)

// checkTransport refuses, before mounting, a transport that cannot be;
// offered is uringEnabled.
func checkTransport(m transportMode, offered func() bool) error {
	if m == transportURing && !offered() {
		return errNoURing
	}
	return nil
}

// askURing says whether the mount asks the kernel for io_uring at INIT.
// Once granted, the kernel holds every request until the rings are
// registered: a mount that asked must serve them, or fail.
func askURing(m transportMode) bool {
	return m == transportURing || m == transportAuto && uringEnabled()
}

// startTransport starts serving server over io_uring if the mount asked
// for it, between INIT and the first request. It returns the ring (nil
// over /dev/fuse) and the transport's name for status.
func startTransport(m transportMode, server *fuse.Server, maxWrite int, logger *slog.Logger) (*fuseuring.Transport, string, error) {
	// Not offered at INIT (not asked for, or a kernel that ignored the
	// question): the kernel sends every request over /dev/fuse.
	if !askURing(m) || !fuseuring.Offered(server) {
		switch m {
		case transportURing:
			return nil, "", errNoURing
		case transportAuto:
			logger.Info("serving over /dev/fuse: this kernel does not offer FUSE over io_uring; to have it, as root: echo Y > " + fuseuring.EnableParameter)
		}
		return nil, transportDev, nil
	}
	ring, err := fuseuring.Serve(server, maxWrite, logger)
	if err != nil {
		return ring, "", fmt.Errorf("%w (--transport dev serves over /dev/fuse)", err)
	}
	logger.Debug("serving over io_uring", "queues", ring.Queues(), "workers", ring.Workers())
	return ring, transportURing, nil
}
