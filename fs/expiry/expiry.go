// Package expiry keeps deadlines in a heap so that the next one to pass is
// found in O(1) and each change costs O(log n): a mount with 100,000
// sessions never scans them.
//
// A Queue knows nothing of sessions or clocks: callers give it times and
// ask what is due at a time they choose, which is what lets tests drive
// expiry with a fake clock. It is not safe for concurrent use; the caller
// holds its own lock.
package expiry

import (
	"container/heap"
	"time"
)

// Queue is a set of keys, each with one deadline.
type Queue[K comparable] struct {
	h     entries[K]
	index map[K]*entry[K]
}

type entry[K comparable] struct {
	key      K
	deadline time.Time
	pos      int
}

// New returns an empty queue.
func New[K comparable]() *Queue[K] {
	return &Queue[K]{index: make(map[K]*entry[K])}
}

// size is the number of keys in the queue (for the tests: the filesystem
// asks only for what is due).
func (q *Queue[K]) size() int { return len(q.h) }

// Set gives key the deadline, adding it if it is new.
func (q *Queue[K]) Set(key K, deadline time.Time) {
	if e, ok := q.index[key]; ok {
		e.deadline = deadline
		heap.Fix(&q.h, e.pos)
		return
	}
	e := &entry[K]{key: key, deadline: deadline}
	q.index[key] = e
	heap.Push(&q.h, e)
}

// Remove drops key; it is a no-op for a key that is not there.
func (q *Queue[K]) Remove(key K) {
	if e, ok := q.index[key]; ok {
		heap.Remove(&q.h, e.pos)
		delete(q.index, key)
	}
}

// deadline returns key's deadline (for the tests: the filesystem keeps its
// own copy of each session's deadline).
func (q *Queue[K]) deadline(key K) (time.Time, bool) {
	e, ok := q.index[key]
	if !ok {
		return time.Time{}, false
	}
	return e.deadline, true
}

// Next returns the earliest deadline.
func (q *Queue[K]) Next() (time.Time, bool) {
	if len(q.h) == 0 {
		return time.Time{}, false
	}
	return q.h[0].deadline, true
}

// PopDue removes and returns the keys whose deadline is at or before now,
// earliest first, at most limit of them: a caller that pops in batches
// holds its lock for one batch at a time.
func (q *Queue[K]) PopDue(now time.Time, limit int) []K {
	var due []K
	for len(due) < limit && len(q.h) > 0 && !q.h[0].deadline.After(now) {
		e := heap.Pop(&q.h).(*entry[K])
		delete(q.index, e.key)
		due = append(due, e.key)
	}
	return due
}

type entries[K comparable] []*entry[K]

func (h entries[K]) Len() int           { return len(h) }
func (h entries[K]) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h entries[K]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].pos, h[j].pos = i, j
}

func (h *entries[K]) Push(x any) {
	e := x.(*entry[K])
	e.pos = len(*h)
	*h = append(*h, e)
}

func (h *entries[K]) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
