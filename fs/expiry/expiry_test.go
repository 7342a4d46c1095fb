package expiry

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

// op is one step of a table test.
type op struct {
	kind  string // "set", "remove", "pop"
	key   string
	sec   int // deadline for set, now for pop
	limit int // most keys a pop may return; 0: no limit
	want  []string
}

func TestQueueTable(t *testing.T) {
	cases := []struct {
		name     string
		ops      []op
		wantLen  int
		wantNext int // -1: empty
	}{
		{
			name:     "empty",
			ops:      []op{{kind: "pop", sec: 1000, want: nil}},
			wantNext: -1,
		},
		{
			name: "pop in deadline order",
			ops: []op{
				{kind: "set", key: "c", sec: 30},
				{kind: "set", key: "a", sec: 10},
				{kind: "set", key: "b", sec: 20},
				{kind: "pop", sec: 25, want: []string{"a", "b"}},
			},
			wantLen: 1, wantNext: 30,
		},
		{
			name: "deadline equal to now is due",
			ops: []op{
				{kind: "set", key: "a", sec: 10},
				{kind: "pop", sec: 9, want: nil},
				{kind: "pop", sec: 10, want: []string{"a"}},
			},
			wantNext: -1,
		},
		{
			name: "set moves a key later",
			ops: []op{
				{kind: "set", key: "a", sec: 10},
				{kind: "set", key: "b", sec: 20},
				{kind: "set", key: "a", sec: 30},
				{kind: "pop", sec: 25, want: []string{"b"}},
			},
			wantLen: 1, wantNext: 30,
		},
		{
			name: "set moves a key earlier",
			ops: []op{
				{kind: "set", key: "a", sec: 10},
				{kind: "set", key: "b", sec: 20},
				{kind: "set", key: "b", sec: 5},
				{kind: "pop", sec: 7, want: []string{"b"}},
			},
			wantLen: 1, wantNext: 10,
		},
		{
			name: "remove",
			ops: []op{
				{kind: "set", key: "a", sec: 10},
				{kind: "set", key: "b", sec: 20},
				{kind: "set", key: "c", sec: 30},
				{kind: "remove", key: "a"},
				{kind: "remove", key: "a"},       // twice: no-op
				{kind: "remove", key: "missing"}, // never there: no-op
				{kind: "pop", sec: 100, want: []string{"b", "c"}},
			},
			wantNext: -1,
		},
		{
			name: "remove the middle keeps order",
			ops: []op{
				{kind: "set", key: "a", sec: 1},
				{kind: "set", key: "b", sec: 2},
				{kind: "set", key: "c", sec: 3},
				{kind: "set", key: "d", sec: 4},
				{kind: "set", key: "e", sec: 5},
				{kind: "remove", key: "c"},
				{kind: "pop", sec: 100, want: []string{"a", "b", "d", "e"}},
			},
			wantNext: -1,
		},
		{
			name: "popped keys can come back",
			ops: []op{
				{kind: "set", key: "a", sec: 10},
				{kind: "pop", sec: 10, want: []string{"a"}},
				{kind: "set", key: "a", sec: 50},
				{kind: "pop", sec: 49, want: nil},
			},
			wantLen: 1, wantNext: 50,
		},
		{
			name: "a limit pops the earliest and leaves the rest due",
			ops: []op{
				{kind: "set", key: "c", sec: 30},
				{kind: "set", key: "a", sec: 10},
				{kind: "set", key: "d", sec: 40},
				{kind: "set", key: "b", sec: 20},
				{kind: "pop", sec: 35, limit: 2, want: []string{"a", "b"}},
				{kind: "pop", sec: 35, limit: 2, want: []string{"c"}},
			},
			wantLen: 1, wantNext: 40,
		},
		{
			name: "a deadline long past is due at once",
			ops: []op{
				{kind: "set", key: "a", sec: 10},
				{kind: "set", key: "now", sec: -1 << 30},
				{kind: "pop", sec: 0, want: []string{"now"}},
			},
			wantLen: 1, wantNext: 10,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := New[string]()
			for i, o := range tc.ops {
				switch o.kind {
				case "set":
					q.Set(o.key, at(o.sec))
					if d, ok := q.deadline(o.key); !ok || !d.Equal(at(o.sec)) {
						t.Fatalf("op %d: Deadline(%q) = %v, %v after Set to %v", i, o.key, d, ok, at(o.sec))
					}
				case "remove":
					q.Remove(o.key)
					if _, ok := q.deadline(o.key); ok {
						t.Fatalf("op %d: %q still has a deadline after Remove", i, o.key)
					}
				case "pop":
					limit := o.limit
					if limit == 0 {
						limit = math.MaxInt
					}
					got := q.PopDue(at(o.sec), limit)
					if !slices.Equal(got, o.want) {
						t.Fatalf("op %d: PopDue(%d) = %q, want %q", i, o.sec, got, o.want)
					}
					for _, k := range got {
						if _, ok := q.deadline(k); ok {
							t.Fatalf("op %d: popped %q still has a deadline", i, k)
						}
					}
				}
			}
			if q.size() != tc.wantLen {
				t.Errorf("Len = %d, want %d", q.size(), tc.wantLen)
			}
			next, ok := q.Next()
			switch {
			case tc.wantNext < 0 && ok:
				t.Errorf("Next = %v on an empty queue", next)
			case tc.wantNext >= 0 && (!ok || !next.Equal(at(tc.wantNext))):
				t.Errorf("Next = %v, %v; want %v", next, ok, at(tc.wantNext))
			}
		})
	}
}

