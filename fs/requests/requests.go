// Package requests lets a caller see every FUSE request a go-fuse
// RawFileSystem answers: its kind, the thread that made it, how long the
// filesystem took and the status it answered. It owns the list of request
// kinds (Op) and the wrapper that reports them (Observe), nothing else: it
// knows nothing of nodes, sessions or what is done with the reports.
//
// The wrapper's methods, one per request method of fuse.RawFileSystem, and
// the list of kinds are generated from that interface (forward.go, by
// TestForwardersGenerated with -update; see go:generate below), so that no
// reader has to check forty forwarders by eye, and a go-fuse that adds a
// request fails the test until forward.go is made again.
package requests

//go:generate go test -run ^TestForwardersGenerated$ -update .

import (
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Op is a kind of FUSE request, named as in the kernel's protocol.
type Op uint8

func (o Op) String() string {
	if o < numOps {
		return opNames[o]
	}
	return "UNKNOWN"
}

// Ops lists every kind of request Observe reports, in a fixed order: Op
// values run from 0 to len(Ops())-1, so they can index a slice.
func Ops() []Op {
	ops := make([]Op, numOps)
	for i := range ops {
		ops[i] = Op(i)
	}
	return ops
}

// Func is told of each request once it is answered: its kind, the thread
// that made it (its id in the mount's PID namespace; 0 for the kernel's own
// requests, such as FORGET), how long the filesystem took over it, and its
// status (fuse.OK or an errno). It is called from many goroutines at once
// and is on every request's path.
type Func func(op Op, caller uint32, took time.Duration, status fuse.Status)

// Observe wraps a go-fuse RawFileSystem, such as the one gofs.NewNodeFS
// returns, so that done is called after each request; requests and
// answers pass through unchanged. Mount it with fuse.NewServer. The
// methods that are not requests (String, SetDebug, Init, OnUnmount) pass
// through unobserved. RENAME and RENAME2 are both reported as RENAME;
// each node of a BATCH_FORGET as one FORGET. A Writev answered ENOSYS is
// not reported: go-fuse then calls Write, which is.
func Observe(raw fuse.RawFileSystem, done Func) fuse.RawFileSystem {
	return &observer{RawFileSystem: raw, done: done}
}

// observer overrides every request method of fuse.RawFileSystem (in
// forward.go); the embedded interface supplies the rest.
type observer struct {
	fuse.RawFileSystem
	done Func
}
