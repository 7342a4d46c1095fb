// Copyright 2016 the Go-FUSE Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package fuse

import (
	"syscall"
	"unsafe"
)

const useSingleReader = false

// pollDevice: /dev/fuse supports poll(2), and it reports the end of the
// connection (EPOLLERR, then ENODEV from read), so readers wait for
// requests in the runtime's poller rather than in a blocking read(2).
const pollDevice = true

func (r *fuseFD) write(req *request) Status {
	if req.outPayloadSize() == 0 {
		err := handleEINTR(func() error {
			return r.writeReplyRaw(req.outHeaderBuf, req.outDataBuf)
		})
		return ToStatus(err)
	}

	if req.readResult != nil {
		defer func() {
			req.readResult.Done()
			req.readResult = nil
		}()
		if ws, ok := req.readResult.(withSlice); ok {
			return r.writeWithSlice(req, ws)
		}

		if r.server.canSplice && !r.server.opts.DisableSplice {
			err := r.trySplice(req, req.readResult)
			if err == nil {
				return OK
			}
			if err != errRecoverSplice {
				r.server.opts.Logger.Println("trySplice:", err)
			}
		}

		req.outPayload, req.status = req.readResult.Bytes(req.outPayload)
		req.serializeHeader(len(req.outPayload))
	}

	_, err := r.writevFD([][]byte{req.outHeaderBuf, req.outDataBuf, req.outPayload})
	return ToStatus(err)
}

// writeReplyRaw writes a reply that has no payload (a header and a
// fixed-size struct, at most a few hundred bytes) with a raw writev(2),
// which the runtime does not see as a system call: the thread keeps its
// P, and the runtime does not wake sysmon, which sleeps while every P is
// idle and which a syscall.Syscall wakes up again. Such a write does not
// block: the kernel copies the reply, wakes the caller and returns. Replies
// with a payload (reads, directory listings) and notifications, which can
// copy megabytes or wait for page locks, stay ordinary system calls.
func (r *fuseFD) writeReplyRaw(header, data []byte) error {
	var iov [2]syscall.Iovec
	n := 0
	for _, p := range [2][]byte{header, data} {
		if len(p) > 0 {
			iov[n].Base = &p[0]
			iov[n].SetLen(len(p))
			n++
		}
	}
	var errno syscall.Errno
	if err := r.withFD(func(fd int) {
		_, _, errno = syscall.RawSyscall(syscall.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(n))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// readDevice reads a request. With pollDevice the descriptor is
// non-blocking, so read(2) returns at once, with a request or EAGAIN; a
// raw system call then costs the runtime nothing (see writeReplyRaw).
func readDevice(fd int, buf []byte) (int, error) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
