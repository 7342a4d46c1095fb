// Package uring is the smallest io_uring that the FUSE transport needs:
// one submission queue of 128-byte entries (IORING_SETUP_SQE128, whose
// 80-byte command area holds a FUSE command), one completion queue, raw
// system calls and no cgo.
//
// # Invariants
//
//   - A Ring is used by one goroutine at a time: Push, Enter and Reap
//     are not safe for concurrent use. The FUSE transport gives each ring
//     to one goroutine locked to its OS thread, so that the kernel's task
//     work for the ring's commands runs on that thread.
//   - The rings and the entries are shared with the kernel through mmap:
//     the kernel writes the SQ head and the CQ tail, we write the SQ tail
//     and the CQ head. Those four are read and written with atomic loads
//     and stores (the kernel's smp_load_acquire/smp_store_release pairs),
//     and an entry is filled before the tail that publishes it is stored,
//     and a completion read before the head that frees it is stored.
//   - Memory whose address is given to the kernel (an SQE's addr, the
//     iovecs it points to and the buffers those point to) must stay where
//     it is and stay reachable until the command completes: callers
//     allocate it with mmap or keep it referenced (Go's heap does not move
//     objects).
//   - Little-endian layout is assumed where a field of the SQE is a union
//     (cmd_op is the low half of off): every platform that has io_uring
//     and FUSE-over-io_uring under Go is.
package uring
