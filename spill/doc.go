// Package spill stores the bytes of temporary files: in RAM while a file is
// small, in unnamed disk files once it grows past a threshold or when the
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
// pages and knows nothing of budgets or accounters: RAM pages (ram.go),
// plain pages on disk (disk.go) and sealed pages on disk (sealed.go). Which
// disk tier a file spills into, and where on disk its pages go (below), is
// the pool's choice; the File never asks.
//
// File alone keeps the books, around every call to its tier: before a call
// that may allocate it reserves the pages the tier says are missing, from
// the Accounter and, in RAM, from the pool's budget (spilling first if the
// file would pass the threshold or no RAM can be found); after the call,
// failed or not, it settles from what the tier then holds, giving back what
// was reserved and not used and what was freed, and tells the pool, which
// keeps the figures behind [Pool.Stats] and the LRU order.
//
// # Disk layout
//
// Spilled files cost no descriptor each. A pool opens four shared spill
// files at its first spill (shared.go) and places each file's pages there
// in extents: extent 0 holds page 0, extent k (1 to 8) pages [2^(k-1),
// 2^k), and every later extent 256 pages, 1 MiB. A buddy allocator
// (buddy.go) places each extent as one aligned block in one shared file,
// so a small file takes at most twice its pages of address space (only
// its pages take disk blocks) and a large one is laid out in 1 MiB runs:
// reading it in order reads the shared file in order. Files take the
// shared files in turn, so that writes to different files do not all
// queue on one inode's lock. The sealed tier places its 4124-byte slots
// the same way, a slot per unit of the allocator.
//
// A plain file that reaches 1 MiB moves to a dedicated spill file of its
// own (copying its pages, as a spill does), in which offset X of the file
// is offset X: FUSE passthrough can hand that file to the kernel. A pool
// holds at most min(RLIMIT_NOFILE soft limit / 4, 4096) of them
// ([Config.DedicatedFiles]); past that, large files stay in the shared
// files. A file never moves back; small and sealed files never move.
//
// Freeing never waits for the disk (reclaim.go): when a file is closed,
// truncated or punched, the extents it lets go of whole leave it and its
// accounts at once, and a background reclaimer punches them out of the
// shared file (FALLOC_FL_PUNCH_HOLE, runs of extents end to end in one
// call) and only then gives them back to the allocator. A dedicated file
// is closed there too: its last close is what makes the file system free
// its blocks. The reclaimer's queue holds 1024 frees; past that, the
// caller frees in place, so a burst slows to the disk's pace instead of
// piling up work. A write or fallocate that finds the disk full while
// frees are queued waits for them and tries once more, so that what a
// delete gave back is there for the next write. The reclaimer takes what
// is queued in batches of up to 256 files, sorted by place, so extents
// freed together that lie end to end take one punch. [Pool.Close] punches
// nothing (closing the shared files frees every block at once) and runs
// what is queued before it closes them. Before each run of punches and
// closes, the reclaimer's or a caller's, the pool calls
// [Config.DiskWork]: such system calls may wait for the disk, and a
// daemon whose Go code runs on one CPU would have its requests wait
// behind them.
//
// A spilled write is one pwrite into its spill file (one per extent it
// crosses); nothing else is asked of the disk. RAM per spilled file,
// measured (Go heap after GC, 20,000 files): 437 bytes for a 4 KiB file
// in the shared files (File, tier and page set together), 487 for a 12 KiB
// one; each extent takes 16 bytes and the page set about 8 bytes per 64
// pages. A 1.2 MiB file in a dedicated spill file took 653.
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
//   - Every unit of a shared file that the allocator holds free reads as
//     zeros: it was never written, or it was punched before it went back.
//     So a new owner's holes read as zeros, and a freed extent is never
//     placed again while its old bytes are on disk. A block whose punch
//     fails is never placed again.
//   - The shared files' size covers every block in them: their blocks are
//     allocated with fallocate mode 0, never KEEP_SIZE, since ext4 does not
//     punch past the end of a file.
//   - The private directory is made and opened once; every spill file is
//     made relative to its descriptor, and the directory is removed relative
//     to the spill directory's, never following a symlink. No path is
//     resolved after NewPool, so moving the private directory or putting a
//     symlink in its place sends no data elsewhere. The spill directory
//     itself must be one in which no other user can do that (CheckDir):
//     owned by root or by us, and sticky if others may write it. If the
//     private directory is removed (a tmp cleaner ages empty directories
//     out), the next spill file made (the shared ones, or a dedicated one)
//     goes into a new one made relative to the spill directory's
//     descriptor, which the pool holds for its life.
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
//   - Layout: page pg of a file is a slot of 4124 bytes, slot pg of its
//     extents in the shared files: a 12-byte nonce, the 4096 bytes of
//     ciphertext, the 16-byte tag. Each page is sealed on its own, so a
//     write, read, truncate or punch touches only the slots of its pages,
//     and a part-page write, truncate or punch opens the slot, changes the
//     plaintext and seals it again. A page that is not allocated has no
//     slot (a hole); a page that fallocate added and nothing has written
//     since has its slot reserved on disk but not sealed. Both read as
//     zeros without touching the disk. Truncate frees the slots past the
//     last one kept; a punch frees the slots of the pages it covers whole.
//   - Nonces: a 64-bit counter per pool (the key's lifetime) fills the low 8
//     bytes of the nonce, the high 4 are zero, and every seal takes the next
//     value: no nonce is ever used twice under a key. 2^64 seals of 4 KiB
//     are beyond reach.
//   - Additional data: the file's id (a counter of the pool) and the page
//     index, not where the slot lies, so that a slot copied to another page
//     or another file, or left behind in a block placed again, does not
//     open. A slot that does not open, or that is missing, gives
//     an error wrapping [ErrCorrupt] and none of the page's bytes.
//
// It protects what reaches the disk, while the daemon runs and after: the
// blocks freed by punches, truncates and closed files, and the spill files
// of a daemon that was killed or crashed, whose key died with it. Sealed
// files never get a dedicated spill file: they stay in the shared ones. It does
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
//
// Under File.mu a spill takes Pool.sharedMu (to open the shared files, the
// first time) and placing an extent takes sharedFile.mu; each is released
// before anything else is taken, and neither is held with Pool.mu. The
// reclaimer's goroutine takes only sharedFile.mu, never a File's lock, so
// a writer may wait for it (a full disk) while holding its File's lock.
// reclaimer.mu only guards its queue.
package spill
