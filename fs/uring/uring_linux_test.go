package uring

import (
	"errors"
	"syscall"
	"testing"
)

func TestNopRoundTrip(t *testing.T) {
	r, err := New(4)
	if errors.Is(err, ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// More round trips than the rings have slots: heads and tails wrap.
	for i := range uint64(20) {
		if !r.Push(func(s *SQE) { s.Opcode = OpNop; s.UserData = i + 1 }) {
			t.Fatalf("round %d: submission queue full", i)
		}
		if err := r.Enter(true); err != nil {
			t.Fatal(err)
		}
		var got []CQE
		r.Reap(func(c CQE) { got = append(got, c) })
		if len(got) != 1 || got[0].UserData != i+1 || got[0].Res != 0 {
			t.Fatalf("round %d: completions %+v, want one with user data %d and result 0", i, got, i+1)
		}
	}
}

func TestPushStopsWhenFull(t *testing.T) {
	r, err := New(2)
	if errors.Is(err, ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	nop := func(s *SQE) { s.Opcode = OpNop }
	for i := range 2 {
		if !r.Push(nop) {
			t.Fatalf("push %d into a ring of two failed", i+1)
		}
	}
	if r.Push(nop) {
		t.Fatal("a third push into a ring of two succeeded")
	}
	if err := r.Enter(true); err != nil {
		t.Fatal(err)
	}
	n := 0
	for n < 2 {
		n += r.Reap(func(CQE) {})
		if n < 2 {
			if err := r.Enter(true); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !r.Push(nop) {
		t.Fatal("push after the ring drained failed")
	}
}

func TestCloseReleasesDescriptor(t *testing.T) {
	r, err := New(2)
	if errors.Is(err, ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	fd := r.fd
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0); errno != syscall.EBADF {
		t.Fatalf("descriptor %d still open after Close (fcntl: %v)", fd, errno)
	}
}
