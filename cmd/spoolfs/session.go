package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"

	"github.com/spoolfs/spoolfs/fs/control"
	"github.com/spoolfs/spoolfs/fs/proc"
)

const sessionUsage = `Usage:
  spoolfs session new MOUNT [flags]
  spoolfs session ls MOUNT [--json]
  spoolfs session rm SESSION...
  spoolfs session touch SESSION...

A session is a top-level directory of a spoolfs mount that deletes itself:
at its age limit (--ttl), after --idle without activity, when process --pid
exits, or on 'session rm'. 'mkdir MOUNT/NAME' also makes one, with the
mount's defaults.

Flags of 'session new':
`

// sessionHelp is sessionUsage with the flags of 'session new', from its
// option table, so that none is left out.
func sessionHelp() string {
	var o sessionNewOptions
	return sessionUsage + newSessionNewFlags(&o).FlagUsages()
}

func runSession(args []string, stdout, stderr io.Writer) int {
	usage := sessionHelp()
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "new":
		return sessionNew(args[1:], stdout, stderr)
	case "ls", "list":
		return sessionLs(args[1:], stdout, stderr)
	case "rm":
		return sessionRm(args[1:], stdout, stderr)
	case "touch":
		return sessionTouch(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "spoolfs session: unknown command %q\n%s", args[0], usage)
	return exitUsage
}

// parseFlags parses with one-line errors; it returns ok=false with the exit
// code when the caller should stop.
func parseFlags(f *pflag.FlagSet, args []string, usage string, stdout, stderr io.Writer) (int, bool) {
	f.SetOutput(io.Discard)
	if err := f.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintf(stdout, "%s\n%s", usage, f.FlagUsages())
			return exitOK, false
		}
		fmt.Fprintf(stderr, "spoolfs %s: %v\n", f.Name(), err)
		return exitUsage, false
	}
	return 0, true
}

// sessionNewOptions are the flags of 'session new'.
type sessionNewOptions struct {
	ttl, idle duration
	size      byteSize
	inodes    count
	pid       int
	prefix    string
	mode      octalMode
}

// optionTable declares the flags of 'session new', each bound to the field
// of o that it sets.
func (o *sessionNewOptions) optionTable() optionTable {
	return optionTable{
		{name: "ttl", value: &o.ttl, help: "end the session at this age, e.g. 2h"},
		{name: "idle", value: &o.idle, help: "end the session after this long without activity, e.g. 10m"},
		{name: "size", value: &o.size, help: "byte quota, e.g. 5GiB"},
		{name: "inodes", value: &o.inodes, help: "inode quota, e.g. 100k"},
		{name: "pid", value: &o.pid, help: "end the session when this process exits (e.g. $$)"},
		{name: "prefix", value: &o.prefix, def: "session-", help: "name prefix; a random suffix follows, like mktemp -d"},
		{name: "mode", value: &o.mode, def: "0700", help: "permissions of the session directory"},
	}
}

func newSessionNewFlags(o *sessionNewOptions) *pflag.FlagSet {
	return o.optionTable().flagSet("session new")
}

func sessionNew(args []string, stdout, stderr io.Writer) int {
	var o sessionNewOptions
	f := newSessionNewFlags(&o)
	if code, ok := parseFlags(f, args, "Usage: spoolfs session new MOUNT [flags]", stdout, stderr); !ok {
		return code
	}
	if f.NArg() != 1 {
		fmt.Fprintln(stderr, "spoolfs session new: need exactly one MOUNT")
		return exitUsage
	}
	if o.size.percent > 0 {
		fmt.Fprintln(stderr, "spoolfs session new: --size takes bytes, not a percentage")
		return exitUsage
	}
	mount := f.Arg(0)
	if kindOf(mount) != "root" {
		fmt.Fprintf(stderr, "spoolfs session new: %s is not the root of a spoolfs mount\n", mount)
		return exitUsage
	}
	dir, err := makeSessionDir(mount, o.prefix, uint32(o.mode))
	if err != nil {
		fmt.Fprintf(stderr, "spoolfs session new: %v\n", err)
		return exitFailure
	}
	settings := [][2]string{}
	if f.Changed("ttl") {
		settings = append(settings, [2]string{control.AttrTTL, o.ttl.String()})
	}
	if f.Changed("idle") {
		settings = append(settings, [2]string{control.AttrIdle, o.idle.String()})
	}
	if f.Changed("size") {
		settings = append(settings, [2]string{control.AttrSize, strconv.FormatInt(o.size.bytes, 10)})
	}
	if f.Changed("inodes") {
		settings = append(settings, [2]string{control.AttrInodes, strconv.FormatInt(o.inodes.n, 10)})
	}
	if o.pid != 0 {
		settings = append(settings, [2]string{control.AttrPID, ownerValue(o.pid)})
	}
	for _, kv := range settings {
		if err := setControl(dir, kv[0], kv[1]); err != nil {
			setControl(dir, control.AttrEnd, "1")
			fmt.Fprintf(stderr, "spoolfs session new: %v\n", err)
			return exitFailure
		}
	}
	fmt.Fprintln(stdout, dir)
	return exitOK
}

// makeSessionDir makes PREFIX + a random suffix, never reusing a live name:
// mkdir fails on a name that exists.
func makeSessionDir(mount, prefix string, mode uint32) (string, error) {
	if prefix != filepath.Base(prefix) || prefix == "." || prefix == ".." {
		return "", fmt.Errorf("--prefix %q: must be a plain name", prefix)
	}
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	for range 100 {
		var b [8]byte
		rand.Read(b[:])
		name := []byte(prefix)
		for _, x := range b {
			name = append(name, letters[int(x)%len(letters)])
		}
		dir := filepath.Join(mount, string(name))
		err := os.Mkdir(dir, os.FileMode(mode))
		if err == nil {
			return dir, os.Chmod(dir, os.FileMode(mode)) // past the umask, like mktemp -d
		}
		if !errors.Is(err, os.ErrExist) {
			return "", err
		}
	}
	return "", errors.New("no free name after 100 tries")
}

