package proc

import (
	"sync"

	"golang.org/x/sys/unix"
)

// Watcher calls back when watched processes exit. On Linux it holds a
// pidfd per process (immune to PID reuse) in one epoll set served by one
// goroutine; where pidfds are missing or descriptors run out it polls.
type Watcher struct {
	mu      sync.Mutex
	epfd    int // -1 until first use
	next    uint64
	watches map[uint64]*pidWatch
	poller  *poller
}

type pidWatch struct {
	fd     int
	onExit func()
}

// NewWatcher returns a Watcher with no watches; it starts a goroutine on
// the first.
func NewWatcher() *Watcher {
	return &Watcher{epfd: -1, watches: make(map[uint64]*pidWatch), poller: newPoller()}
}

// Watch calls onExit once, from the Watcher's goroutine, when pid exits,
// unless stop is called first. It fails with ESRCH if pid is gone.
func (w *Watcher) Watch(pid int, onExit func()) (stop func(), err error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if err == unix.ESRCH {
			return nil, err
		}
		return w.poller.watch(pid, onExit) // ENOSYS, EMFILE: fall back
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.epfd < 0 {
		if w.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
			unix.Close(fd)
			return nil, err
		}
		go w.loop(w.epfd)
	}
	w.next++
	id := w.next
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT}
	ev.Fd, ev.Pad = int32(uint32(id)), int32(uint32(id>>32)) // the event carries our id
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		unix.Close(fd)
		return nil, err
	}
	w.watches[id] = &pidWatch{fd: fd, onExit: onExit}
	return func() { w.drop(id) }, nil
}

// drop stops a watch and returns it, or nil if it already fired.
func (w *Watcher) drop(id uint64) *pidWatch {
	w.mu.Lock()
	defer w.mu.Unlock()
	pw, ok := w.watches[id]
	if !ok {
		return nil
	}
	delete(w.watches, id)
	unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, pw.fd, nil)
	unix.Close(pw.fd)
	return pw
}

func (w *Watcher) loop(epfd int) {
	events := make([]unix.EpollEvent, 64)
	for {
		n, err := unix.EpollWait(epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return // closed
		}
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if pw := w.drop(id); pw != nil {
				pw.onExit()
			}
		}
	}
}

// Close stops every watch and the loop.
func (w *Watcher) Close() {
	w.mu.Lock()
	for id, pw := range w.watches {
		unix.Close(pw.fd)
		delete(w.watches, id)
	}
	if w.epfd >= 0 {
		unix.Close(w.epfd)
		w.epfd = -1
	}
	w.mu.Unlock()
	w.poller.close()
}
