//go:build !linux

package proc

// Watcher calls back when watched processes exit. It polls here, where
// Linux's pidfds are not available.
type Watcher struct{ p *poller }

// NewWatcher returns a Watcher with no watches; it starts a goroutine on
// the first.
func NewWatcher() *Watcher { return &Watcher{newPoller()} }

// Watch calls onExit once, from the Watcher's goroutine, when pid exits,
// unless stop is called first. It fails with ESRCH if pid is gone.
func (w *Watcher) Watch(pid int, onExit func()) (stop func(), err error) {
	return w.p.watch(pid, onExit)
}

// Close stops every watch and the goroutine.
func (w *Watcher) Close() { w.p.close() }