// ownerValue turns --pid into what the daemon can resolve. PIDs are per
// namespace: if pid is this process's ancestor (the shell that ran us, as
// with --pid $$), send "ancestor:N", which the daemon resolves from the
// caller it sees, in any namespace. Otherwise send the number, which the
// daemon accepts only from a caller in its own PID namespace.
func ownerValue(pid int) string {
	cur := os.Getpid()
	for n := 0; n < 64 && cur > 0; n++ {
		if cur == pid {
			return control.FormatAncestor(n)
		}
		if cur == 1 { // the top of this namespace (a container's shell is often PID 1)
			break
		}
		parent, err := proc.Parent(cur)
		if err != nil {
			break
		}
		cur = parent
	}
	return strconv.Itoa(pid)
}

func sessionLs(args []string, stdout, stderr io.Writer) int {
	var asJSON bool
	f := newJSONFlags("session ls", &asJSON)
	if code, ok := parseFlags(f, args, "Usage: spoolfs session ls MOUNT [--json]", stdout, stderr); !ok {
		return code
	}
	if f.NArg() != 1 {
		fmt.Fprintln(stderr, "spoolfs session ls: need exactly one MOUNT")
		return exitUsage
	}
	sessions, err := listSessions(f.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "spoolfs session ls: %v\n", err)
		return exitFailure
	}
	if asJSON {
		printJSON(stdout, nonNil(sessions))
		return exitOK
	}
	printSessions(stdout, sessions, time.Now())
	return exitOK
}

// printSessions prints the table for people. Every text column comes from
// someone else (a session's owner names it; user names come from the
// system; the rest from whoever serves the mount) and is quoted as ls
// quotes names, so that no value can break or forge a row.
// No sessions, no table: not even its header.
func printSessions(w io.Writer, sessions []*control.SessionInfo, now time.Time) {
	if len(sessions) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tOWNER\tUSED\tRAM\tDISK\tINODES\tSIZE LIMIT\tLEFT\tENDS BY")
	for _, s := range sessions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", quoteName(s.Name), quoteName(userName(s.Owner)),
			humanize.IBytes(uint64(s.Usage.Bytes)), humanize.IBytes(uint64(s.Usage.RAM)),
			humanize.IBytes(uint64(s.Usage.Disk)), s.Usage.Inodes, limitText(s.Size),
			sessionLeft(s, now), sessionEndsBy(s))
	}
	tw.Flush()
}

// sessionLeft is the LEFT column: the time left, and the owner's exit,
// which may come first and cannot be foreseen. What the daemon said is
// quoted; the words around the PID, a number, are ours.
func sessionLeft(s *control.SessionInfo, now time.Time) string {
	left := quoteName(timeLeft(s.Expires, now))
	switch {
	case s.PID == 0:
		return left
	case s.Expires == control.Never:
		return fmt.Sprintf("when PID %d exits", s.PID)
	}
	return fmt.Sprintf("%s or when PID %d exits", left, s.PID)
}

// sessionEndsBy is the ENDS BY column: the reason the daemon foresees,
// or, where it foresees none, the owner's exit.
func sessionEndsBy(s *control.SessionInfo) string {
	if s.PID != 0 && s.Reason == control.None {
		return control.ReasonOwner
	}
	return quoteName(s.Reason)
}

func limitText(n int64) string {
	if n == 0 {
		return "-"
	}
	return humanize.IBytes(uint64(n))
}

func userName(uid uint32) string {
	if u, err := user.LookupId(strconv.Itoa(int(uid))); err == nil {
		return u.Username
	}
	return strconv.Itoa(int(uid))
}

func sessionRm(args []string, stdout, stderr io.Writer) int {
	return eachSession("rm", args, stdout, stderr, func(dir string) error {
		if err := setControl(dir, control.AttrEnd, "1"); err != nil {
			return err
		}
		// Ending happens in the daemon's expiry loop: wait for it, so
		// that the space is free when we return.
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
				return nil
			}
			time.Sleep(10 * time.Millisecond)
		}
		return errors.New("still there after 30s")
	})
}

func sessionTouch(args []string, stdout, stderr io.Writer) int {
	return eachSession("touch", args, stdout, stderr, func(dir string) error {
		return setControl(dir, control.AttrTouch, "1")
	})
}

func eachSession(name string, args []string, stdout, stderr io.Writer, fn func(string) error) int {
	f := pflag.NewFlagSet("session "+name, pflag.ContinueOnError)
	if code, ok := parseFlags(f, args, "Usage: spoolfs session "+name+" SESSION...", stdout, stderr); !ok {
		return code
	}
	if f.NArg() == 0 {
		fmt.Fprintf(stderr, "spoolfs session %s: need at least one SESSION\n", name)
		return exitUsage
	}
	code := exitOK
	for _, dir := range f.Args() {
		if kindOf(dir) != "session" {
			fmt.Fprintf(stderr, "spoolfs session %s: %s is not a spoolfs session\n", name, dir)
			code = exitFailure
			continue
		}
		if err := fn(dir); err != nil {
			fmt.Fprintf(stderr, "spoolfs session %s: %s: %v\n", name, dir, err)
			code = exitFailure
		}
	}
	return code
}
