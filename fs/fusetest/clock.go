package fusetest

import (
	"sync"
	"time"
)

// Clock is a fake clock for a filesystem under test: time moves only when
// the test says so. Its Now is safe to call from the server's goroutines.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at a fixed instant, the same on every run, and
// years from the real time, so that a time taken from the real clock by
// mistake shows.
func NewClock() *Clock {
	return &Clock{now: time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock on by d and returns the new time.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}
