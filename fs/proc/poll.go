package proc

import (
	"sync"
	"time"
)

// poller is the fallback watch: it checks each watched process once per
// interval. It guards against PID reuse by the process's start time where
// the platform gives one.
type poller struct {
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

func newPoller() *poller {
	return &poller{interval: time.Second, watches: make(map[uint64]polled)}
}

func (p *poller) watch(pid int, onExit func()) (func(), error) {
	start, err := startToken(pid)
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

func (p *poller) loop(stop chan struct{}) {
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
func (p *poller) exited() []func() {
	p.mu.Lock()
	defer p.mu.Unlock()
	var gone []func()
	for id, w := range p.watches {
		if start, err := startToken(w.pid); err != nil || start != w.start {
			gone = append(gone, w.onExit)
			delete(p.watches, id)
		}
	}
	return gone
}

func (p *poller) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop != nil {
		close(p.stop)
		p.stop = nil
	}
	clear(p.watches)
}
