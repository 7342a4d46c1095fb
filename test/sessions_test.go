package test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/control"
	"github.com/spoolfs/spoolfs/fs/fusetest"
)

// sessCLI runs the binary and fails the test unless it exits 0.
func sessCLI(t testing.TB, args ...string) string {
	t.Helper()
	code, stdout, stderr := runSpoolfs(t, args...)
	if code != 0 {
		t.Fatalf("spoolfs %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	return stdout
}

func sessNew(t testing.TB, mount string, flags ...string) string {
	t.Helper()
	d := strings.TrimSpace(sessCLI(t, append([]string{"session", "new", mount}, flags...)...))
	if filepath.Dir(d) != mount {
		t.Fatalf("session new printed %q, not a directory of %s", d, mount)
	}
	return d
}

// sessLs runs 'spoolfs session ls --json'.
func sessLs(t testing.TB, path string) []control.SessionInfo {
	t.Helper()
	out := sessCLI(t, "session", "ls", path, "--json")
	var list []control.SessionInfo
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("session ls --json: %v\n%s", err, out)
	}
	return list
}

// sessStatus runs 'spoolfs status --json'.
func sessStatus(t testing.TB, path string) control.StatusReport {
	t.Helper()
	out := sessCLI(t, "status", path, "--json")
	var st control.StatusReport
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st
}

func sessFind(list []control.SessionInfo, name string) *control.SessionInfo {
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}

func sessGone(p string) bool {
	_, err := os.Lstat(p)
	return errors.Is(err, os.ErrNotExist)
}

// sessFifo makes a FIFO that a script blocks on until the test writes it.
func sessFifo(t testing.TB, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := unix.Mkfifo(p, 0o666); err != nil {
		t.Fatal(err)
	}
	return p
}

// sessRelease lets a script blocked reading the FIFO go on.
func sessRelease(t testing.TB, fifo string) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err == nil {
			_, err = f.WriteString("go\n")
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("releasing %s: %v", fifo, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("nobody read %s", fifo)
	}
}

// sessScript is a shell script run in the background, read line by line.
type sessScript struct {
	t      testing.TB
	cmd    *exec.Cmd
	lines  chan string
	stderr *fusetest.LogBuffer
	done   chan error
}

// startScript runs sh -c script with env added, reading its output by
// lines.
func startScript(t testing.TB, env []string, script string, shArgs ...string) *sessScript {
	t.Helper()
	return startCommand(t, env, append([]string{"sh", "-c", script, "sh"}, shArgs...)...)
}

func startCommand(t testing.TB, env []string, argv ...string) *sessScript {
	t.Helper()
	s := &sessScript{t: t, cmd: exec.Command(argv[0], argv[1:]...), lines: make(chan string, 1000),
		stderr: &fusetest.LogBuffer{}, done: make(chan error, 1)}
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stderr = s.stderr
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
		s.done <- s.cmd.Wait()
	}()
	t.Cleanup(func() { s.cmd.Process.Kill() })
	return s
}

// next returns the next line of output, failing if the script ends first.
func (s *sessScript) next() string {
	s.t.Helper()
	select {
	case l, ok := <-s.lines:
		if !ok {
			s.t.Fatalf("script ended early; stderr:\n%s", s.stderr.String())
		}
		return l
	case <-time.After(60 * time.Second):
		s.t.Fatalf("script said nothing for 60s; stderr:\n%s", s.stderr.String())
	}
	return ""
}

// until returns the lines up to (not including) marker.
func (s *sessScript) until(marker string) []string {
	s.t.Helper()
	var got []string
	for {
		l := s.next()
		if l == marker {
			return got
		}
		got = append(got, l)
	}
}

// wait waits for the script to exit 0.
func (s *sessScript) wait() {
	s.t.Helper()
	for range s.lines {
	}
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Fatalf("script: %v; stderr:\n%s", err, s.stderr.String())
		}
	case <-time.After(60 * time.Second):
		s.t.Fatalf("script did not exit; stderr:\n%s", s.stderr.String())
	}
}

// sessFastExit stops race-built CLI runs from sleeping a second at exit
// (the race runtime's atexit_sleep_ms): a session with --idle 1s would end
// while 'session new' still sleeps, before its caller could use it.
func sessFastExit(t *testing.T) {
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
}

