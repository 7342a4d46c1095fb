package fusetest

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Watcher is an inotify instance of a test: what a program that watches a
// mount with inotify(7) would see.
type Watcher struct {
	t      testing.TB
	fd     int
	paths  map[int32]string // watch descriptor -> the path it watches
	events []Event          // read but not yet expected
}

// Event is one inotify event.
type Event struct {
	Path string // the path of the watch it came on
	Mask uint32
	Name string // the entry's name, for events on a directory's entries
}

func (e Event) String() string {
	return fmt.Sprintf("%s %q on %s", maskNames(e.Mask), e.Name, e.Path)
}

// Watch starts an inotify instance; Cleanup closes it.
func Watch(t testing.TB) *Watcher {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatalf("inotify_init1: %v", err)
	}
	w := &Watcher{t: t, fd: fd, paths: make(map[int32]string)}
	t.Cleanup(func() { unix.Close(fd) })
	return w
}

// Add watches path for every event.
func (w *Watcher) Add(path string) {
	w.t.Helper()
	wd, err := unix.InotifyAddWatch(w.fd, path, unix.IN_ALL_EVENTS)
	if err != nil {
		w.t.Fatalf("inotify_add_watch %s: %v", path, err)
	}
	w.paths[int32(wd)] = path
}

// Expect waits up to timeout for an event on the watch of path whose mask
// has every bit of mask and whose name is name, and fails the test, listing
// what came instead, if none does. The event is taken off the list; those
// before and after it stay, so that expectations need not follow the
// order in which events came.
func (w *Watcher) Expect(path string, mask uint32, name string, timeout time.Duration) {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for i, e := range w.events {
			if e.Path == path && e.Mask&mask == mask && e.Name == name {
				w.events = append(w.events[:i], w.events[i+1:]...)
				return
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			var seen []string
			for _, e := range w.events {
				seen = append(seen, e.String())
			}
			w.t.Fatalf("no %s %q on %s within %v; seen: [%s]", maskNames(mask), name, path, timeout, strings.Join(seen, ", "))
		}
		w.read(left)
	}
}

// Events returns the events not yet expected, after reading what arrives
// within wait.
func (w *Watcher) Events(wait time.Duration) []Event {
	w.t.Helper()
	w.read(wait)
	return w.events
}

// read adds what arrives within timeout to w.events.
func (w *Watcher) read(timeout time.Duration) {
	w.t.Helper()
	fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
	ms := int(min(timeout, time.Second)/time.Millisecond) + 1
	if _, err := unix.Poll(fds, ms); err != nil && err != unix.EINTR {
		w.t.Fatalf("poll inotify: %v", err)
	}
	buf := make([]byte, 64<<10)
	n, err := unix.Read(w.fd, buf)
	if err == unix.EAGAIN || err == unix.EINTR {
		return
	}
	if err != nil {
		w.t.Fatalf("read inotify: %v", err)
	}
	for off := 0; off+unix.SizeofInotifyEvent <= n; {
		raw := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		nameBytes := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(raw.Len)]
		w.events = append(w.events, Event{
			Path: w.paths[raw.Wd],
			Mask: raw.Mask,
			Name: string(bytes.TrimRight(nameBytes, "\x00")),
		})
		off += unix.SizeofInotifyEvent + int(raw.Len)
	}
}

var maskBits = []struct {
	bit  uint32
	name string
}{
	{unix.IN_ACCESS, "IN_ACCESS"}, {unix.IN_MODIFY, "IN_MODIFY"}, {unix.IN_ATTRIB, "IN_ATTRIB"},
	{unix.IN_CLOSE_WRITE, "IN_CLOSE_WRITE"}, {unix.IN_CLOSE_NOWRITE, "IN_CLOSE_NOWRITE"},
	{unix.IN_OPEN, "IN_OPEN"}, {unix.IN_MOVED_FROM, "IN_MOVED_FROM"}, {unix.IN_MOVED_TO, "IN_MOVED_TO"},
	{unix.IN_CREATE, "IN_CREATE"}, {unix.IN_DELETE, "IN_DELETE"}, {unix.IN_DELETE_SELF, "IN_DELETE_SELF"},
	{unix.IN_MOVE_SELF, "IN_MOVE_SELF"}, {unix.IN_UNMOUNT, "IN_UNMOUNT"}, {unix.IN_Q_OVERFLOW, "IN_Q_OVERFLOW"},
	{unix.IN_IGNORED, "IN_IGNORED"}, {unix.IN_ISDIR, "IN_ISDIR"},
}

func maskNames(mask uint32) string {
	var names []string
	for _, b := range maskBits {
		if mask&b.bit != 0 {
			names = append(names, b.name)
		}
	}
	if len(names) == 0 {
		return fmt.Sprintf("%#x", mask)
	}
	return strings.Join(names, "|")
}
