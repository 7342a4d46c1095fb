package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Where the daemon's log goes (logConfig.open):
//
//   - --log-file, if given, wherever the daemon runs;
//   - in the foreground, stderr: the admin's terminal, or systemd's
//     journal, which then gets each line's priority through its native
//     protocol (JOURNAL_STREAM names stderr);
//   - in the background, where stderr is /dev/null, the journal if its
//     socket is there, else syslog, else nowhere, which 'spoolfs mount'
//     says before it returns.
//
// The sockets can be moved (a container's, a test's) with these variables.
const (
	journalSocketEnv = "SPOOLFS_JOURNAL_SOCKET"
	syslogSocketEnv  = "SPOOLFS_SYSLOG_SOCKET"
)

// logConfig is the log flags of a mount.
type logConfig struct {
	file   string // --log-file: "" for the default destination
	level  logLevel
	format logFormat
}

// logLevel is --log-level: the least severe level logged.
type logLevel slog.Level

var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
}

func (l *logLevel) Type() string { return "level" }

func (l *logLevel) String() string { return strings.ToLower(slog.Level(*l).String()) }

func (l *logLevel) Set(s string) error {
	level, ok := logLevels[strings.ToLower(s)]
	if s == "warning" {
		level, ok = slog.LevelWarn, true
	}
	if !ok {
		return fmt.Errorf("%q: want debug, info, warn or error", s)
	}
	*l = logLevel(level)
	return nil
}

// logFormat is --log-format: text (key=value) or json, one record a line.
type logFormat string

func (f *logFormat) Type() string   { return "format" }
func (f *logFormat) String() string { return string(*f) }

func (f *logFormat) Set(s string) error {
	if s != "text" && s != "json" {
		return fmt.Errorf("%q: want text or json", s)
	}
	*f = logFormat(s)
	return nil
}

// handler formats records for w at the configured level. withoutStamp
// leaves out the time and the level, for a journal or syslog that records
// them itself.
func (c *logConfig) handler(w io.Writer, withoutStamp bool) slog.Handler {
	opts := &slog.HandlerOptions{Level: slog.Level(c.level)}
	if withoutStamp {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
				return slog.Attr{}
			}
			return a
		}
	}
	if c.format == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// openLogFile opens --log-file to append to, making it 0600 if it is not
// there: session names may be private. A symlink is refused, so that
// nobody who can write its directory can send root's log elsewhere, and
// so is anything but a regular file (a FIFO would block the daemon).
func openLogFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("--log-file %s: a symlink; name the file itself", path)
		}
		return nil, fmt.Errorf("--log-file %s: %v", path, errors.Unwrap(err))
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("--log-file %s: not a regular file", path)
	}
	return f, nil
}

// open makes the logger of a mount, and what to close once it is done
// with. daemon says that stderr is about to become /dev/null.
func (c *logConfig) open(stderr io.Writer, daemon bool) (*slog.Logger, func(), error) {
	if c.file != "" {
		f, err := openLogFile(c.file)
		if err != nil {
			return nil, nil, err
		}
		return slog.New(c.handler(f, false)), func() { f.Close() }, nil
	}
	// In the background: the journal, else syslog, the first that answers.
	// In the foreground, the journal only where systemd made it stderr.
	type socket struct {
		path   string
		encode func(*bytes.Buffer, slog.Level, []byte)
	}
	var sockets []socket
	if daemon || stderrIsJournal() {
		sockets = append(sockets, socket{journalSocket(), journalEntry})
	}
	if p := syslogSocket(); daemon && p != "" {
		sockets = append(sockets, socket{p, syslogLine})
	}
	for _, s := range sockets {
		if sink, err := dialSink(s.path, s.encode); err == nil {
			return slog.New(c.sinkHandler(sink)), sink.close, nil
		}
	}
	if daemon {
		return slog.New(slog.DiscardHandler), func() {}, nil
	}
	return slog.New(c.handler(stderr, false)), func() {}, nil
}

// daemonLogTarget says where a daemon with no --log-file logs: "the
// journal", "syslog", or "" for nowhere.
func daemonLogTarget() string {
	switch {
	case isSocket(journalSocket()):
		return "the journal"
	case syslogSocket() != "":
		return "syslog"
	}
	return ""
}

func journalSocket() string {
	if p := os.Getenv(journalSocketEnv); p != "" {
		return p
	}
	return "/run/systemd/journal/socket"
}

// syslogSocket is the local syslog socket, or "" if there is none.
func syslogSocket() string {
	candidates := []string{"/dev/log", "/var/run/syslog", "/var/run/log"} // Linux, macOS, FreeBSD
	if p := os.Getenv(syslogSocketEnv); p != "" {
		candidates = []string{p}
	}
	for _, p := range candidates {
		if isSocket(p) {
			return p
		}
	}
	return ""
}