// TestSessionOwnerShell: a session tied to the shell that made it lives as
// long as the shell does, ends when it exits, and its space comes back.
func TestSessionOwnerShell(t *testing.T) {
	sessFastExit(t)
	m := mountBinary(t, "--size", "64MiB")
	fifo := sessFifo(t, t.TempDir(), "fifo")
	s := startScript(t, []string{"SPOOLFS=" + spoolfsBinary(t), "MOUNT=" + m.Dir, "FIFO=" + fifo}, `
d=$("$SPOOLFS" session new "$MOUNT" --pid $$ --size 5MiB) || exit 1
dd if=/dev/zero of="$d/data" bs=1M count=3 status=none || exit 2
echo "$d"
read x < "$FIFO"
exit 0`)
	d := s.next()
	name := filepath.Base(d)
	info := sessFind(sessLs(t, m.Dir), name)
	if info == nil {
		t.Fatalf("session ls does not list %s", name)
	}
	if info.PID != s.cmd.Process.Pid {
		t.Errorf("session owned by pid %d, want the shell's %d", info.PID, s.cmd.Process.Pid)
	}
	if info.Size != 5<<20 || info.Usage.Bytes != 3<<20 {
		t.Errorf("size limit %d, usage %d; want 5 MiB, 3 MiB", info.Size, info.Usage.Bytes)
	}
	if info.Reason != "none" {
		t.Errorf("ends_by %q while the shell lives", info.Reason)
	}
	if st := sessStatus(t, m.Dir); st.Mount == nil || st.Mount.Used != 3<<20 || st.Mount.Sessions != 1 {
		t.Errorf("status while the shell lives: %+v", st.Mount)
	}
	sessRelease(t, fifo)
	s.wait()
	waitFor(t, 15*time.Second, "the session to end after its shell exited", func() bool { return sessGone(d) })
	var st control.StatusReport
	waitFor(t, 15*time.Second, "the mount's used bytes back to 0", func() bool {
		st = sessStatus(t, m.Dir)
		return st.Mount != nil && st.Mount.Used == 0 && st.Mount.Sessions == 0 && st.Mount.Files == 0
	})
	if len(st.Sessions) != 0 {
		t.Errorf("status still lists %d sessions", len(st.Sessions))
	}
}

