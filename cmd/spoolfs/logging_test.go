package main

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLogLevelAndFormatValues(t *testing.T) {
	var l logLevel
	for in, want := range map[string]slog.Level{"debug": slog.LevelDebug, "INFO": slog.LevelInfo, "warn": slog.LevelWarn, "warning": slog.LevelWarn, "error": slog.LevelError} {
		if err := l.Set(in); err != nil || slog.Level(l) != want {
			t.Errorf("--log-level %s: %v, %v; want %v", in, slog.Level(l), err, want)
		}
	}
	for _, bad := range []string{"", "loud", "INFO+2", "-4", "trace"} {
		if err := l.Set(bad); err == nil {
			t.Errorf("--log-level %q accepted", bad)
		}
	}
	var f logFormat
	for _, bad := range []string{"", "xml", "JSON "} {
		if err := f.Set(bad); err == nil {
			t.Errorf("--log-format %q accepted", bad)
		}
	}
}

// TestJournalFields: a value with a newline takes the protocol's binary
// form, so that it cannot forge a field of its own.
func TestJournalFields(t *testing.T) {
	var msg bytes.Buffer
	journalField(&msg, "MESSAGE", []byte("a=b"))
	journalField(&msg, "MESSAGE", []byte("two\nPRIORITY=0"))
	var want bytes.Buffer
	want.WriteString("MESSAGE=a=b\nMESSAGE\n")
	want.Write(binary.LittleEndian.AppendUint64(nil, 14))
	want.WriteString("two\nPRIORITY=0\n")
	if !bytes.Equal(msg.Bytes(), want.Bytes()) {
		t.Errorf("fields %q, want %q", msg.Bytes(), want.Bytes())
	}
}

// TestSinkHandler: the journal gets the record without time and level (it
// keeps its own), attributes added with With, and the priority.
func TestSinkHandler(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "journal")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sink, err := dialSink(sock, journalEntry)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.close()
	c := logConfig{level: logLevel(slog.LevelInfo), format: "json"}
	logger := slog.New(c.sinkHandler(sink)).With("dir", "/mnt")
	logger.Debug("not sent")
	logger.Warn("session ended", "session", "s1")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	want := "PRIORITY=4\nSYSLOG_IDENTIFIER=spoolfs\n" + `MESSAGE={"msg":"session ended","dir":"/mnt","session":"s1"}` + "\n"
	if got := string(buf[:n]); got != want {
		t.Errorf("sent %q, want %q", got, want)
	}
}

// TestDaemonLogTarget: the journal before syslog, and nothing when neither
// socket is there; a plain file is no socket.
func TestDaemonLogTarget(t *testing.T) {
	dir := t.TempDir()
	listen := func(name string) string {
		p := filepath.Join(dir, name)
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return p
	}
	journal, syslog, plain := listen("journal"), listen("syslog"), filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ journal, syslog, want string }{
		{journal, syslog, "the journal"},
		{plain, syslog, "syslog"},
		{plain, plain, ""},
		{filepath.Join(dir, "none"), filepath.Join(dir, "none"), ""},
	}
	for _, c := range cases {
		t.Setenv(journalSocketEnv, c.journal)
		t.Setenv(syslogSocketEnv, c.syslog)
		if got := daemonLogTarget(); got != c.want {
			t.Errorf("journal %s, syslog %s: %q, want %q", filepath.Base(c.journal), filepath.Base(c.syslog), got, c.want)
		}
	}
}

// TestOpenLogFile: an existing file is appended to, never truncated, and
// never opened through a symlink.
func TestOpenLogFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "log")
	if err := os.WriteFile(p, []byte("old\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	f, err := openLogFile(p)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("new\n")
	f.Close()
	if got, _ := os.ReadFile(p); string(got) != "old\nnew\n" {
		t.Errorf("log file holds %q, want the old line kept", got)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	if _, err := openLogFile(link); err == nil || !strings.Contains(err.Error(), "--log-file") {
		t.Errorf("a symlink: %v, want an error naming --log-file", err)
	}
}
