//go:build !linux

package fuseuring

import "log/slog"

// Options says what a Transport serves.
type Options struct {
	Handler  Handler
	DeviceFD int
	MaxWrite int
	Logger   *slog.Logger
}

// Transport is the set of workers serving one FUSE connection: only
// Linux has FUSE-over-io_uring.
type Transport struct{}

// Start fails: only Linux has FUSE-over-io_uring.
func Start(Options) (*Transport, error) { return nil, ErrUnavailable }

func (*Transport) Queues() int        { return 0 }
func (*Transport) Workers() int       { return 0 }
func (*Transport) BufferBytes() int64 { return 0 }
func (*Transport) Answered() uint64   { return 0 }
func (*Transport) Wait()              {}
