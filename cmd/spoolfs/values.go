package main

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/spoolfs/spoolfs/fs/control"
)

// byteSize is a size flag: "512MiB", "2G", "1.5GB", "0", or "N%" of a base
// that depends on the flag (free spill disk, physical memory).
//
// Like tmpfs and dd, a bare single-letter suffix (k, m, g, t, p, e) is
// binary: 2G is 2 GiB. "GB" is decimal and "GiB" binary.
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

// resolve turns a percentage into bytes of base (of names the base in
// errors), rounded down. A share that comes to less than a byte is an
// error, not 0: 0 means "no limit" or "no RAM", never what was asked for.
func (s *byteSize) resolve(base int64, of string) (int64, error) {
	if s.percent == 0 {
		return s.bytes, nil
	}
	n := math.Floor(float64(max(base, 0)) * s.percent / 100)
	if n < 1 {
		return 0, fmt.Errorf("%s of %s (%d bytes) is less than a byte", s.text, of, base)
	}
	return int64(min(n, maxBytes)), nil
}

// maxBytes is the most a size or count may be: 4 EiB, beyond any disk, and
// far enough below the int64 limit that adding sizes up cannot wrap.
const maxBytes = 1 << 62

// Errors of parseWhole, worded by its callers for what they read.
var (
	errNotNumber = errors.New("not a number")
	errFraction  = errors.New("not a whole number")
	errTooLarge  = errors.New("too large")
)

// parseSize reads a size: a whole number of bytes, or a percentage above
// 0 and at most 100 (returned as percent, resolved later). Anything else
// is an error: NaN, infinities, exponents, hex, signs, thousands
// separators, a fraction of a byte (0.5, 1.3k), or more than maxBytes.
func parseSize(v string) (bytes int64, percent float64, err error) {
	v = strings.TrimSpace(v)
	if p, ok := strings.CutSuffix(v, "%"); ok {
		pct, err := strconv.ParseFloat(p, 64)
		if !isDecimal(p) || err != nil || !(pct > 0 && pct <= 100) {
			return 0, 0, fmt.Errorf("%q: a percentage must be above 0 and at most 100", v)
		}
		return 0, pct, nil
	}
	n, err := parseWhole(v)
	switch {
	case errors.Is(err, errFraction):
		return 0, 0, fmt.Errorf("%q: not a whole number of bytes", v)
	case errors.Is(err, errTooLarge):
		return 0, 0, fmt.Errorf("%q: too large (at most 4EiB)", v)
	case strings.HasPrefix(v, "-"):
		return 0, 0, fmt.Errorf("%q: a size cannot be negative", v)
	case err != nil:
		return 0, 0, fmt.Errorf("%q: not a size (try 512MiB, 2G or 50%%)", v)
	}
	return n, 0, nil
}

// unitScale is the number of bytes in a unit written in lower case: none
// or "b" is one; "k", "ki" and "kib" are 1024 (tmpfs and dd read a bare
// letter as binary) and "kb" 1000; and so on through m, g, t, p and e.
func unitScale(unit string) (int64, bool) {
	if unit == "" || unit == "b" {
		return 1, true
	}
	power := strings.IndexByte("kmgtpe", unit[0]) + 1
	if power == 0 {
		return 0, false
	}
	switch unit[1:] {
	case "", "i", "ib":
		return 1 << (10 * power), true
	case "b":
		n := int64(1)
		for range 3 * power {
			n *= 10
		}
		return n, true
	}
	return 0, false
}

// parseWhole reads a decimal number ("1.5") and a unit ("GiB", "k"),
// exactly: the result must be a whole number no larger than maxBytes.
func parseWhole(v string) (int64, error) {
	end := strings.IndexFunc(v, func(r rune) bool { return r != '.' && (r < '0' || r > '9') })
	if end < 0 {
		end = len(v)
	}
	number, unit := v[:end], strings.ToLower(strings.TrimSpace(v[end:]))
	scale, ok := unitScale(unit)
	if !isDecimal(number) || !ok {
		return 0, errNotNumber
	}
	x, ok := new(big.Rat).SetString(number)
	if !ok {
		return 0, errNotNumber
	}
	x.Mul(x, new(big.Rat).SetInt64(scale))
	switch {
	case !x.IsInt():
		return 0, errFraction
	case x.Num().Cmp(big.NewInt(maxBytes)) > 0:
		return 0, errTooLarge
	}
	return x.Num().Int64(), nil
}

// isDecimal says whether s is digits with at most one '.' between digits:
// "12", "1.5", not "", ".5", "1.", "1e3", "NaN" or "+1".
func isDecimal(s string) bool {
	whole, fraction, hasDot := strings.Cut(s, ".")
	return allDigits(whole) && (!hasDot || allDigits(fraction))
}

func allDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// count is an inode count: a whole number, with k/m/g suffixes as tmpfs's
// nr_inodes reads them (binary).
type count struct {
	n    int64
	set  bool
	text string
}

func (c *count) String() string { return c.text }
func (c *count) Type() string   { return "count" }

func (c *count) Set(v string) error {
	n, err := parseWhole(strings.TrimSpace(v))
	switch {
	case errors.Is(err, errFraction):
		return fmt.Errorf("%q: not a whole number", v)
	case errors.Is(err, errTooLarge):
		return fmt.Errorf("%q: too large", v)
	case err != nil:
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

// Set reads the duration as the daemon reads a session's ttl and idle, so
// that what the CLI accepts, the daemon does too.
func (d *duration) Set(v string) error {
	x, err := control.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("%q: %v (try 90s, 10m or 2h)", v, err)
	}
	*d = duration(x)
	return nil
}
