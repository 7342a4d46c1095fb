package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	spoolfs "github.com/spoolfs/spoolfs/fs"
	"github.com/spoolfs/spoolfs/fs/mounts"
	"github.com/spoolfs/spoolfs/fs/sysmem"
	"github.com/spoolfs/spoolfs/quota"
	"github.com/spoolfs/spoolfs/spill"
)

// mountConfig is one mount. A flag whose value needs nothing more is parsed
// straight into the config of the package that uses it (spill, fs, quota);
// one whose value depends on the machine or on other flags (a percentage of
// the free disk, a default from physical memory, a directory to check) is
// held in given until resolve works it out into those configs. So each
// value is written once, by its flag or by resolve, and serve adds only
// what exists at run time: the pool, the quota account, the logger.
type mountConfig struct {
	dir        string         // the mount point, from realMountpoint
	spill      spill.Config   // Dir, Threshold and RAMBudget by resolve
	fs         spoolfs.Config // Sessions.Bytes and .Inodes by resolve
	limits     quota.Limits   // the mount's size and inodes, by resolve
	allowOther bool
	foreground bool
	debug      bool
	lifetime   time.Duration
	vfsFlags   uintptr // MS_* flags from the generic mount options
	metrics    string  // address to serve metrics on, by resolve; "": off
	transport  transportMode
	log        logConfig
	options    []string // -o key=value,..., applied by applyOptions

	given struct { // as the flags say them, for resolve
		size, ram, threshold, sessionSize, userSize byteSize
		inodes, sessionInodes, userInodes           count
		spillDir                                    string
		metrics                                     metricsAddr
	}
}

// The defaults that resolve works out, and the help and manual page say.
const (
	defaultThreshold = 16 << 20
	bytesPerInode    = 8 << 10 // as tmpfs: physical memory / 8 KiB
)

