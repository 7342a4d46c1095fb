package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	spoolfs "github.com/spoolfs/spoolfs/fs"
	"github.com/spoolfs/spoolfs/fs/control"
	"github.com/spoolfs/spoolfs/fs/sysmem"
	"github.com/spoolfs/spoolfs/quota"
	"github.com/spoolfs/spoolfs/spill"
)

// A live mount's limits change through user.spoolfs.limits on its root,
// whose value is the changed options as -o writes them: 'spoolfs set'
// sends the flags it was given, a remount through mount(8) the -o it
// passes; the daemon parses them with the mount's own option table entries
// and value parsers (parseLiveLimits), so percentages resolve as at mount.

// liveOptionTable is the entries of the mount's option table that a live
// mount can change (control.LiveOptions), with no defaults: what is not
// given stays as it is.
func (c *mountConfig) liveOptionTable() optionTable {
	live := map[string]bool{}
	for _, o := range control.LiveOptions() {
		live[flagName(o)] = true
	}
	var t optionTable
	for _, o := range c.optionTable() {
		if live[o.name] {
			o.def, o.about = "", ""
			t = append(t, o)
		}
	}
	return t
}

// parseLiveLimits reads a user.spoolfs.limits value into the limits to
// set, from cur: a percentage of --size is of freeDisk, of --ram of
// physical, as at mount; a --spill-threshold not given comes down to a
// lowered --ram, as its default would. The result passes the mount's
// checks.
func parseLiveLimits(value string, cur spoolfs.Limits, freeDisk, physical int64) (spoolfs.Limits, error) {
	var c mountConfig
	flags := c.liveOptionTable().flagSet("limits")
	if err := applyOptions(flags, []string{value}); err != nil {
		return cur, err
	}
	l, g, err := cur, &c.given, error(nil)
	changed := flags.Changed
	if changed("size") {
		if l.Size, err = g.size.resolve(freeDisk, "the free space on the spill disk"); err != nil {
			return cur, fmt.Errorf("--size %v", err)
		}
	}
	if changed("ram") {
		if l.RAM, err = g.ram.resolve(physical, "physical memory"); err != nil {
			return cur, fmt.Errorf("--ram %v", err)
		}
		l.SpillThreshold = min(l.SpillThreshold, l.RAM)
	}
	if changed("spill-threshold") {
		if l.SpillThreshold, err = g.threshold.resolve(l.RAM, "--ram"); err != nil {
			return cur, fmt.Errorf("--spill-threshold %v", err)
		}
	}
	if changed("inodes") {
		l.Inodes = g.inodes.n
	}
	if changed("session-ttl") {
		l.Sessions.TTL = c.fs.Sessions.TTL
	}
	if changed("session-idle") {
		l.Sessions.Idle = c.fs.Sessions.Idle
	}
	if changed("session-size") {
		if g.sessionSize.percent > 0 && l.Size == 0 {
			return cur, fmt.Errorf("--session-size %s: a share of --size, which has no limit", g.sessionSize.text)
		}
		if l.Sessions.Bytes, err = g.sessionSize.resolve(l.Size, "--size"); err != nil {
			return cur, fmt.Errorf("--session-size %v", err)
		}
	}
	if changed("session-inodes") {
		l.Sessions.Inodes = g.sessionInodes.n
	}
	checked := mountConfig{limits: quota.Limits{Bytes: l.Size, Inodes: l.Inodes},
		spill: spill.Config{Threshold: l.SpillThreshold, RAMBudget: l.RAM}, fs: spoolfs.Config{Sessions: l.Sessions}}
	if err := checked.check(); err != nil {
		return cur, err
	}
	return l, nil
}

// liveItems returns the -o items of options that a live mount changes,
// in order, dropping the rest: a remount through mount(8) passes every
// option of the mount (and of its fstab line) again.
func liveItems(options []string) []string {
	live := map[string]bool{}
	for _, o := range control.LiveOptions() {
		live[o] = true
	}
	var out []string
	for _, item := range options {
		for _, opt := range strings.Split(item, ",") {
			key, _, _ := strings.Cut(strings.TrimSpace(opt), "=")
			if live[oSpelling(key)] {
				out = append(out, strings.TrimSpace(opt))
			}
		}
	}
	return out
}

// spillDiskFree is what a percentage of --size is of on a live mount: the
// free space on the spill disk, plus what the mount has spilled there
// (free space too, at mount), so that giving the mount's own size again
// changes nothing.
func spillDiskFree(pool *spill.Pool) int64 {
	var disk unix.Statfs_t
	if err := unix.Statfs(pool.Dir(), &disk); err != nil {
		return 0 // then a percentage is refused as less than a byte
	}
	return min(freeBytes(int64(disk.Bavail), int64(disk.Bsize))+pool.Stats().DiskBytes, maxBytes)
}

// remountIgnored are the options a remount through mount(8) passes that
// are no spoolfs flag: the word itself, and the FUSE options the kernel
// shows for the mount, which mount(8) passes back.
var remountIgnored = map[string]bool{
	"remount": true, "user_id": true, "group_id": true, "max_read": true, "rootmode": true, "blksize": true, "fd": true,
}

// isRemount says whether -o asks for a remount.
func isRemount(options []string) bool {
	for _, item := range options {
		for _, opt := range strings.Split(item, ",") {
			if strings.TrimSpace(opt) == "remount" {
				return true
			}
		}
	}
	return false
}

