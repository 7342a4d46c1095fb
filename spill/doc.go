// Package spill stores the bytes of temporary files: in RAM while a file is
// small, on an unnamed disk file once it grows past a threshold or when the
// RAM budget is needed by busier files.
//
// It knows nothing of FUSE, paths or quotas. A [Pool] owns the RAM budget, the
// least-recently-used order in which RAM files are pushed to disk, and a
// private 0700 directory under the spill directory. A [File] is one file's
// bytes, with [File.ReadAt], [File.WriteAt], [File.Truncate] and friends.
//
// # Tiers and accounting
//
// A file's bytes are in one of three tiers, each an implementation of one
// small internal interface (tier, in tier.go) that stores, reads and frees
// pages and knows nothing of budgets or accounters: RAM pages (ram.go), a
// plain disk file (disk.go) and a sealed disk file (sealed.go). Which disk
// tier a file spills into is the pool's choice, made once when it opens
// the spill file; the File never asks.
//
// File alone keeps the books, around every call to its tier: before a call
// that may allocate it reserves the pages the tier says are missing, from
// the Accounter and, in RAM, from the pool's budget (spilling first if the
// file would pass the threshold or no RAM can be found); after the call,
// failed or not, it settles from what the tier then holds, giving back what
// was reserved and not used and what was freed, and tells the pool, which
// keeps the figures behind [Pool.Stats] and the LRU order.
//
// An argument no call can accept (a negative offset, length, size or
// amount, a range past the largest offset) is an error wrapping
// [ErrInvalid]. A file is at most [MaxSize] bytes, in every tier, so that
// no offset of a page or a slot overflows: a write, truncate or allocate
// past it fails with [ErrTooLarge] (a write across it is cut short). No
// method panics on what a caller passes.
//
// # Invariants
//
//   - RAM held for file data never exceeds the pool's budget: RAM is reserved
//     from the pool before a page is allocated, and a file that cannot get RAM
//     (after evicting colder files) moves to disk instead. What the pool's
//     users keep in RAM outside files ([Pool.HoldRAM]) counts toward the same
//     budget, and evicts files the same way. A budget lowered on a live pool
//     ([Pool.SetRAMBudget]) holds once that call returns: until then, files
//     are moving to disk to get within it.
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
//   - The private directory is made and opened once; every spill file is
//     made relative to its descriptor, and the directory is removed relative
//     to the spill directory's, never following a symlink. No path is
//     resolved after NewPool, so moving the private directory or putting a
//     symlink in its place sends no data elsewhere. The spill directory
//     itself must be one in which no other user can do that (CheckDir):
//     owned by root or by us, and sticky if others may write it. If the
//     private directory is removed (a tmp cleaner ages empty directories
//     out), the next spill makes a new one relative to the spill
//     directory's descriptor, which the pool holds for its life.
//
// # Pinned backing files
//
// [File.PinBacking] hands out the backing file of a spilled file whose
// bytes all live, in the clear and at their own offsets, in one backing
// file of its own (a tier that implements backedTier: the plain disk tier;
// never the sealed tier, nor one that shares a backing file between
// files), for a reader outside the pool such as the kernel's FUSE
// passthrough. While a file has a pin:
//
//   - its bytes stay in that backing file: nothing moves the file to
//     another tier or backing file (whatever moves files checks
//     File.pins under File.mu and leaves a pinned file alone);
//   - every write, truncate, punch and allocate still goes to that same
//     file, so a reader of it sees each change as soon as the call
//     returns (one page cache);
//   - the backing file's length is the file's size, kept so by every
//     truncate, so that a reader sees neither past the end nor short of
//     it. A truncate whose length the backing file system refuses (past
//     its largest file) fails with that error and changes nothing;
//   - the file is dense: only a file with no hole below its size is
//     pinned, and while pinned a write past the end, a truncate or an
//     allocate that grows the file allocates the pages in between,
//     charged like a write's (and refused like one: nothing changes), and
//     a punch below the size writes zeros and frees nothing. So whoever
//     writes the backing file directly (through a shared mapping of it)
//     finds every page below the size allocated and paid for, and cannot
//     allocate a page the accounts do not know of.
//
// A pin costs no descriptor: the backing file is the File's own, and
// stays open until the File is closed, pinned or not.
//
// # Encrypted spill files
//
// With [Config.Encrypt], NewPool draws a random AES-256 key from
// crypto/rand, one per pool, and keeps it only in memory; every page that
// goes to disk is sealed with AES-GCM on the way:
//
//   - Layout: page pg of a spill file is a slot of 4124 bytes at offset
//     pg*4124: a 12-byte nonce, the 4096 bytes of ciphertext, the 16-byte
//     tag. Each page is sealed on its own, so a write, read, truncate or
//     punch touches only the slots of its pages, and a part-page write,
//     truncate or punch opens the slot, changes the plaintext and seals it
//     again. A page that is not allocated has no slot (a hole in the spill
//     file); a page that fallocate added and nothing has written since has
//     its slot reserved on disk but not sealed. Both read as zeros without
//     touching the disk. Truncate cuts the spill file after the last slot
//     kept; a punch frees the slots of the pages it covers whole.
//   - Nonces: a 64-bit counter per pool (the key's lifetime) fills the low 8
//     bytes of the nonce, the high 4 are zero, and every seal takes the next
//     value: no nonce is ever used twice under a key. 2^64 seals of 4 KiB
//     are beyond reach.
//   - Additional data: the spill file's id (a counter of the pool) and the
//     page index, so that a slot copied to another page or another file
//     does not open. A slot that does not open, or that is missing, gives
//     an error wrapping [ErrCorrupt] and none of the page's bytes.
//
// It protects what reaches the disk, while the daemon runs and after: the
// blocks freed by punches, truncates and closed files, and the spill files
// of a daemon that was killed or crashed, whose key died with it. It does
// not protect the key itself nor the RAM tier, which live in the daemon's
// memory: whoever can read that memory (ptrace, /proc/PID/mem, a core dump,
// unencrypted swap) can read the data. Nor does it notice a slot put back
// to an older version of itself by someone who can write the spill file
// while the daemon runs: encryption is for confidentiality, the tag for
// refusing bytes that are not ours. A write that the disk fails half-way
// (EIO, ENOSPC on a copy-on-write file system) may leave a page whose slot
// is half new: it then reads as ErrCorrupt, not as a mix.
//
// The cost: AES-GCM at the speed of one core per call; 0.7% more disk (4124
// bytes a page); and as slots do not line up with file system blocks, a
// punch of a single page mostly zeroes blocks instead of freeing them (a
// punch of a run frees all but the blocks at its two ends). Allocation is
// still counted in 4 KiB pages, the same as in the plain tier.
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
// them after releasing Pool.mu. SetRAMBudget and SetThreshold, which must
// move every file they pick, wait for each file's lock with Pool.mu not
// held; their caller must hold no File's lock.
package spill
