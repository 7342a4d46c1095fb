package fs

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/spoolfs/spoolfs/fs/control"
	"github.com/spoolfs/spoolfs/fs/mounts"
	"github.com/spoolfs/spoolfs/fs/proc"
	"github.com/spoolfs/spoolfs/quota"
	"github.com/spoolfs/spoolfs/spill"
)

// Config is what a mount is made of.
type Config struct {
	Pool  *spill.Pool    // where file bytes live
	Quota *quota.Account // the mount's root account: its limits are the mount's size and inodes
	// UserLimits is what every uid but root may own at most; a zero field
	// is unlimited. Root may give a uid limits of its own later.
	UserLimits quota.Limits
	// The root directory's permissions and owner, like tmpfs mode=, uid=, gid=.
	RootMode uint32
	RootUID  uint32
	RootGID  uint32
	// Sessions is the policy of new sessions (top-level directories) and
	// the ceiling their owners may not raise theirs above.
	Sessions control.SessionPolicy
	Logger   *slog.Logger // nil: log nothing
	// WritebackCache lets the kernel gather writes in its page cache and
	// send them later in large pieces: small writes get many times faster,
	// but a write past a quota succeeds at first and its ENOSPC or EDQUOT
	// comes back from fsync(2) or close(2) instead.
	WritebackCache bool
	// NoPassthrough serves every read through the daemon, even of
	// spilled files that the kernel could read from their backing files
	// itself (passthrough.go).
	NoPassthrough bool
	// CacheBudget bounds the kernel page cache kept for RAM-tier files
	// nobody has open (see cacheKeeper); 0 keeps none.
	CacheBudget int64
	// Now is the clock for timestamps; nil means time.Now.
	Now func() time.Time
	// Observer is told of ended sessions and refusals; nil: no one.
	Observer Observer
	// ParseLimits reads a value written to user.spoolfs.limits (its format
	// is package control's) into the limits to set, given the current
	// ones: the command line's parsers, which resolve percentages as at
	// mount. nil refuses every write.
	ParseLimits func(value string, current Limits) (Limits, error)
}

// FS is one mounted spoolfs tree. Two FS values share nothing, so one
// process can serve several mounts.
type FS struct {
	pool     *spill.Pool
	quota    *quota.Account
	users    *quota.Users // per-owner accounts, in quota's tree
	log      *slog.Logger
	now      func() time.Time
	nextIno  atomic.Uint64
	root     *rootDir
	sessions *sessionTable
	pids     *proc.Watcher
	cache    *cacheKeeper
	filler   *cacheFiller // nil with the writeback cache
	caps     uint64       // extra FUSE capabilities to ask for
	obs      Observer
	pt       passthrough
	// transport is what serves the mount's requests, as status says
	// it; set once mounted (SetTransport).
	transport atomic.Pointer[string]

	parseLimits func(string, Limits) (Limits, error)
	limitsMu    sync.Mutex // serialises changes of Limits
}

// New returns a filesystem ready to be mounted. The root directory counts
// as one inode, as on tmpfs.
func New(cfg Config) (*FS, error) {
	f := &FS{pool: cfg.Pool, quota: cfg.Quota, log: cfg.Logger, now: cfg.Now, caps: extraCapabilities, obs: observerOr(cfg.Observer),
		parseLimits: cfg.ParseLimits}
	if cfg.WritebackCache {
		f.caps |= fuse.CAP_WRITEBACK_CACHE
	}
	// The kernel allows passthrough or the writeback cache, not both.
	f.pt.off.Store(cfg.NoPassthrough || cfg.WritebackCache)
	if f.log == nil {
		f.log = discardLogger()
	}
	if f.now == nil {
		f.now = time.Now
	}
	if err := f.quota.ReserveInodes(1); err != nil {
		return nil, err
	}
	f.users = f.quota.NewUsers(cfg.UserLimits)
	f.sessions = newSessionTable(f, cfg.Sessions)
	f.pids = proc.NewWatcher()
	f.cache = newCacheKeeper(cfg.CacheBudget)
	if !cfg.WritebackCache {
		// With the writeback cache the kernel may hold dirty pages that
		// a store would overwrite; and its opens all read and write.
		f.filler = newCacheFiller(f.obs)
	}
	root := &rootDir{}
	// The root's inode is the mount's, charged above to no owner; its
	// extended attributes are charged to its owner, as any node's.
	f.initAttrs(&root.attrs, context.Background(), nil, syscall.S_IFDIR|cfg.RootMode&07777, f.users.Charge(f.quota, cfg.RootUID))
	root.uid, root.gid, root.nlink = cfg.RootUID, cfg.RootGID, 2
	f.root = root
	return f, nil
}

