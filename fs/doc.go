// Package fs maps FUSE operations onto spoolfs's storage: it owns the tree
// of nodes (directories, files, symlinks, FIFOs, sockets and devices), the
// sessions (top-level directories with their own quota and lifetime), the
// handlers of the user.spoolfs.* extended-attribute control surface (its
// names, value formats and JSON are package fs/control, which the CLI
// shares), statfs, and the one place where Go errors become errno
// (errno.go).
//
// It builds on go-fuse's fs package: one Go type per node kind embedding
// fs.Inode and attrs, persistent inodes (so that dropping the kernel's
// caches never loses a file), and go-fuse's in-memory tree of names. File
// bytes live in package spill, accounting in package quota; besides them
// fs imports only its own packages below it (control, expiry, proc), and it
// logs only through the logger it is given.
//
// # Invariants
//
//   - Every node is charged one inode to the account of the tree it lives
//     in (the root level or one session) and to its owner's account at
//     once, through its quota.Charge, and a file's pages to the same
//     charge through spill. What a node keeps in RAM besides (extended
//     attributes, ACLs among them, a symlink's target) is charged to that
//     account too, and
//     to the pool's RAM budget, in 512-byte units that st_blocks shows
//     (meta.go); it goes back when the node is freed. Renames and links
//     never cross accounts (EXDEV), so a charge never has to move between
//     trees; a chown moves it between owners, under the node's attrs.mu
//     so that the charge's owner is always the node's uid.
//   - A file is freed (bytes and inode) when it has neither a name nor an
//     open handle, as on any POSIX filesystem.
//   - A node's access ACL, if stored, and its mode's permission bits agree
//     (acl.go): each change to one changes the other under the node's xmu.
//   - A session, once ended, is absent: every lookup goes through
//     dirNode.child, which hides ended sessions and everything inside one,
//     even where go-fuse's tree still shows them (go-fuse adds an entry
//     after the handler that made it returns).
//   - The kernel may cache names and attributes for an hour and file data
//     across opens: every change goes through the kernel, except what a
//     session's end removes, and the page cache of closed RAM-tier files,
//     which the cacheKeeper drops with NOTIFY_INVAL_INODE. A session's end
//     is announced with NOTIFY_DELETE for the entries inside, innermost
//     first, and for the session itself with rmdir(2) of it in the mount's
//     root by the reaper's thread (NOTIFY_DELETE if that fails), so that
//     inotify watchers see what rm -rf would show them. The rmdir goes
//     through a private clone of the mount (open_tree), never through the
//     user's mount, whose umount(2) it would make fail with EBUSY; the
//     clone lives for one batch of the reaper at most, and no longer than
//     the mount table stays unchanged, since it keeps the connection
//     alive after the user's mount is gone. The root answers
//     that rmdir's LOOKUP and RMDIR, told apart by the caller's thread id,
//     and no one else's, as if the ended session were there; never for a
//     name a live session has.
//   - What the kernel caches of a file's bytes is what the file holds: the
//     cacheFiller stores bytes there (NOTIFY_STORE) only while the file has
//     no writable handle, each piece read and stored under the file's fill
//     lock, which opening a writable handle and a truncate also take.
//   - A file with a passthrough open has no open in the kernel's cached
//     mode, and every new open of it is a passthrough one, as the kernel
//     demands (passthrough.go): an open of a file with a passthrough
//     episode joins it, and one starts only where no cached open is. A passthrough
//     open reads the backing file's page cache, which the daemon's writes
//     go through too; every write still comes to the daemon
//     (FOPEN_DIRECT_IO on writable joiners), and the cacheFiller leaves
//     such a file alone. While an episode lasts its spill.File is pinned
//     (and so dense) and its backing file registered with the kernel; the
//     last RELEASE of the episode undoes both, but for a file that a
//     read-write open joined: its mappings of the backing file may outlive
//     every open, so it stays pinned, and every open of it passes through,
//     until it is freed.
//
// # Lock order
//
// session.gate (shared by operations that change a session's tree,
// exclusive while a session is marked ended) is taken before session.mu
// and before any file's fill lock, which is taken before its attrs.mu and
// before the locks inside its spill.File. A node's attrs.xmu (its extended
// attributes and their charge) is taken after the gate and before its
// attrs.mu (a chmod takes both, for the access ACL), never with another
// node's xmu or fill lock (a new node's directory's xmu is let go before
// the new node is made), and is held while
// the charge is made: the quota's lock and the pool's, and, when the pool
// evicts, other files' spill locks, which it takes with TryLock only.
// An open pins its spill.File (spill.File.PinBacking) before it takes the
// fill lock or attrs.mu, since a pin waits for the file's write in flight;
// the backing file is registered with the kernel (an ioctl that waits for
// nothing of ours) under attrs.mu.
// The quota's lock is a leaf, taken under any of these (a chown takes it
// under attrs.mu). attrs.mu is never held while another node's is taken, except a
// directory's during the creation of its child (initAttrs reads the
// parent's setgid bit), parent first. sessionTable.mu, cacheKeeper.mu and
// reaper.mu are leaves: nothing else is
// taken while they are held.
//
// FS.limitsMu, which serialises live changes of the mount's limits
// (limits.go), is taken with no other lock held, and held while the quota's
// lock, the pool's and sessionTable.mu are taken, and while the pool moves
// files to disk: it waits for their spill locks, which is safe because no
// one holds a spill lock while waiting for anything but the pool's.
//
// # Deadlocks
//
// A notification to the kernel (NotifyDelete, NotifyContent, NotifyEntry)
// may wait for locks the kernel holds while a request of ours is in
// flight, so notifications are never sent from a request handler or with
// a lock held: the reaper's goroutine sends those of session ends, cache
// drops go through the cacheKeeper's goroutine.
// The one exception is the cacheFiller's NOTIFY_STORE, sent from its own
// goroutine with the file's fill lock held, which is what keeps a change
// from slipping in between the read of a piece and its store. A store waits
// for the page locks that the kernel holds while a READ or WRITE of the
// file is in flight, and for nothing else; the handlers of those requests
// (and of page faults, which are READs) never take the fill lock. The ones
// that do, OPEN, SETATTR and RELEASE, are sent with no page lock held.
// A process must not mmap a file of a mount that the same process serves
// (a page fault then waits on a server the Go runtime has stopped); the
// tests keep mappings in child processes.
//
// The reaper's rmdir of a session waits for our answers to the requests
// it makes (GETATTR, LOOKUP, RMDIR), which take only locks held briefly
// (go-fuse's tree's, a node's attrs.mu), so it is made with no lock held.
// The kernel holds the root's inode lock meanwhile: requests that change
// the root wait for the rmdir, and nothing it waits for waits on them.
//
// # Parallelism
//
// go-fuse serves requests on several goroutines. Operations on different
// files run in parallel; one file's reads run in parallel with each other
// and are serialised with its writes inside spill. Over io_uring
// (fs/fuseuring) requests are answered on worker threads pinned to the
// caller's CPU instead, and a CPU's queue gains a worker whenever all of
// its workers are busy, so a handler that waits for another request (an
// OPEN waiting for the fill lock that a NOTIFY_STORE holds, which waits
// for an in-flight READ) does not hold that request up, as over
// /dev/fuse.
//
// Work outside requests competes with them for the CPU, and the daemon
// often runs Go code on one CPU. So the long runs of it, thousands of
// sessions ending at once, give way every few steps (pacer): a session
// end hides the session and frees its bytes at once, and the reaper tells
// the kernel later, working at most half of the time.
package fs