// optionTable declares the flags of 'spoolfs mount', each bound to the
// field of c that it sets.
func (c *mountConfig) optionTable() optionTable {
	t := optionTable{
		{name: "size", value: &c.given.size, def: "50%",
			help: "capacity of the mount, RAM and disk together: bytes (512MiB, 2G, 1.5GB), 0 for no limit, or a percentage of the free space on the spill disk"},
		{name: "inodes", value: &c.given.inodes, about: fmt.Sprintf("physical memory / %d KiB, as tmpfs", bytesPerInode>>10),
			help: "most files, directories and symlinks, 0 for no limit"},
		{name: "ram", value: &c.given.ram, def: "25%",
			help: "RAM budget for file data, extended attributes and symlink targets across the mount: bytes or a percentage of physical memory"},
		{name: "spill-threshold", value: &c.given.threshold, about: fmt.Sprintf("%dMiB, or --ram if smaller", defaultThreshold>>20),
			help: "size past which a file moves to disk"},
		{name: "spill-dir", value: &c.given.spillDir, about: "$TMPDIR, else /var/tmp",
			help: "directory for spilled data, owned by root or you, sticky if others can write it; not in the mount"},
		{name: "mode", value: (*octalMode)(&c.fs.RootMode), def: "1777",
			help: "permissions of the root directory, in octal"},
		{name: "uid", value: &c.fs.RootUID, def: strconv.Itoa(os.Getuid()), about: "the caller's",
			help: "owner of the root directory"},
		{name: "gid", value: &c.fs.RootGID, def: strconv.Itoa(os.Getgid()), about: "the caller's",
			help: "group of the root directory"},
		{name: "allow-other", value: &c.allowOther, def: strconv.FormatBool(os.Getuid() == 0), about: "on when run as root",
			help: "let other users into the mount; needs root or user_allow_other in /etc/fuse.conf"},
		{name: "session-ttl", value: (*duration)(&c.fs.Sessions.TTL),
			help: "default and ceiling for a session's age limit, e.g. 2h (0: none)"},
		{name: "session-idle", value: (*duration)(&c.fs.Sessions.Idle),
			help: "default and ceiling for a session's idle limit, e.g. 10m (0: none)"},
		{name: "session-size", value: &c.given.sessionSize,
			help: "default and ceiling for a session's bytes (0: none)"},
		{name: "session-inodes", value: &c.given.sessionInodes,
			help: "default and ceiling for a session's inodes (0: none)"},
		{name: "user-size", value: &c.given.userSize,
			help: "most bytes the files of one uid may hold, root's aside (0: none); as tmpfs's usrquota_block_hardlimit"},
		{name: "user-inodes", value: &c.given.userInodes,
			help: "most inodes one uid may own, root's aside (0: none); as tmpfs's usrquota_inode_hardlimit"},
		{name: "lifetime", value: (*duration)(&c.lifetime),
			help: "unmount and delete everything after this long, e.g. 8h (0: never)"},
		{name: "writeback-cache", value: &c.fs.WritebackCache,
			help: "let the kernel gather small writes (much faster; but ENOSPC/EDQUOT then come from fsync/close, not write)"},
		{name: "metrics", value: &c.given.metrics, about: "off",
			help: "serve Prometheus metrics over HTTP at /metrics: PORT or :PORT listens on 127.0.0.1 only; name a host to listen elsewhere, e.g. 0.0.0.0:9780 for every interface"},
		{name: "transport", value: &c.transport, def: transportAuto,
			help: "how requests reach the daemon: uring (FUSE over io_uring, answered on the caller's CPU), dev (/dev/fuse), or auto (uring when the kernel offers it)"},
		{name: "encrypt-spill", value: &c.spill.Encrypt,
			help: "seal spilled data with AES-256-GCM under a key held only in memory (costs CPU; see README)"},
		{name: optionsFlag, short: "o", value: &c.options,
			help: "mount(8)-style options: -o size=2G,ram=256M,spill_threshold=4M (every flag has one)"},
	}
	// The generic options set and clear bits of the platform's defaults.
	c.vfsFlags = defaultVFSFlags
	for _, o := range vfsOptions {
		t = append(t, option{name: o.name, value: vfsFlag{&c.vfsFlags, o.set, o.clear}, hidden: true, help: "mount(8) option"})
	}
	return append(t,
		option{name: "foreground", short: "f", value: &c.foreground,
			help: "stay in the foreground instead of returning once mounted"},
		option{name: "debug", value: &c.debug,
			help: "trace every FUSE request to stderr, and log at debug level (implies -f)"},
		option{name: "log-file", value: &c.log.file, about: "the journal or syslog in the background, stderr in the foreground",
			help: "append the log to this file, made 0600 if new"},
		option{name: "log-level", value: &c.log.level, def: "info",
			help: "least severe level logged: debug (refusals), info (mounts, session ends), warn or error"},
		option{name: "log-format", value: &c.log.format, def: "text",
			help: "text (key=value) or json, one record a line"},
	)
}

// newMountFlags makes the flags of c's option table, which puts the
// defaults into c.
func newMountFlags(c *mountConfig) *pflag.FlagSet {
	return c.optionTable().flagSet("spoolfs mount")
}

func runMount(args []string, stdout, stderr io.Writer) int {
	var c mountConfig
	flags := newMountFlags(&c)
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintf(stdout, "Usage: spoolfs mount [flags] MOUNTPOINT\n\n%s", flags.FlagUsages())
			return exitOK
		}
		fmt.Fprintf(stderr, "spoolfs mount: %v (see 'spoolfs mount --help')\n", err)
		return exitUsage
	}
	if isRemount(c.options) {
		return runRemount(flags, c.options, stderr)
	}
	if err := applyOptions(flags, c.options); err != nil {
		fmt.Fprintf(stderr, "spoolfs mount: %v\n", err)
		return exitUsage
	}
	if c.debug && !flags.Changed("log-level") {
		c.log.level = logLevel(slog.LevelDebug)
	}
	if flags.NArg() != 1 {
		fmt.Fprintln(stderr, "spoolfs mount: need exactly one MOUNTPOINT")
		return exitUsage
	}
	dir, err := realMountpoint(flags.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "spoolfs mount: %v\n", err)
		return exitUsage
	}
	// From the check that dir is free until it is mounted, no other
	// 'spoolfs mount' of it may run. A daemon's parent holds the lock
	// until the daemon reports, so the daemon takes none.
	unlock := func() {}
	if !isDaemonChild() {
		unlock = lockMountParent(dir)
	}
	defer unlock()
	if err := c.resolve(dir); err != nil {
		if isDaemonChild() { // what changed since the parent's checks: tell it why
			newReadyReporter().report(err)
		}
		fmt.Fprintf(stderr, "spoolfs mount: %v\n", err)
		return exitUsage
	}
	if c.foreground || c.debug {
		return serve(&c, unlock, stderr)
	}
	return daemonize(&c, args, stderr)
}

