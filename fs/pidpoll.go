package fs

import (
	"sync"
	"time"
)

// pidPoller is the fallback owner watch: it checks each watched process
// once per interval. It guards against PID reuse by the process's start
// time where the platform gives one.
type pidPoller struct {
	interval time.Duration

	mu      sync.Mutex
	next    uint64
	watches map[uint64]polled
	stop    chan struct{} // nil while no goroutine runs
}

type polled struct {
	pid    int
	start  string
	onExit func()
}

func newPidPoller() *pidPoller {
	return &pidPoller{interval: time.Second, watches: make(map[uint64]polled)}
}

func (p *pidPoller) watch(pid int, onExit func()) (func(), error) {
	start, err := processStart(pid)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	id := p.next
	p.watches[id] = polled{pid: pid, start: start, onExit: onExit}
	if p.stop == nil {
		p.stop = make(chan struct{})
		go p.loop(p.stop)
	}
	return func() {
		p.mu.Lock()
		delete(p.watches, id)
		p.mu.Unlock()
	}, nil
}

func (p *pidPoller) loop(stop chan struct{}) {
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		for _, fn := range p.exited() {
			fn()
		}
	}
}

// exited removes and returns the callbacks of processes that are gone.
func (p *pidPoller) exited() []func() {
	p.mu.Lock()
	defer p.mu.Unlock()
	var gone []func()
	for id, w := range p.watches {
		if start, err := processStart(w.pid); err != nil || start != w.start {
			gone = append(gone, w.onExit)
			delete(p.watches, id)
		}
	}
	return gone
}

func (p *pidPoller) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop != nil {
		close(p.stop)
		p.stop = nil
	}
	clear(p.watches)
}