// runRemount is 'mount -o remount,size=8G DIR' through mount.fuse3: every
// option is checked as at mount (a typo fails, exit 2), and those a live
// mount can change are set; the others, which mount(8) passes again from
// the mount and its fstab line, stay as they are. Silent, as mount(8) is.
func runRemount(flags *pflag.FlagSet, options []string, stderr io.Writer) int {
	for _, item := range options {
		for _, opt := range strings.Split(item, ",") {
			opt = strings.TrimSpace(opt)
			key, _, _ := strings.Cut(opt, "=")
			if remountIgnored[key] {
				continue
			}
			if err := applyOption(flags, opt); err != nil {
				fmt.Fprintf(stderr, "spoolfs mount: remount: %v\n", err)
				return exitUsage
			}
		}
	}
	if flags.NArg() != 1 {
		fmt.Fprintln(stderr, "spoolfs mount: remount: need exactly one MOUNTPOINT")
		return exitUsage
	}
	items := liveItems(options)
	if len(items) == 0 {
		return exitOK
	}
	return setLimits(flags.Arg(0), items, "spoolfs mount: remount", io.Discard, stderr)
}

func runSet(args []string, stdout, stderr io.Writer) int {
	var c mountConfig
	flags := c.liveOptionTable().flagSet("set")
	if code, ok := parseFlags(flags, args, "Usage: spoolfs set MOUNTPOINT [flags]   (root only; what is not given stays as it is)", stdout, stderr); !ok {
		return code
	}
	if flags.NArg() != 1 || flags.NFlag() == 0 {
		fmt.Fprintln(stderr, "spoolfs set: need one MOUNTPOINT and at least one flag (see 'spoolfs set --help')")
		return exitUsage
	}
	var items []string
	flags.VisitAll(func(f *pflag.Flag) { // in the table's order
		if f.Changed {
			items = append(items, oSpelling(f.Name)+"="+f.Value.String())
		}
	})
	return setLimits(flags.Arg(0), items, "spoolfs set", stdout, stderr)
}

// setLimits writes items to dir's user.spoolfs.limits and says in one line
// what changed, or why nothing did.
func setLimits(dir string, items []string, cmd string, stdout, stderr io.Writer) int {
	before, err := readStatus(dir)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s: %v\n", cmd, dir, err)
		return exitFailure
	}
	value := strings.Join(items, ",")
	// The daemon can say no more than an errno: check here first what can
	// be checked here, to say why. A percentage of --size is of the
	// daemon's spill disk, which only the daemon knows.
	cur := spoolfs.Limits{Size: before.Capacity, Inodes: before.Inodes, RAM: before.RAMBudget,
		SpillThreshold: before.SpillThreshold, Sessions: before.SessionDefaults}
	if _, err := parseLiveLimits(value, cur, maxBytes, sysmem.Physical()); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return exitUsage
	}
	if err := unix.Setxattr(dir, control.AttrLimits, []byte(value), 0); err != nil {
		fmt.Fprintf(stderr, "%s: %s: %s: %v\n", cmd, dir, value, describeLimitsError(err, before))
		if errors.Is(err, unix.EINVAL) {
			return exitUsage
		}
		return exitFailure
	}
	after, err := readStatus(dir)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s: %v\n", cmd, dir, err)
		return exitFailure
	}
	fmt.Fprintln(stdout, describeChange(before, after))
	return exitOK
}

// readStatus reads the mount's figures from its root.
func readStatus(dir string) (*control.Status, error) {
	raw, err := getControl(dir, control.AttrStatus)
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, control.ErrNoAttr) {
			return nil, errors.New("not the root of a spoolfs mount")
		}
		return nil, err
	}
	st := new(control.Status)
	if err := json.Unmarshal([]byte(raw), st); err != nil {
		return nil, fmt.Errorf("bad figures: %v", err)
	}
	return st, nil
}

// describeLimitsError says why the mount refused, with the figures that
// refused it.
func describeLimitsError(err error, st *control.Status) string {
	ib := func(n int64) string { return humanize.IBytes(uint64(n)) }
	switch {
	case errors.Is(err, unix.EPERM):
		return "not allowed: only root may change a mount's limits"
	case errors.Is(err, unix.ENOSPC):
		return fmt.Sprintf("refused: the size or inodes would be below what is in use (%s, %d inodes); nothing changed", ib(st.Used), st.InodesUsed)
	case errors.Is(err, unix.EBUSY):
		return fmt.Sprintf("refused: RAM held (%s) could not be moved to disk to fit the new --ram; nothing changed", ib(st.RAMUsed))
	case errors.Is(err, unix.EINVAL):
		return "invalid value (the daemon's log says why); nothing changed"
	}
	return err.Error()
}

// describeChange is one line of what differs between two statuses' limits.
func describeChange(before, after *control.Status) string {
	size := func(n int64) string {
		if n == 0 {
			return "none"
		}
		return humanize.IBytes(uint64(n))
	}
	num := func(n int64) string {
		if n == 0 {
			return "none"
		}
		return humanize.Comma(n)
	}
	var out []string
	add := func(name, from, to string) {
		if from != to {
			out = append(out, name+" "+from+" -> "+to)
		}
	}
	b, a := before, after
	add("size", size(b.Capacity), size(a.Capacity))
	add("inodes", num(b.Inodes), num(a.Inodes))
	add("ram", size(b.RAMBudget), size(a.RAMBudget))
	add("spill_threshold", humanize.IBytes(uint64(b.SpillThreshold)), humanize.IBytes(uint64(a.SpillThreshold)))
	bs, as := b.SessionDefaults, a.SessionDefaults
	dur := func(d time.Duration) string {
		if d == 0 {
			return "none"
		}
		return d.String()
	}
	add("session_ttl", dur(bs.TTL), dur(as.TTL))
	add("session_idle", dur(bs.Idle), dur(as.Idle))
	add("session_size", size(bs.Bytes), size(as.Bytes))
	add("session_inodes", num(bs.Inodes), num(as.Inodes))
	if len(out) == 0 {
		return "nothing changed"
	}
	return strings.Join(out, ", ")
}