// Generic mount(8) options that mean nothing to spoolfs or that the kernel
// and fuse3's helper already applied. They are accepted so that an fstab
// line written for tmpfs works.
var ignoredOptions = map[string]bool{
	"rw": true, "defaults": true, "auto": true, "noauto": true, "user": true, "nouser": true,
	"users": true, "owner": true, "nofail": true, "_netdev": true, "atime": true,
	"norelatime": true, "lazytime": true, "async": true, "default_permissions": true,
}

// vfsOption is a generic mount option that spoolfs honours as a mount
// flag (the table is per platform: vfsOptions).
type vfsOption struct {
	name       string
	set, clear uintptr
}

// vfsFlag is one generic mount option as a (hidden) boolean flag, so that
// -o handles it like every other option.
type vfsFlag struct {
	flags      *uintptr
	set, clear uintptr
}

func (v vfsFlag) String() string   { return "false" }
func (v vfsFlag) Type() string     { return "bool" }
func (v vfsFlag) IsBoolFlag() bool { return true }

func (v vfsFlag) Set(s string) error {
	if s != "true" {
		return fmt.Errorf("%q: takes no value", s)
	}
	*v.flags = *v.flags&^v.clear | v.set
	return nil
}

// applyOptions sets flags from -o key=value items: every flag has an -o
// spelling (oSpelling).
func applyOptions(flags *pflag.FlagSet, items []string) error {
	for _, item := range items {
		for _, opt := range strings.Split(item, ",") {
			if err := applyOption(flags, strings.TrimSpace(opt)); err != nil {
				return err
			}
		}
	}
	return nil
}

func applyOption(flags *pflag.FlagSet, opt string) error {
	key, value, hasValue := strings.Cut(opt, "=")
	switch {
	case opt == "":
		return nil
	case ignoredOptions[key], strings.HasPrefix(key, "x-"), key == "comment":
		return nil
	case key == "ro":
		return errors.New("-o ro: spoolfs is a scratch filesystem and cannot be mounted read-only")
	case key == optionsFlag || key == "o":
		return fmt.Errorf("-o %q: unknown option", opt)
	}
	name := flagName(key)
	fl := flags.Lookup(name)
	if fl == nil {
		return fmt.Errorf("-o %q: unknown option", key)
	}
	if !hasValue {
		if fl.Value.Type() != "bool" {
			return fmt.Errorf("-o %q: needs a value (%s=...)", key, key)
		}
		value = "true"
	}
	if err := flags.Set(name, value); err != nil {
		return fmt.Errorf("-o %s: %v", key, unwrapFlagError(err)) // key names a real flag here
	}
	return nil
}

