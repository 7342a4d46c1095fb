// Package fuseuring serves FUSE requests over io_uring (FUSE-over-io_uring,
// kernel protocol 7.42, Linux 6.14 and later with the fuse module's
// enable_uring parameter set): the kernel puts a request into a buffer
// the daemon registered, on the queue of the CPU the request was issued
// on, and takes the reply from the same buffer when the daemon commits it
// with the command that also fetches the next request. No read(2) or
// write(2) of /dev/fuse, and the answer is computed on the caller's CPU.
//
// INIT, FORGET, INTERRUPT and every notification still go over /dev/fuse,
// so go-fuse's own reader keeps running beside this transport; requests
// that come over a ring are answered by fuse.Server.HandleRequest, on the
// Server's state, so that an INTERRUPT read from /dev/fuse finds them.
//
// # Workers
//
// A worker is a goroutine locked to its OS thread and pinned to one CPU,
// with an io_uring of its own and one ring entry of the kernel's queue for
// that CPU (a header page and a payload buffer of max_write, both
// mmapped). It waits for a request, answers it on its own thread, and
// commits the answer and fetches the next request in one io_uring_enter.
// Every submission on a ring is made by its worker's thread, so the
// kernel's task work for the entry runs there, and the thread lives until
// the entry is gone (a thread's exit cancels what it submitted).
//
// Every possible CPU's queue gets its first workers before the kernel
// switches requests over (it does so once every queue has an entry), and
// a queue gets one more worker whenever a request arrives while all of its
// workers are busy, up to MaxWorkersPerQueue: a handler that waits (for a
// lock that a request queued behind it must release, say) never leaves
// its CPU's requests without a worker, as go-fuse's /dev/fuse loop makes
// sure a reader is left before it handles a request.
//
// # Invariants
//
//   - queue.mu (a queue's worker counts) is a leaf: nothing else is
//     taken while it is held.
//   - An entry has at most one command in flight; each command ends in
//     exactly one completion. A request is answered exactly once: by the
//     COMMIT_AND_FETCH that carries its commit ID, also when go-fuse sends
//     no reply (the kernel needs the commit to take the entry back).
//   - The memory the kernel writes to (header, payload, the iovecs naming
//     them) is mmapped per entry, never moves and is unmapped only after
//     the entry's last command has completed.
//   - When the connection ends (unmount, abort, the daemon's /dev/fuse
//     closed), the kernel fails every command with ENOTCONN, ECONNABORTED,
//     ENODEV or ECANCELED; a worker that sees one of those frees its ring
//     and buffers and ends, and Wait returns once all have; the duplicate
//     of the device descriptor is closed last.
//   - Memory: each worker maps one page of header and a payload buffer of
//     max_write rounded to pages (1 MiB + 4 KiB with spoolfs's max_write);
//     pages never written are not resident. The first two workers of a
//     queue keep their pages; the others give back what a large request
//     made resident once they have answered it. So the rings keep at most
//     possible CPUs x 2 x (max_write + 4 KiB) resident (4 MiB on 2 CPUs),
//     plus the payloads of large requests in flight on further workers.
//     BufferBytes says how much is mapped.
package fuseuring