// TestSessionIdleVsActive: a session nobody touches ends after --idle; one
// written to every 100 ms stays, and ends once the writes stop.
func TestSessionIdleVsActive(t *testing.T) {
	sessFastExit(t)
	m := mountBinary(t)
	before := time.Now()
	idle := sessNew(t, m.Dir, "--idle", "1s")
	active := sessNew(t, m.Dir, "--idle", "1s")
	start := time.Now()

	stop := make(chan struct{})
	done := make(chan struct{})
	var werr atomic.Value
	var writes atomic.Int64
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			f, err := os.OpenFile(filepath.Join(active, "beat"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
			if err == nil {
				_, err = f.Write([]byte("."))
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				werr.Store(fmt.Errorf("after %d writes: %w", writes.Load(), err))
				return
			}
			writes.Add(1)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	var idleGone time.Duration
	deadline := start.Add(20 * time.Second)
	for {
		if sessGone(active) {
			t.Fatalf("the active session ended %v after it was made, after %d writes (writer: %v)",
				time.Since(start), writes.Load(), werr.Load())
		}
		if idleGone == 0 && sessGone(idle) {
			idleGone = time.Since(before)
		}
		if idleGone != 0 && time.Since(start) >= 3*time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the idle session is still there after %v", time.Since(before))
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	if idleGone < time.Second {
		t.Errorf("the idle session ended %v after it was made, before its 1s", idleGone)
	}
	list := sessLs(t, m.Dir)
	if len(list) != 1 || list[0].Name != filepath.Base(active) || list[0].Reason != "idle" {
		t.Errorf("session ls: %+v; want only the active session, ending by idle", list)
	}
	close(stop)
	<-done
	if err := werr.Load(); err != nil {
		t.Fatalf("writer: %v", err)
	}
	stopped := time.Now()
	waitFor(t, 15*time.Second, "the active session to end once idle", func() bool { return sessGone(active) })
	if d := time.Since(stopped); d > 10*time.Second {
		t.Errorf("ended %v after the last write, with --idle 1s", d)
	}
}

// TestSessionQuotaNeighbour: dd into a session over its quota fails with
// EDQUOT while a neighbour keeps writing; the mount's limit gives ENOSPC.
func TestSessionQuotaNeighbour(t *testing.T) {
	sessFastExit(t)
	m := mountBinary(t, "--size", "32MiB")
	a := sessNew(t, m.Dir, "--size", "1MiB")
	b := sessNew(t, m.Dir)

	f, err := os.Create(filepath.Join(b, "steady"))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	var werr atomic.Value
	var writes atomic.Int64
	go func() {
		defer close(done)
		chunk := make([]byte, 64<<10)
		for j := int64(0); ; j++ {
			if _, err := f.WriteAt(chunk, (j%64)*int64(len(chunk))); err != nil {
				werr.Store(err)
				return
			}
			writes.Add(1)
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	defer func() {
		select {
		case <-done:
		default:
			close(stop)
			<-done
		}
		f.Close()
	}()
	waitFor(t, 10*time.Second, "the neighbour to write", func() bool { return writes.Load() >= 4 || werr.Load() != nil })

	cmd := exec.Command("dd", "if=/dev/zero", "of="+filepath.Join(a, "big"), "bs=1M", "count=2")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Disk quota exceeded") {
		t.Errorf("dd of 2 MiB into a 1 MiB session: %v\n%s\nwant failure with EDQUOT", err, out)
	}
	n := writes.Load()
	waitFor(t, 10*time.Second, "the neighbour to keep writing", func() bool { return writes.Load() >= n+16 || werr.Load() != nil })
	close(stop)
	<-done
	if err := werr.Load(); err != nil {
		t.Fatalf("the neighbour's writes: %v", err)
	}
	list := sessLs(t, m.Dir)
	if ia := sessFind(list, filepath.Base(a)); ia == nil || ia.Usage.Bytes > 1<<20 || ia.Usage.Bytes < 1<<20-64<<10 {
		t.Errorf("session a: %+v; want about 1 MiB used", ia)
	}
	wantB := min(writes.Load(), 64) * 64 << 10
	if ib := sessFind(list, filepath.Base(b)); ib == nil || ib.Usage.Bytes != wantB {
		t.Errorf("session b: %+v; want %d bytes used", ib, wantB)
	}

	// The neighbour has no quota of its own: the mount's 32 MiB runs out.
	cmd = exec.Command("dd", "if=/dev/zero", "of="+filepath.Join(b, "fill"), "bs=1M", "count=40")
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "No space left on device") {
		t.Errorf("dd of 40 MiB into a 32 MiB mount: %v\n%s\nwant failure with ENOSPC", err, out)
	}
}

// TestSessionLs: the listing, for people and for scripts.
func TestSessionLs(t *testing.T) {
	sessFastExit(t)
	m := mountBinary(t)
	a := sessNew(t, m.Dir, "--ttl", "1h", "--size", "8MiB")
	b := sessNew(t, m.Dir, "--idle", "10m", "--prefix", "job-")
	if !strings.HasPrefix(filepath.Base(b), "job-") {
		t.Errorf("--prefix job- made %s", b)
	}
	writeFile(t, filepath.Join(a, "f"), make([]byte, 1<<20))
	writeFile(t, filepath.Join(b, "f"), []byte("x"))

	out := sessCLI(t, "session", "ls", m.Dir)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") {
		t.Fatalf("session ls:\n%s", out)
	}
	rowOf := func(dir string) string {
		for _, l := range lines[1:] {
			if strings.HasPrefix(l, filepath.Base(dir)+" ") {
				return l
			}
		}
		t.Fatalf("session ls lacks %s:\n%s", dir, out)
		return ""
	}
	checks := []struct {
		dir  string
		want *regexp.Regexp
	}{
		// name, owner, used, ..., size limit, time left, ends by
		{a, regexp.MustCompile(`^\S+\s+root\s+1\.0 MiB\s+.*8\.0 MiB\s+(1h|59m\d+s)\s+ttl\s*$`)},
		{b, regexp.MustCompile(`^job-\S+\s+root\s+4\.0 KiB\s+.*\s-\s+(10m|9m\d+s)\s+idle\s*$`)},
	}
	for _, c := range checks {
		if row := rowOf(c.dir); !c.want.MatchString(row) {
			t.Errorf("row %q does not match %s\nfull output:\n%s", row, c.want, out)
		}
	}

	list := sessLs(t, m.Dir)
	if len(list) != 2 {
		t.Fatalf("session ls --json: %d sessions", len(list))
	}
	ia, ib := sessFind(list, filepath.Base(a)), sessFind(list, filepath.Base(b))
	if ia == nil || ib == nil {
		t.Fatalf("session ls --json: %+v", list)
	}
	if ia.TTL != "1h0m0s" || ia.Size != 8<<20 || ia.Usage.Bytes != 1<<20 || ia.Reason != "ttl" || ia.Path != a || ia.Owner != 0 {
		t.Errorf("session a: %+v", *ia)
	}
	if exp, err := time.Parse(time.RFC3339Nano, ia.Expires); err != nil || exp.Sub(ia.Created) != time.Hour {
		t.Errorf("session a expires %q, created %v: want created + 1h", ia.Expires, ia.Created)
	}
	if ib.Idle != "10m0s" || ib.Reason != "idle" || ib.Usage.Bytes != 4096 || ib.Usage.Inodes != 2 {
		t.Errorf("session b: %+v", *ib)
	}
	sessCLI(t, "session", "touch", a, b)
	if code, _, stderr := runSpoolfs(t, "session", "ls", t.TempDir()); code == 0 || !strings.Contains(stderr, "not a spoolfs") {
		t.Errorf("session ls of a plain directory: exit %d, %s", code, stderr)
	}
}

// TestSessionLsQuotesNames: a session name with a newline, a tab or a
// right-to-left override cannot break or forge rows of 'session ls' and
// 'status': the tables quote it as ls(1) does; --json is unchanged.
func TestSessionLsQuotesNames(t *testing.T) {
	m := newMount(t, inRAM)
	quoted := map[string]string{
		"plain":                       "plain",
		"a b":                         "'a b'",
		"evil\nroot  1.0 MiB  forged": `'evil'$'\n''root  1.0 MiB  forged'`,
		"tab\tbed":                    `'tab'$'\t''bed'`,
		"x\u202etxt.exe":              `'x'$'\u202e''txt.exe'`,
		"it's":                        `"it's"`,
		"\x1b]0;pwned\a":              `''$'\033'']0;pwned'$'\a'`,
	}
	for name := range quoted {
		if err := os.Mkdir(filepath.Join(m.Dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"session", "ls", m.Dir}, {"status", m.Dir}} {
		out := sessCLI(t, args...)
		if strings.ContainsAny(out, "\t\u202e\x1b\a") {
			t.Errorf("spoolfs %s: raw control or format characters in the table:\n%q", args[0], out)
		}
		table := out[strings.Index(out, "NAME"):]
		lines := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
		if len(lines) != 1+len(quoted) {
			t.Errorf("spoolfs %s: %d rows for %d sessions:\n%q", args[0], len(lines)-1, len(quoted), table)
		}
		for _, want := range quoted {
			found := false
			for _, l := range lines[1:] {
				found = found || strings.HasPrefix(l, want+" ")
			}
			if !found {
				t.Errorf("spoolfs %s: no row starts with %s:\n%q", args[0], want, table)
			}
		}
	}
	// --json is for scripts: the names exactly, escaped only as JSON is.
	out := sessCLI(t, "session", "ls", m.Dir, "--json")
	var list []control.SessionInfo
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	for name := range quoted {
		encoded, _ := json.Marshal(name)
		if sessFind(list, name) == nil || !strings.Contains(out, `"name": `+string(encoded)) {
			t.Errorf("session ls --json lacks the name %s:\n%s", encoded, out)
		}
	}
}

// TestSessionNoAccidentalNone: a session's limits, through 'session new'
// or its attributes, refuse what is not a whole number of bytes, inodes or
// nanoseconds, rather than read it as 0, "none". Each of these was once
// accepted as "none".
func TestSessionNoAccidentalNone(t *testing.T) {
	m := newMount(t, inRAM)
	for _, args := range [][]string{{"--size", "0.5"}, {"--inodes", "0.5"}, {"--ttl", "0.1ns"}, {"--idle", "-0s"}, {"--size", "NaN"}} {
		code, stdout, stderr := runSpoolfs(t, append([]string{"session", "new", m.Dir}, args...)...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != 2 || len(lines) != 1 || !strings.Contains(lines[0], args[0]) {
			t.Errorf("session new %q: exit %d, stdout %q, stderr %q; want exit 2 and one line naming %s", args, code, stdout, stderr, args[0])
		}
	}
	if entries, _ := os.ReadDir(m.Dir); len(entries) != 0 {
		t.Errorf("refused 'session new' left %d sessions", len(entries))
	}

	s := filepath.Join(m.Dir, "s")
	if err := os.Mkdir(s, 0o755); err != nil {
		t.Fatal(err)
	}
	bad := map[string][]string{
		"ttl":    {"0.1ns", "0.9ns", "-0s", "NaN", "Inf", "1e3h", "9999999999h", "", " "},
		"idle":   {"0.5ns", "-0s", "NaNh", "", "\t"},
		"size":   {"0.5", "1.5", "-0", "NaN", "Inf", "1e400", "0x10", "99999999999999999999", "", " \n"},
		"inodes": {"0.5", "-0", "+Inf", ""},
	}
	for name, values := range bad {
		attr, good := control.Prefix+name, "4096"
		if name == "ttl" || name == "idle" {
			good = "1h"
		}
		if err := unix.Setxattr(s, attr, []byte(good), 0); err != nil {
			t.Fatalf("setting %s: %v", attr, err)
		}
		before := make([]byte, 64)
		n, _ := unix.Getxattr(s, attr, before)
		for _, v := range values {
			wantErrno(t, unix.Setxattr(s, attr, []byte(v), 0), syscall.EINVAL, attr+"="+v)
			got := make([]byte, 64)
			if k, err := unix.Getxattr(s, attr, got); err != nil || string(got[:k]) != string(before[:n]) {
				t.Errorf("%s after a refused %q: %q, %v; want %q", attr, v, got[:k], err, before[:n])
			}
		}
	}
}

// TestSessionRmWaits: 'session rm' returns once the session is gone and its
// space free.
func TestSessionRmWaits(t *testing.T) {
	sessFastExit(t)
	m := mountBinary(t, "--size", "64MiB")
	d := sessNew(t, m.Dir)
	sh(t, d, "dd if=/dev/zero of=data bs=1M count=4 status=none && mkdir sub && echo x > sub/y")
	if st := sessStatus(t, m.Dir); st.Mount.Used != 4<<20+4096 {
		t.Fatalf("used %d before rm", st.Mount.Used)
	}
	sessCLI(t, "session", "rm", d)
	if !sessGone(d) {
		t.Fatal("session rm returned while the session is still there")
	}
	if st := sessStatus(t, m.Dir); st.Mount.Used != 0 || st.Mount.Sessions != 0 || len(st.Sessions) != 0 {
		t.Errorf("status right after session rm: %+v, %d sessions listed", *st.Mount, len(st.Sessions))
	}
	if code, _, stderr := runSpoolfs(t, "session", "rm", m.Dir); code == 0 || !strings.Contains(stderr, "not a spoolfs session") {
		t.Errorf("session rm of the mount root: exit %d, %s", code, stderr)
	}
}

// sessOpenDirs makes dir and its parent reachable by other users.
func sessOpenDirs(t testing.TB, dir string) {
	t.Helper()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// sessPublicBinary copies the spoolfs binary where any user may run it.
func sessPublicBinary(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	sessOpenDirs(t, dir)
	src, err := os.Open(spoolfsBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	p := filepath.Join(dir, "spoolfs")
	dst, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// sessChildren lists pid's children.
func sessChildren(t testing.TB, pid int) []int {
	t.Helper()
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var kids []int
	for _, f := range tasks {
		data, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(data)) {
			n, _ := strconv.Atoi(s)
			kids = append(kids, n)
		}
	}
	return kids
}

// sessOnlyChild is pid's one child.
func sessOnlyChild(t testing.TB, pid int) int {
	t.Helper()
	kids := sessChildren(t, pid)
	if len(kids) != 1 {
		t.Fatalf("pid %d has children %v, want one", pid, kids)
	}
	return kids[0]
}

// sessNSpid is the last NSpid of pid: its number in its own namespace.
func sessNSpid(t testing.TB, pid int) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(l, "NSpid:"); ok {
			f := strings.Fields(rest)
			n, _ := strconv.Atoi(f[len(f)-1])
			return n
		}
	}
	t.Fatalf("no NSpid for %d", pid)
	return 0
}

// sessInner runs inside the namespaces: it sees the mount only through a
// bind mount, makes a session owned by its own shell ($$), lists, then
// shows one session alone through a second bind mount, and waits.
const sessInner = `set -e
B="$WORK/bind"; O="$WORK/only"
mkdir -p "$B" "$O"
mount --bind "$MOUNT" "$B"
if [ "$ASUSER" = 1 ]; then
	d=$(setpriv --reuid=1000 --regid=1000 --clear-groups "$SPOOLFS" session new "$B" --pid $$ --size 4MiB)
	setpriv --reuid=1000 --regid=1000 --clear-groups sh -c 'echo hello > "$1/by-user" && mkdir "$1/sub" && dd if=/dev/zero of="$1/sub/blob" bs=64k count=4 status=none' sh "$d"
else
	d=$("$SPOOLFS" session new "$B" --pid $$ --size 4MiB)
	echo hello > "$d/by-root"; mkdir "$d/sub"; dd if=/dev/zero of="$d/sub/blob" bs=64k count=4 status=none
fi
echo "SESSION $d"
echo "SHELL $$"
echo LS; "$SPOOLFS" session ls "$B" --json; echo END
"$SPOOLFS" session ls "$B"; echo END
mount --bind "$d" "$O"
echo ONLY_LS; "$SPOOLFS" session ls "$O" --json; echo END
echo ONLY_STATUS; "$SPOOLFS" status "$O" --json; echo END
"$SPOOLFS" status "$O"; echo END
echo READY
read x < "$FIFO"
`

// TestSessionNamespaces: the CLI inside a container (mount and PID
// namespaces, with or without a user namespace) that sees the mount only
// through a bind mount, or one session only.
func TestSessionNamespaces(t *testing.T) {
	sessFastExit(t)
	m := mountBinary(t)
	bin := sessPublicBinary(t)
	cases := []struct {
		name    string
		unshare []string
		asUser  bool // make the session and its files as uid 1000
		nested  bool // the owner shell is not the namespace's PID 1
	}{
		{"pidns", []string{"--mount", "--pid", "--fork", "--kill-child", "--mount-proc"}, true, false},
		{"pidns-nested", []string{"--mount", "--pid", "--fork", "--kill-child", "--mount-proc"}, true, true},
		{"userns", []string{"--user", "--map-root-user", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc"}, false, false},
		{"userns-nested", []string{"--user", "--map-root-user", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc"}, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := sessStatus(t, m.Dir).Mount // what earlier cases may have left
			work := t.TempDir()
			sessOpenDirs(t, work)
			inner := filepath.Join(work, "inner.sh")
			writeFile(t, inner, []byte(sessInner))
			fifo, fifo2 := sessFifo(t, work, "fifo"), sessFifo(t, work, "fifo2")
			asUser := "0"
			if c.asUser {
				asUser = "1"
			}
			env := []string{"SPOOLFS=" + bin, "MOUNT=" + m.Dir, "WORK=" + work, "FIFO=" + fifo, "FIFO2=" + fifo2, "ASUSER=" + asUser}
			argv := append([]string{"unshare"}, c.unshare...)
			if c.nested {
				argv = append(argv, "sh", "-c", `sh "$0"; echo "INNER_EXITED $?"; read x < "$FIFO2"`, inner)
			} else {
				argv = append(argv, "sh", inner)
			}
			s := startCommand(t, env, argv...)

			var d string
			var nsShell int
			sections := map[string][]string{}
			for {
				l := s.next()
				if rest, ok := strings.CutPrefix(l, "SESSION "); ok {
					d = rest
					continue
				}
				if rest, ok := strings.CutPrefix(l, "SHELL "); ok {
					nsShell, _ = strconv.Atoi(rest)
					continue
				}
				if l == "READY" {
					break
				}
				if l == "LS" || l == "ONLY_LS" || l == "ONLY_STATUS" {
					sections[l] = s.until("END")
					continue
				}
				sections["text"] = append(sections["text"], l)
				sections["text"] = append(sections["text"], s.until("END")...)
			}
			name := filepath.Base(d)
			outside := filepath.Join(m.Dir, name)

			// The owner is the shell that ran 'session new --pid $$', as
			// the daemon sees it.
			pid1 := sessOnlyChild(t, s.cmd.Process.Pid)
			shell := pid1
			if c.nested {
				shell = sessOnlyChild(t, pid1)
			}
			if got := sessNSpid(t, shell); got != nsShell {
				t.Fatalf("found the shell %d whose own pid is %d, but $$ said %d", shell, got, nsShell)
			}
			info := sessFind(sessLs(t, m.Dir), name)
			if info == nil {
				t.Fatalf("session %s not listed outside", name)
			}
			if info.PID != shell {
				t.Errorf("session owned by pid %d, want the inner shell: %d ($$ = %d inside)", info.PID, shell, nsShell)
			}
			wantUID := uint32(0)
			if c.asUser {
				wantUID = 1000
			}
			const wantBytes = 4096 + 256<<10
			if info.Owner != wantUID || info.Size != 4<<20 || info.Usage.Bytes != wantBytes || info.Reason != "none" {
				t.Errorf("session seen from outside: %+v", *info)
			}

			var inLs []control.SessionInfo
			if err := json.Unmarshal([]byte(strings.Join(sections["LS"], "\n")), &inLs); err != nil {
				t.Fatalf("session ls --json inside: %v\n%s", err, sections["LS"])
			}
			if got := sessFind(inLs, name); got == nil || got.PID != shell || got.Usage.Bytes != wantBytes {
				t.Errorf("session ls inside: %+v", inLs)
			}
			if text := strings.Join(sections["text"], "\n"); !strings.Contains(text, name) || !strings.Contains(text, "NAME") {
				t.Errorf("session ls inside (text):\n%s", text)
			}
			var only []control.SessionInfo
			if err := json.Unmarshal([]byte(strings.Join(sections["ONLY_LS"], "\n")), &only); err != nil {
				t.Fatalf("session ls --json of one bound session: %v\n%s", err, sections["ONLY_LS"])
			}
			if len(only) != 1 || only[0].Usage.Bytes != wantBytes || only[0].PID != shell || only[0].Owner != wantUID {
				t.Errorf("session ls of one bound session: %+v; want exactly that session", only)
			}
			var st control.StatusReport
			if err := json.Unmarshal([]byte(strings.Join(sections["ONLY_STATUS"], "\n")), &st); err != nil {
				t.Fatalf("status --json of one bound session: %v\n%s", err, sections["ONLY_STATUS"])
			}
			if st.Mount != nil || len(st.Sessions) != 1 || st.Sessions[0].Usage.Bytes != wantBytes {
				t.Errorf("status of one bound session: mount %+v, sessions %+v; want only that session", st.Mount, st.Sessions)
			}

			// Alive as long as its shell is.
			if sessGone(outside) {
				t.Fatal("the session ended while its shell lives")
			}
			sessRelease(t, fifo)
			if c.nested {
				if l := s.next(); l != "INNER_EXITED 0" {
					t.Fatalf("inner shell: %q; stderr:\n%s", l, s.stderr.String())
				}
				// The namespace lives on (its PID 1 waits on FIFO2): the
				// session ends because its owner exited.
				waitFor(t, 15*time.Second, "the session to end after its shell exited", func() bool { return sessGone(outside) })
				if syscall.Kill(pid1, 0) != nil {
					t.Error("the namespace's init is gone too: the test proves less than it should")
				}
				sessRelease(t, fifo2)
			}
			s.wait()
			waitFor(t, 15*time.Second, "the session to end after its shell exited", func() bool { return sessGone(outside) })
			waitFor(t, 15*time.Second, "used back to where it was", func() bool {
				st := sessStatus(t, m.Dir)
				return st.Mount.Used == base.Used && st.Mount.Sessions == base.Sessions
			})
		})
	}
}

// TestSessionUsageHardLinks: user.spoolfs.usage counts a file's bytes once,
// however many names it has; with four links to a 4 MiB file, usage once
// said ram 16 MiB of 4 MiB used (issue #10).
func TestSessionUsageHardLinks(t *testing.T) {
	tiers(t, func(t *testing.T, o mountOpts) {
		m := newMount(t, o)
		dir := m.path("s")
		mkdirs(t, dir)
		const size = 4 << 20
		f := filepath.Join(dir, "f")
		writeFile(t, f, randBytes(4, size))
		for i := range 3 {
			if err := os.Link(f, fmt.Sprintf("%s%d", f, i)); err != nil {
				t.Fatal(err)
			}
		}
		var u control.SessionUsage
		if err := json.Unmarshal([]byte(getx(t, dir, control.AttrUsage)), &u); err != nil {
			t.Fatal(err)
		}
		wantRAM, wantDisk := int64(size), int64(0)
		if o.threshold == 0 {
			wantRAM, wantDisk = 0, size
		}
		if u.Bytes != size || u.RAM != wantRAM || u.Disk != wantDisk {
			t.Errorf("usage of a %d-byte file with 4 names: %+v; want ram %d, disk %d", size, u, wantRAM, wantDisk)
		}
	})
}