// TestQueueModel runs random operations against the queue and a plain map
// that is scanned in full, with a fixed seed.
func TestQueueModel(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 42, 1234} {
		r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		q := New[int]()
		model := map[int]time.Time{}
		now := 0
		const keys = 200
		for step := range 20000 {
			switch x := r.IntN(100); {
			case x < 55:
				k := r.IntN(keys)
				d := at(now + r.IntN(600) - 60) // some already due
				q.Set(k, d)
				model[k] = d
			case x < 75:
				k := r.IntN(keys)
				q.Remove(k)
				delete(model, k)
			case x < 95:
				now += r.IntN(60)
				limit := math.MaxInt
				if r.IntN(2) == 0 {
					limit = 1 + r.IntN(8)
				}
				got := q.PopDue(at(now), limit)
				var want []int
				for k, d := range model {
					if !d.After(at(now)) {
						want = append(want, k)
					}
				}
				if len(got) != min(len(want), limit) {
					t.Fatalf("seed %d step %d: PopDue(%d, %d) gave %d keys, model %d due", seed, step, now, limit, len(got), len(want))
				}
				for i, k := range got {
					d, ok := model[k]
					if !ok {
						t.Fatalf("seed %d step %d: PopDue gave %d, which the model lacks", seed, step, k)
					}
					if d.After(at(now)) {
						t.Fatalf("seed %d step %d: PopDue gave %d due at %v, after now %v", seed, step, k, d, at(now))
					}
					if i > 0 && d.Before(model[got[i-1]]) {
						t.Fatalf("seed %d step %d: PopDue not earliest first: %d (%v) after %d (%v)",
							seed, step, k, d, got[i-1], model[got[i-1]])
					}
				}
				var last time.Time // the latest deadline popped
				for _, k := range got {
					last = model[k]
					delete(model, k)
				}
				for k, d := range model { // what a limit left behind is not earlier
					if d.Before(last) {
						t.Fatalf("seed %d step %d: PopDue(%d, %d) left %d due at %v, before %v", seed, step, now, limit, k, d, last)
					}
				}
			default:
				k := r.IntN(keys)
				d, ok := q.deadline(k)
				md, mok := model[k]
				if ok != mok || ok && !d.Equal(md) {
					t.Fatalf("seed %d step %d: Deadline(%d) = %v, %v; model %v, %v", seed, step, k, d, ok, md, mok)
				}
			}
			if q.size() != len(model) {
				t.Fatalf("seed %d step %d: Len %d, model %d", seed, step, q.size(), len(model))
			}
			next, ok := q.Next()
			if ok != (len(model) > 0) {
				t.Fatalf("seed %d step %d: Next ok=%v with %d keys", seed, step, ok, len(model))
			}
			if ok {
				for k, d := range model {
					if d.Before(next) {
						t.Fatalf("seed %d step %d: Next %v but %d is due at %v", seed, step, next, k, d)
					}
				}
			}
		}
	}
}