func isSocket(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().Type() == os.ModeSocket
}

// stderrIsJournal says whether systemd connected stderr to the journal, as
// systemd.exec(5) tells a service to find out.
func stderrIsJournal() bool {
	want := os.Getenv("JOURNAL_STREAM")
	if want == "" {
		return false
	}
	var st syscall.Stat_t
	if syscall.Fstat(2, &st) != nil {
		return false
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino) == want
}

// sinkHandler formats records as c says, without time and level, and
// sends each to sink.
func (c *logConfig) sinkHandler(sink *datagramSink) slog.Handler {
	shared := &sinkShared{sink: sink}
	return sinkHandler{c.handler(&shared.buf, true), shared}
}

type sinkHandler struct {
	slog.Handler // formats into shared.buf
	shared       *sinkShared
}

// sinkShared is what a handler and those made from it (WithAttrs) share.
type sinkShared struct {
	mu   sync.Mutex
	buf  bytes.Buffer // guarded by mu, as is sink
	sink *datagramSink
}

func (h sinkHandler) Handle(ctx context.Context, r slog.Record) error {
	h.shared.mu.Lock()
	defer h.shared.mu.Unlock()
	h.shared.buf.Reset()
	if err := h.Handler.Handle(ctx, r); err != nil {
		return err
	}
	return h.shared.sink.send(r.Level, bytes.TrimSuffix(h.shared.buf.Bytes(), []byte("\n")))
}

func (h sinkHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return sinkHandler{h.Handler.WithAttrs(attrs), h.shared}
}

func (h sinkHandler) WithGroup(name string) slog.Handler {
	return sinkHandler{h.Handler.WithGroup(name), h.shared}
}

// datagramSink sends each line to a local datagram socket, the journal's
// or syslog's, in the form that encode writes.
type datagramSink struct {
	path   string
	encode func(msg *bytes.Buffer, level slog.Level, line []byte)
	conn   *net.UnixConn // nil after a failure, until the next send redials
	msg    bytes.Buffer
}

// sendTimeout bounds how long a log line may hold up the filesystem when
// the journal or syslog does not read: the line is dropped instead.
const sendTimeout = time.Second

func dialSink(path string, encode func(*bytes.Buffer, slog.Level, []byte)) (*datagramSink, error) {
	s := &datagramSink{path: path, encode: encode}
	return s, s.dial()
}

func (s *datagramSink) dial() error {
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: s.path, Net: "unixgram"})
	s.conn = conn
	return err
}

func (s *datagramSink) send(level slog.Level, line []byte) error {
	if s.conn == nil { // the journal or syslog restarted since the last line
		if err := s.dial(); err != nil {
			return err
		}
	}
	s.msg.Reset()
	s.encode(&s.msg, level, line)
	s.conn.SetWriteDeadline(time.Now().Add(sendTimeout))
	if _, err := s.conn.Write(s.msg.Bytes()); err != nil {
		s.conn.Close()
		s.conn = nil
		return err
	}
	return nil
}

func (s *datagramSink) close() {
	if s.conn != nil {
		s.conn.Close()
	}
}

// journalEntry is the journal's native protocol
// (systemd.journal-fields(7), "Native Journal Protocol").
func journalEntry(msg *bytes.Buffer, level slog.Level, line []byte) {
	journalField(msg, "PRIORITY", []byte(strconv.Itoa(severity(level))))
	journalField(msg, "SYSLOG_IDENTIFIER", []byte("spoolfs"))
	journalField(msg, "MESSAGE", line)
}

// journalField adds KEY=value, or the binary form for a value with a
// newline, which could otherwise forge a field.
func journalField(msg *bytes.Buffer, key string, value []byte) {
	msg.WriteString(key)
	if bytes.IndexByte(value, '\n') < 0 {
		msg.WriteByte('=')
	} else {
		msg.WriteByte('\n')
		msg.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(value))))
	}
	msg.Write(value)
	msg.WriteByte('\n')
}

// syslogFacilityDaemon is syslog's facility for system daemons (RFC 5424).
const syslogFacilityDaemon = 3 << 3

// syslogLine is a message to the local syslog, as syslog(3) sends it:
// <priority>time tag[pid]: message.
func syslogLine(msg *bytes.Buffer, level slog.Level, line []byte) {
	fmt.Fprintf(msg, "<%d>%s spoolfs[%d]: ", syslogFacilityDaemon|severity(level), time.Now().Format(time.Stamp), os.Getpid())
	msg.Write(line)
}

// severity is the syslog severity of a level, which the journal's
// PRIORITY uses too.
func severity(level slog.Level) int {
	switch {
	case level >= slog.LevelError:
		return 3 // err
	case level >= slog.LevelWarn:
		return 4 // warning
	case level >= slog.LevelInfo:
		return 6 // info
	}
	return 7 // debug
}
