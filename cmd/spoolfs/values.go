package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
)

// byteSize is a size flag: "512MiB", "2G", "1.5GB", "0", or "N%" of a base
// that depends on the flag (free spill disk, physical memory).
//
// Like tmpfs and dd, a bare single-letter suffix (k, m, g, t, p, e) is
// binary: 2G is 2 GiB. "GB" is decimal and "GiB" binary, as go-humanize
// reads them.
type byteSize struct {
	bytes   int64
	percent float64 // > 0: a share of the base, resolved after parsing
	set     bool
	text    string
}

func (s *byteSize) String() string { return s.text }
func (s *byteSize) Type() string   { return "size" }

func (s *byteSize) Set(v string) error {
	n, pct, err := parseSize(v)
	if err != nil {
		return err
	}
	s.bytes, s.percent, s.set, s.text = n, pct, true, v
	return nil
}

// resolve turns a percentage into bytes of base.
func (s *byteSize) resolve(base int64) int64 {
	if s.percent > 0 {
		return int64(float64(base) * s.percent / 100)
	}
	return s.bytes
}

func parseSize(v string) (bytes int64, percent float64, err error) {
	v = strings.TrimSpace(v)
	if p, ok := strings.CutSuffix(v, "%"); ok {
		pct, err := strconv.ParseFloat(p, 64)
		if err != nil || pct <= 0 || pct > 100 {
			return 0, 0, fmt.Errorf("%q: a percentage must be above 0 and at most 100", v)
		}
		return 0, pct, nil
	}
	if strings.HasPrefix(v, "-") {
		return 0, 0, fmt.Errorf("%q: a size cannot be negative", v)
	}
	if n := len(v); n > 1 && strings.ContainsRune("kKmMgGtTpPeE", rune(v[n-1])) && isDigitOrDot(v[n-2]) {
		v += "iB"
	}
	n, err := humanize.ParseBytes(v)
	if err != nil {
		return 0, 0, fmt.Errorf("%q: not a size (try 512MiB, 2G or 50%%)", v)
	}
	if n > 1<<62 {
		return 0, 0, fmt.Errorf("%q: too large", v)
	}
	return int64(n), 0, nil
}

func isDigitOrDot(c byte) bool { return c == '.' || (c >= '0' && c <= '9') }

// count is an inode count: a plain number, or with k/m/g suffixes as tmpfs's
// nr_inodes reads them (binary).
type count struct {
	n    int64
	set  bool
	text string
}

func (c *count) String() string { return c.text }
func (c *count) Type() string   { return "count" }

func (c *count) Set(v string) error {
	n, pct, err := parseSize(v)
	if err != nil || pct > 0 {
		return fmt.Errorf("%q: not a count (try 100000 or 100k)", v)
	}
	c.n, c.set, c.text = n, true, v
	return nil
}

// octalMode is a permission mode written in octal, like chmod and tmpfs mode=.
type octalMode uint32

func (m *octalMode) String() string { return fmt.Sprintf("%04o", uint32(*m)) }
func (m *octalMode) Type() string   { return "octal" }

func (m *octalMode) Set(v string) error {
	n, err := strconv.ParseUint(v, 8, 32)
	if err != nil || n > 0o7777 {
		return fmt.Errorf("%q: not an octal mode between 0000 and 7777", v)
	}
	*m = octalMode(n)
	return nil
}

// duration is a Go duration ("90s", "2h"); 0 means none.
type duration time.Duration

// String shows zero as "0", which help output reads as "no default".
func (d *duration) String() string {
	if *d == 0 {
		return "0"
	}
	return time.Duration(*d).String()
}
func (d *duration) Type() string { return "duration" }

func (d *duration) Set(v string) error {
	x, err := time.ParseDuration(strings.TrimSpace(v))
	if v == "0" {
		x, err = 0, nil
	}
	if err != nil || x < 0 {
		return fmt.Errorf("%q: not a duration (try 90s, 10m or 2h)", v)
	}
	*d = duration(x)
	return nil
}