// unwrapFlagError drops pflag's wrapping so that the message stays on one line.
func unwrapFlagError(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

// resolve checks everything and works out the values held in c.given;
// dir comes from realMountpoint.
func (c *mountConfig) resolve(dir string) error {
	var err error
	if c.metrics, err = parseMetricsAddr(string(c.given.metrics)); err != nil {
		return err
	}
	c.dir = dir
	if err := checkTransport(c.transport, uringEnabled); err != nil {
		return err
	}
	if err := checkMountpoint(dir); err != nil {
		return err
	}
	if c.spill.Dir, err = c.checkSpillDir(dir); err != nil {
		return err
	}
	var disk unix.Statfs_t
	if err := c.checkLogFile(); err != nil {
		return err
	}
	if err := unix.Statfs(c.spill.Dir, &disk); err != nil {
		return fmt.Errorf("--spill-dir %s: %v", c.spill.Dir, err)
	}
	freeDisk := freeBytes(int64(disk.Bavail), int64(disk.Bsize))
	if err := c.resolveValues(freeDisk, sysmem.Physical()); err != nil {
		return err
	}
	return c.check()
}

// checkLogFile makes --log-file absolute and checks that it can be opened,
// which makes it if it is not there: the daemon opens it again.
func (c *mountConfig) checkLogFile() error {
	if c.log.file == "" {
		return nil
	}
	c.log.file = absPath(c.log.file)
	f, err := openLogFile(c.log.file)
	if err != nil {
		return err
	}
	return f.Close()
}

// freeBytes is blocks × block size, without wrapping on a filesystem that
// reports absurd figures (a negative count, as FreeBSD's over-reserved
// disks do, is no space).
func freeBytes(blocks, blockSize int64) int64 {
	switch {
	case blocks <= 0 || blockSize <= 0:
		return 0
	case blocks > maxBytes/blockSize:
		return maxBytes
	}
	return blocks * blockSize
}

// resolveValues works out the sizes and the session policy from the flags,
// the free space on the spill disk and the machine's physical memory.
// Every percentage must come to at least a byte: 0 would mean "no limit".
func (c *mountConfig) resolveValues(freeDisk, physical int64) error {
	g := &c.given
	var err error
	if c.limits.Bytes, err = g.size.resolve(freeDisk, "the free space on the spill disk"); err != nil {
		return fmt.Errorf("--size %v", err)
	}
	if c.spill.RAMBudget, err = g.ram.resolve(physical, "physical memory"); err != nil {
		return fmt.Errorf("--ram %v", err)
	}
	c.limits.Inodes = g.inodes.n
	if !g.inodes.set {
		c.limits.Inodes = physical / bytesPerInode
	}
	c.spill.Threshold = min(defaultThreshold, c.spill.RAMBudget)
	if g.threshold.set {
		if c.spill.Threshold, err = g.threshold.resolve(c.spill.RAMBudget, "--ram"); err != nil {
			return fmt.Errorf("--spill-threshold %v", err)
		}
	}
	if c.fs.Sessions.Bytes, err = c.shareOfSize("--session-size", g.sessionSize); err != nil {
		return err
	}
	c.fs.Sessions.Inodes = g.sessionInodes.n
	if c.fs.UserLimits.Bytes, err = c.shareOfSize("--user-size", g.userSize); err != nil {
		return err
	}
	c.fs.UserLimits.Inodes = g.userInodes.n
	return nil
}

// shareOfSize resolves a flag that may be bytes or a share of --size,
// once --size is known.
func (c *mountConfig) shareOfSize(flag string, v byteSize) (int64, error) {
	if v.percent > 0 && c.limits.Bytes == 0 {
		return 0, fmt.Errorf("%s %s: a share of --size, which has no limit", flag, v.text)
	}
	n, err := v.resolve(c.limits.Bytes, "--size")
	if err != nil {
		return 0, fmt.Errorf("%s %v", flag, err)
	}
	return n, nil
}

func (c *mountConfig) check() error {
	size, ram, threshold, sessionBytes := c.limits.Bytes, c.spill.RAMBudget, c.spill.Threshold, c.fs.Sessions.Bytes
	switch {
	case threshold > ram:
		return fmt.Errorf("--spill-threshold %d is above --ram %d: a file that big could never stay in RAM", threshold, ram)
	case sessionBytes != 0 && size != 0 && sessionBytes > size:
		return fmt.Errorf("--session-size %d is above --size %d", sessionBytes, size)
	case c.fs.UserLimits.Bytes != 0 && size != 0 && c.fs.UserLimits.Bytes > size:
		return fmt.Errorf("--user-size %d is above --size %d", c.fs.UserLimits.Bytes, size)
	case size != 0 && size < 4096:
		return fmt.Errorf("--size %d: too small to hold anything", size)
	case c.allowOther && os.Getuid() != 0 && !userAllowOther():
		return errors.New("--allow-other needs root, or user_allow_other in /etc/fuse.conf")
	}
	return nil
}

// realMountpoint is the directory the kernel would mount on for arg: an
// absolute path with no symlink in it, which is how mountinfo names mount
// points. The last element is resolved by readlink(2), which never asks the
// filesystem mounted there: that may be a dead or stuck FUSE mount.
func realMountpoint(arg string) (string, error) {
	path, err := filepath.Abs(arg)
	if err != nil {
		return "", fmt.Errorf("MOUNTPOINT %q: %v", arg, err)
	}
	for range 40 { // as many links as the kernel follows
		parent, err := filepath.EvalSymlinks(filepath.Dir(path))
		if err != nil {
			return "", fmt.Errorf("MOUNTPOINT %s: %v", path, errors.Unwrap(err))
		}
		path = filepath.Join(parent, filepath.Base(path))
		target, err := os.Readlink(path)
		if err != nil { // not a symlink; whatever else is wrong, the caller's checks say
			return path, nil
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(parent, target)
		}
		path = filepath.Clean(target)
	}
	return "", fmt.Errorf("MOUNTPOINT %s: too many levels of symbolic links", arg)
}

// checkMountpoint checks that dir (from realMountpoint) can be mounted on:
// a directory with nothing mounted on it, or only a dead spoolfs, which
// serve clears. A live mount is refused, not stacked on: that would hide
// every file of a spoolfs from the programs using it.
func checkMountpoint(dir string) error {
	switch err := mounts.CheckMountpoint(dir); {
	case errors.Is(err, mounts.ErrDeadMount):
		return nil
	case err != nil:
		return err
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("MOUNTPOINT %s: %v", dir, errors.Unwrap(err))
	}
	if !st.IsDir() {
		return fmt.Errorf("MOUNTPOINT %s: not a directory", dir)
	}
	return nil
}

// checkSpillDir picks the spill directory and checks it: a directory in
// which no other user could replace the daemon's private directory
// (spill.CheckDir), writable, and not inside the mount, where spilling
// would feed the mount to itself. It returns the directory's real path.
func (c *mountConfig) checkSpillDir(mountDir string) (string, error) {
	what, dir := "--spill-dir", c.given.spillDir
	if dir == "" {
		what, dir = "TMPDIR", os.Getenv("TMPDIR")
		// A TMPDIR inside the mount is for the programs that use it.
		if dir == "" || insideMount(realPath(dir), mountDir) {
			what, dir = "spill dir", "/var/tmp"
		}
	}
	real, err := filepath.EvalSymlinks(absPath(dir))
	if err != nil {
		return "", fmt.Errorf("%s %s: %v", what, dir, errors.Unwrap(err))
	}
	if insideMount(real, mountDir) {
		return "", fmt.Errorf("%s %s: inside the mount point %s", what, dir, mountDir)
	}
	if err := spill.CheckDir(real); err != nil {
		return "", fmt.Errorf("%s %s: %v", what, dir, err)
	}
	// Access(2) says yes to root everywhere, /proc included: try for real.
	probe, err := os.MkdirTemp(real, ".spoolfs-probe-")
	if err != nil {
		return "", fmt.Errorf("%s %s: not writable: %v", what, dir, errors.Unwrap(err))
	}
	os.Remove(probe)
	return real, nil
}

// insideMount reports whether dir, a real path, is the mount point or below
// it. It compares the device and inode of dir and each of its parents with
// the mount point's, so that no way of spelling either path (symlinks, bind
// mounts) hides the one in the other.
func insideMount(dir, mountDir string) bool {
	mnt, err := os.Stat(mountDir)
	if err != nil {
		// A dead mount: a directory below it cannot be reached, and fails
		// when it is opened.
		return false
	}
	for {
		if st, err := os.Stat(dir); err == nil && os.SameFile(st, mnt) {
			return true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return false
		}
		dir = parent
	}
}

// realPath is p made absolute with every symlink resolved, or only made
// absolute if it cannot be resolved.
func realPath(p string) string {
	abs := absPath(p)
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real
	}
	return abs
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func userAllowOther() bool {
	data, err := os.ReadFile("/etc/fuse.conf")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "user_allow_other" {
			return true
		}
	}
	return false
}