// TestQueueIdleAllocatesNothing: asking an idle queue what is next, or
// what is due when nothing is, costs no allocation.
func TestQueueIdleAllocatesNothing(t *testing.T) {
	q := New[int]()
	for i := range 1000 {
		q.Set(i, at(1000+i))
	}
	allocs := testing.AllocsPerRun(100, func() {
		q.Next()
		q.PopDue(at(0), math.MaxInt)
		q.deadline(5)
	})
	if allocs != 0 {
		t.Errorf("idle Next/PopDue/Deadline: %v allocations per run, want 0", allocs)
	}
	// Moving an existing key allocates nothing either.
	allocs = testing.AllocsPerRun(100, func() { q.Set(7, at(5000)) })
	if allocs != 0 {
		t.Errorf("Set of an existing key: %v allocations per run, want 0", allocs)
	}
}

const benchKeys = 100_000

// fullQueue returns a queue of benchKeys keys with spread deadlines, and
// the latest of them.
func fullQueue(r *rand.Rand) (*Queue[int], int) {
	q := New[int]()
	for i := range benchKeys {
		q.Set(i, at(r.IntN(benchKeys)))
	}
	return q, benchKeys
}

// BenchmarkQueue100k measures each change on a queue of 100,000 keys: it
// must be O(log n), not a scan.
func BenchmarkQueue100k(b *testing.B) {
	b.Run("Set/new", func(b *testing.B) {
		r := rand.New(rand.NewPCG(1, 2))
		q, _ := fullQueue(r)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			k := benchKeys + i
			q.Set(k, at(r.IntN(benchKeys)))
			if q.size() > 2*benchKeys {
				b.StopTimer()
				q, _ = fullQueue(r)
				b.StartTimer()
			}
		}
	})
	b.Run("Set/fix", func(b *testing.B) {
		r := rand.New(rand.NewPCG(3, 4))
		q, _ := fullQueue(r)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			q.Set(i%benchKeys, at(r.IntN(benchKeys)))
		}
	})
	b.Run("Set/push-later", func(b *testing.B) {
		// What activity does: the idle deadline of a key moves later.
		r := rand.New(rand.NewPCG(5, 6))
		q, latest := fullQueue(r)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			latest++
			q.Set(i%benchKeys, at(latest))
		}
	})
	b.Run("Remove+Set", func(b *testing.B) {
		r := rand.New(rand.NewPCG(7, 8))
		q, _ := fullQueue(r)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			k := r.IntN(benchKeys)
			q.Remove(k)
			q.Set(k, at(r.IntN(benchKeys)))
		}
	})
	b.Run("PopDue/one", func(b *testing.B) {
		// One key due per call, put back at the end: the steady state of
		// an expiry loop ending one session at a time.
		r := rand.New(rand.NewPCG(9, 10))
		q, latest := fullQueue(r)
		b.ReportAllocs()
		for b.Loop() {
			next, _ := q.Next()
			due := q.PopDue(next, math.MaxInt)
			for _, k := range due {
				latest++
				q.Set(k, at(latest))
			}
		}
	})
	b.Run("PopDue/all", func(b *testing.B) {
		// Emptying the whole queue, per key.
		r := rand.New(rand.NewPCG(11, 12))
		b.ReportAllocs()
		var q *Queue[int]
		popped := 0
		for b.Loop() {
			if q == nil || q.size() == 0 {
				b.StopTimer()
				q, _ = fullQueue(r)
				b.StartTimer()
			}
			next, _ := q.Next()
			popped += len(q.PopDue(next.Add(time.Second), math.MaxInt))
		}
		_ = popped
	})
}

// BenchmarkQueueIdle100k: a queue of 100,000 keys with nothing due costs
// nothing to ask (no allocation, no scan).
func BenchmarkQueueIdle100k(b *testing.B) {
	r := rand.New(rand.NewPCG(13, 14))
	q, _ := fullQueue(r)
	for i := range benchKeys {
		q.Set(i, at(1000+r.IntN(benchKeys)))
	}
	b.Run("Next", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := q.Next(); !ok {
				b.Fatal("empty")
			}
		}
	})
	b.Run("PopDue/nothing", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if due := q.PopDue(at(0), math.MaxInt); len(due) != 0 {
				b.Fatal("something was due")
			}
		}
	})
}