// Root is the node to hand to go-fuse's fs.Mount.
func (f *FS) Root() gofs.InodeEmbedder { return f.root }

// RunExpiry ends sessions as their deadlines pass, until ctx is done. Close
// must wait for it to return, so that it is not freeing sessions then.
func (f *FS) RunExpiry(ctx context.Context) { f.sessions.Run(ctx) }

// InodesUsed is the number of inodes the mount holds, the root among them.
func (f *FS) InodesUsed() int64 { return f.quota.Usage().Inodes }

// Mounted tells the filesystem where it is mounted, once the mount is up:
// from then on the reaper removes an ended session with rmdir(2) there,
// so that watchers of the root see IN_DELETE (see reaper). Until then, or
// if it fails, sessions still end, but only a watcher of the session
// itself hears of it.
func (f *FS) Mounted(dir string) error { return f.sessions.reaper.mounted(dir) }

// rootIno is the root directory's inode number.
const rootIno = 1

// Pool is the byte store behind the mount.
func (f *FS) Pool() *spill.Pool { return f.pool }

// Options returns the go-fuse options spoolfs is meant to run with; see
// the package documentation for why each is set.
func (f *FS) Options() *gofs.Options {
	timeout := cacheTimeout
	return &gofs.Options{
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &timeout,
		RootStableAttr:  &gofs.StableAttr{Ino: rootIno},
		// A mode of 0 is a mode: without this go-fuse reports it as
		// 0644 or 0755, and default_permissions enforces that.
		NullPermissions: true,
		MountOptions: fuse.MountOptions{
			FsName:       mounts.FSName,
			Name:         mounts.FSName,
			MaxWrite:     1 << 20,
			MaxReadAhead: 1 << 20,
			// Every change to a file's bytes goes through the kernel, so
			// its page cache is never stale; letting it drop the cache
			// whenever it sees a new mtime (which our own writes cause)
			// made every re-read a cold read.
			ExplicitDataCacheControl: true,
			// Every read is answered from bytes in memory, never from a
			// descriptor go-fuse could splice; its attempt cost a pipe
			// resize per read and, for 1 MiB reads that outgrow the
			// pipe, a log line per read.
			DisableSplice: true,
			// Symlinks never change: cache their targets.
			EnableSymlinkCaching: true,
			Options:              []string{"default_permissions"},
			// The kernel enforces POSIX ACLs, which we store (acl.go).
			EnableAcl:         posixACLs,
			ExtraCapabilities: f.caps,
		},
	}
}

// cacheTimeout is how long the kernel may trust names and attributes. Every
// change goes through the kernel, except those the daemon makes on its own,
// and those it announces with notifications; so a long timeout is safe and
// makes stat as fast as tmpfs.
const cacheTimeout = time.Hour

// statfs fills out from an account: the mount's figures at the root. Files
// counts the limit (or, if unlimited, what is used plus what is left of the
// RAM and disk, so that df shows something real).
func (f *FS) statfs(acct *quota.Account, out *fuse.StatfsOut) {
	const bsize = 4096
	used, avail, lim := acct.Usage(), acct.Available(), acct.Limits()
	total := lim.Bytes
	if total == 0 {
		total = satAdd(used.Bytes, avail.Bytes)
	}
	totalInodes := lim.Inodes
	if totalInodes == 0 {
		totalInodes = satAdd(used.Inodes, avail.Inodes)
	}
	out.Bsize, out.Frsize, out.NameLen = bsize, bsize, 255
	out.Blocks = uint64(total / bsize)
	out.Bfree = uint64(max(avail.Bytes, 0) / bsize)
	out.Bavail = out.Bfree
	out.Files = uint64(totalInodes)
	out.Ffree = uint64(max(avail.Inodes, 0))
}

// satAdd adds without overflowing: an unlimited account reports MaxInt64.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// SetTransport records the transport that serves the mount ("dev" or
// "uring"), for user.spoolfs.status.
func (f *FS) SetTransport(name string) { f.transport.Store(&name) }

// Close frees everything the filesystem still holds, in RAM and on disk,
// once it is unmounted: files still open when a busy mount was cut off
// included.
func (f *FS) Close() error {
	f.sessions.reaper.close()
	f.pids.Close()
	f.filler.close()
	f.cache.close()
	return f.pool.Close()
}
