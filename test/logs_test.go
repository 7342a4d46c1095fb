package test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The daemon's logs reach the admin wherever it runs: each test here ends
// a session ('spoolfs session rm', logged at info level as "session ended")
// and reads that line from one destination. The journal and syslog are
// datagram sockets of the test's own, which SPOOLFS_JOURNAL_SOCKET and
// SPOOLFS_SYSLOG_SOCKET point the daemon at.

// endSession makes the session name in the mount at dir and ends it at once.
func endSession(t *testing.T, dir, name string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	sessCLI(t, "session", "rm", p)
}

// waitMessage returns the first datagram that holds every one of want.
func waitMessage(t *testing.T, messages <-chan string, want ...string) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case m, ok := <-messages:
			if !ok {
				t.Fatalf("socket closed before a message with %q", want)
			}
			if containsAll(m, want) {
				return m
			}
		case <-deadline:
			t.Fatalf("no message with %q within 30s", want)
		}
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// unmountAndWait unmounts m with 'spoolfs umount' and waits for the daemon
// to exit, by when it has written every line it will write.
func unmountAndWait(t *testing.T, m *binaryMount) {
	t.Helper()
	if code, _, stderr := runSpoolfs(t, "umount", m.Dir); code != 0 {
		t.Fatalf("umount: exit %d: %s", code, stderr)
	}
	m.waitGone(t)
}

// TestLogToJournal: a daemon in the background logs to the journal in its
// native protocol, with the priority of each line and its own identifier.
func TestLogToJournal(t *testing.T) {
	journal := listenNotify(t) // a datagram socket, as journald's is
	t.Setenv("SPOOLFS_JOURNAL_SOCKET", journal.sock)
	t.Setenv("SPOOLFS_SYSLOG_SOCKET", filepath.Join(t.TempDir(), "none"))
	m := mountBinary(t)
	endSession(t, m.Dir, "build-42")
	msg := waitMessage(t, journal.messages, "session ended")
	fields := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(msg, "\n"), "\n") {
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("journal entry has a field without '=': %q in\n%s", line, msg)
		}
		fields[key] = value
	}
	if fields["PRIORITY"] != "6" || fields["SYSLOG_IDENTIFIER"] != "spoolfs" {
		t.Errorf("journal entry %q: want PRIORITY=6 (info) and SYSLOG_IDENTIFIER=spoolfs", msg)
	}
	if !containsAll(fields["MESSAGE"], []string{"session=build-42", "reason=removed"}) {
		t.Errorf("MESSAGE=%q does not name the session and why it ended", fields["MESSAGE"])
	}
}

// TestLogToSyslog: with no journal, a daemon in the background logs to
// syslog, facility daemon.
func TestLogToSyslog(t *testing.T) {
	syslog := listenNotify(t)
	t.Setenv("SPOOLFS_JOURNAL_SOCKET", filepath.Join(t.TempDir(), "none"))
	t.Setenv("SPOOLFS_SYSLOG_SOCKET", syslog.sock)
	m := mountBinary(t)
	endSession(t, m.Dir, "build-43")
	msg := waitMessage(t, syslog.messages, "session ended")
	// <daemon.info> = <3*8+6>, then the time, "spoolfs[PID]: " and the line.
	if !strings.HasPrefix(msg, "<30>") || !containsAll(msg, []string{"spoolfs[", "session=build-43", "reason=removed"}) {
		t.Errorf("syslog message %q: want <30> (daemon.info), spoolfs[PID] and the session", msg)
	}
}

// TestLogFile: --log-file is created 0600 (session names may be private),
// is appended to, never truncated, by the next mount, and gets the lines in
// text by default.
func TestLogFile(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "spoolfs.log")
	m := mountBinary(t, "--log-file", logFile)
	endSession(t, m.Dir, "first")
	unmountAndWait(t, m)
	st, err := os.Stat(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("log file made with mode %v, want 0600", st.Mode().Perm())
	}
	first := string(readFile(t, logFile))
	if !containsAll(first, []string{"level=INFO", `msg="session ended"`, "session=first"}) {
		t.Fatalf("log file has no session end:\n%s", first)
	}

	m = mountBinary(t, "-o", "log_file="+logFile)
	endSession(t, m.Dir, "second")
	unmountAndWait(t, m)
	both := string(readFile(t, logFile))
	if !strings.HasPrefix(both, first) || !strings.Contains(both[len(first):], "session=second") {
		t.Errorf("the second mount did not append to the log:\n%s", both)
	}
}

// TestLogLevelAndFormat: --log-format json writes one JSON object a line
// with time, level and msg; --log-level debug adds refusals, which info
// leaves out; warn leaves out session ends.
func TestLogLevelAndFormat(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "debug.log")
	m := mountBinary(t, "--log-file", logFile, "--log-format", "json", "--log-level", "debug", "--session-size", "64KiB")
	p := filepath.Join(m.Dir, "small")
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	err := os.WriteFile(filepath.Join(p, "f"), make([]byte, 128<<10), 0o644)
	if !errors.Is(err, syscall.EDQUOT) {
		t.Fatalf("writing 128KiB into a 64KiB session: %v, want EDQUOT", err)
	}
	sessCLI(t, "session", "rm", p)
	unmountAndWait(t, m)
	var ended, refused bool
	for _, line := range strings.Split(strings.TrimSpace(string(readFile(t, logFile))), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a line of JSON: %q: %v", line, err)
		}
		for _, key := range []string{"time", "level", "msg"} {
			if _, ok := rec[key]; !ok {
				t.Errorf("line %q has no %q", line, key)
			}
		}
		ended = ended || rec["msg"] == "session ended" && rec["session"] == "small" && rec["level"] == "INFO"
		refused = refused || rec["msg"] == "refused" && rec["errno"] == "disk quota exceeded" && rec["level"] == "DEBUG"
	}
	if !ended || !refused {
		t.Errorf("session end logged: %v, EDQUOT logged at debug: %v; want both", ended, refused)
	}

	quiet := filepath.Join(t.TempDir(), "warn.log")
	m = mountBinary(t, "--log-file", quiet, "--log-level", "warn")
	endSession(t, m.Dir, "hidden")
	unmountAndWait(t, m)
	if log := string(readFile(t, quiet)); log != "" {
		t.Errorf("--log-level warn logged what is not a warning:\n%s", log)
	}
}

// TestLogBadValues: a bad log flag is one line naming it, exit 2, nothing
// mounted, and no file made.
func TestLogBadValues(t *testing.T) {
	requireFUSE(t)
	dir, spillDir := t.TempDir(), t.TempDir()
	target := filepath.Join(t.TempDir(), "target")
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ flag, value string }{
		{"--log-level", "loud"},
		{"--log-format", "xml"},
		{"--log-file", filepath.Join(t.TempDir(), "no", "such", "dir", "log")},
		{"--log-file", t.TempDir()},         // a directory
		{"--log-file", link},                // a symlink another user could have planted
		{"--log-file", "/proc/spoolfs.log"}, // unwritable, for root too
		{"-o log_level", "log_level=loud"},
	}
	for _, c := range cases {
		args := []string{"mount", "--spill-dir", spillDir, c.flag, c.value, dir}
		if strings.HasPrefix(c.flag, "-o") {
			args = []string{"mount", "--spill-dir", spillDir, "-o", c.value, dir}
		}
		t.Run(c.flag+" "+c.value, func(t *testing.T) { wantRefused(t, dir, c.flag, args...) })
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused --log-file made %s through a symlink: %v", target, err)
	}
}
