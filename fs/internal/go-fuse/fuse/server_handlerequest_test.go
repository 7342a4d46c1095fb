// Copyright 2026 the Go-FUSE Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package fuse

import (
	"encoding/binary"
	"testing"
	"time"
)

// waitingFS answers GETATTR only once the request is interrupted.
type waitingFS struct {
	RawFileSystem
	started chan struct{}
}

func (fs *waitingFS) GetAttr(cancel <-chan struct{}, in *GetAttrIn, out *AttrOut) Status {
	close(fs.started)
	<-cancel
	return EINTR
}

// A request answered by Server.HandleRequest is in the Server's table of
// requests in flight, so an INTERRUPT that the Server reads from
// /dev/fuse finds it.
func TestServerHandleRequestIsInterruptible(t *testing.T) {
	fs := &waitingFS{RawFileSystem: NewDefaultRawFileSystem(), started: make(chan struct{})}
	opts := MountOptions{}
	opts.setDefaults(fs)
	ms := &Server{
		protocolServer: protocolServer{fileSystem: fs, retrieveTab: map[uint64]*retrieveCacheRequest{}, opts: &opts},
		opts:           &opts,
	}
	ms.kernelSettings = InitIn{Major: _FUSE_KERNEL_VERSION, Minor: 31}

	const unique = 7
	in := make([]byte, 40+16) // InHeader, GetAttrIn
	le := binary.LittleEndian
	le.PutUint32(in[0:], uint32(len(in)))
	le.PutUint32(in[4:], _OP_GETATTR)
	le.PutUint64(in[8:], unique)
	le.PutUint64(in[16:], FUSE_ROOT_ID)
	out := make([]byte, 4096)

	done := make(chan Status, 1)
	go func() {
		_, st := ms.HandleRequest([][]byte{in}, [][]byte{out})
		done <- st
	}()
	<-fs.started
	deadline := time.Now().Add(10 * time.Second)
	for ms.interruptRequest(unique) != OK {
		if time.Now().After(deadline) {
			t.Fatal("the request is not in the Server's table of requests in flight")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case st := <-done:
		if st != OK {
			t.Fatalf("HandleRequest: %v", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("HandleRequest did not return after the interrupt")
	}
	if got := int32(le.Uint32(out[4:])); got != -int32(EINTR) {
		t.Errorf("reply status %d, want %d", got, -int32(EINTR))
	}
	if got := le.Uint64(out[8:]); got != unique {
		t.Errorf("reply unique %d, want %d", got, unique)
	}
}
