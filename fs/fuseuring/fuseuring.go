package fuseuring

import (
	"errors"
	"fmt"
	"log/slog"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Handler answers one request given as byte streams; *fuse.Server is one.
type Handler interface {
	HandleRequest(in, out [][]byte) (int, fuse.Status)
}

// MaxWorkersPerQueue bounds the workers of one CPU's queue, and so the
// buffers: see BufferBytes.
const MaxWorkersPerQueue = 8

// startWorkersPerQueue is how many workers each queue gets at start: a
// second one lets a request be fetched while another is answered.
const startWorkersPerQueue = 2

// residentWorkersPerQueue is how many workers of a queue keep the pages
// of their payload buffer between requests. The others, started when a
// queue's workers were all busy, give back what a request larger than
// keepPayload made resident once they have answered it: so what the
// rings keep resident is at most possible CPUs x 2 x (max_write + a
// page), plus the payloads of requests in flight beyond those.
const (
	residentWorkersPerQueue = 2
	keepPayload             = 64 << 10
)

// ErrUnavailable means the kernel does not offer FUSE-over-io_uring here.
var ErrUnavailable = errors.New("FUSE over io_uring is not available")

// EnableParameter is the switch that makes the kernel offer
// FUSE-over-io_uring to new connections.
const EnableParameter = "/sys/module/fuse/parameters/enable_uring"

// Offered says whether the kernel offered FUSE-over-io_uring at the
// server's INIT. A server asks for it with fuse.CAP_OVER_IO_URING in
// MountOptions.ExtraCapabilities, and gets it when the kernel offers it.
func Offered(server *fuse.Server) bool {
	return server.KernelSettings().Flags64()&fuse.CAP_OVER_IO_URING != 0
}

// defaultMaxWrite is go-fuse's max_write when MountOptions.MaxWrite is 0.
const defaultMaxWrite = 128 << 10

// Serve starts a Transport for a mounted server that asked for
// FUSE-over-io_uring, or fails with ErrUnavailable (saying how to turn
// it on) if the kernel did not offer it. maxWrite is the server's
// MountOptions.MaxWrite. Call it between fuse.NewServer and the first
// request (WaitMount makes one): once INIT has granted io_uring, the
// kernel holds every request until each CPU's queue has an entry.
func Serve(server *fuse.Server, maxWrite int, logger *slog.Logger) (*Transport, error) {
	if maxWrite <= 0 {
		maxWrite = defaultMaxWrite
	}
	if !Offered(server) {
		return nil, fmt.Errorf("%w: the kernel did not offer it (on Linux 6.14 or later: echo Y > %s)", ErrUnavailable, EnableParameter)
	}
	fd, err := server.DupDeviceFD()
	if err != nil {
		return nil, fmt.Errorf("io_uring: %w", err)
	}
	t, err := Start(Options{Handler: server, DeviceFD: fd, MaxWrite: maxWrite, Logger: logger})
	if t == nil {
		syscall.Close(fd)
	}
	return t, err
}
