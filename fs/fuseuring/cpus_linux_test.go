package fuseuring

import "testing"

func TestParseCPUList(t *testing.T) {
	for _, c := range []struct {
		list string
		n    int
		ok   bool
	}{
		{"0\n", 1, true}, {"0-1\n", 2, true}, {"0-3,8-11", 12, true}, {"0,2", 3, true},
		{"", 0, false}, {"0-x", 0, false}, {"-1", 0, false},
	} {
		n, ok := parseCPUList(c.list)
		if n != c.n || ok != c.ok {
			t.Errorf("parseCPUList(%q) = %d, %v; want %d, %v", c.list, n, ok, c.n, c.ok)
		}
	}
}
