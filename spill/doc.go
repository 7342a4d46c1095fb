// Package spill stores the bytes of temporary files: in RAM while a file is
// small, on an unnamed disk file once it grows past a threshold or when the
// RAM budget is needed by busier files.
//
// It knows nothing of FUSE, paths or quotas. A [Pool] owns the RAM budget, the
// least-recently-used order in which RAM files are pushed to disk, and a
// private 0700 directory under the spill directory. A [File] is one file's
// bytes, with [File.ReadAt], [File.WriteAt], [File.Truncate] and friends.
//
// # Invariants
//
//   - RAM held for file data never exceeds the pool's budget: RAM is reserved
//     from the pool before a page is allocated, and a file that cannot get RAM
//     (after evicting colder files) moves to disk instead.
//   - A file whose size would pass the threshold moves to disk before the
//     operation that crosses the line is applied, so a failed move fails that
//     operation and leaves the file as it was.
//   - Allocation is counted in 4 KiB pages in both tiers, like tmpfs: holes
//     are free. The [Accounter] given to a file is charged before a page is
//     allocated and credited when it is freed, so a refused write or
//     fallocate changes nothing. Moving a file to disk does not change its
//     allocation.
//   - Spilled data lives in files that never have a name (O_TMPFILE on Linux,
//     create-then-unlink elsewhere): if the process dies the kernel frees
//     them, so there is nothing to sweep.
//
// # Concurrency
//
// All methods of [File] and [Pool] are safe for concurrent use. ReadAt calls
// on one file run in parallel; writes, truncates and spills of one file are
// serialised. As with [io.ReaderAt] and [io.WriterAt], p is not retained.
//
// # Lock order
//
// File.mu is taken before Pool.mu, never the reverse. The pool picks eviction
// victims with TryLock while holding Pool.mu, which never blocks, and spills
// them after releasing Pool.mu.
package spill
