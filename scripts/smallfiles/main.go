// Command smallfiles measures small-file metadata speed on a filesystem, for
// scripts/bench: fio opens, writes and closes files far too slowly to tell
// tmpfs from anything else (it tops out near 12k files/s).
//
//	smallfiles create DIR N          create N files of 4 KiB, print files/s
//	smallfiles stat DIR N SECONDS    stat those N files round-robin, print stats/s
//
// The rate is printed alone on stdout ("12345.6 files/s"); details go to stderr.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

const fileSize = 4096

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "smallfiles:", err)
		os.Exit(1)
	}
}

func usage() error {
	return fmt.Errorf("usage: smallfiles create DIR N | smallfiles stat DIR N SECONDS")
}

func run(args []string) error {
	if len(args) < 3 {
		return usage()
	}
	dir := args[1]
	n, err := strconv.Atoi(args[2])
	if err != nil || n <= 0 {
		return fmt.Errorf("n must be a positive number, not %q", args[2])
	}
	switch {
	case args[0] == "create" && len(args) == 3:
		return create(dir, n)
	case args[0] == "stat" && len(args) == 4:
		secs, err := strconv.ParseFloat(args[3], 64)
		if err != nil || secs <= 0 {
			return fmt.Errorf("SECONDS must be a positive number, not %q", args[3])
		}
		return stat(dir, n, time.Duration(secs*float64(time.Second)))
	}
	return usage()
}

func names(dir string, n int) []string {
	p := make([]string, n)
	for i := range p {
		p[i] = filepath.Join(dir, fmt.Sprintf("f%07d", i))
	}
	return p
}

// create makes N files of 4 KiB: open(O_CREAT|O_WRONLY|O_TRUNC), one write,
// close. The directory is created first and not timed.
func create(dir string, n int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	paths := names(dir, n)
	buf := make([]byte, fileSize)
	for i := range buf {
		buf[i] = byte(i*7 + 1)
	}
	start := time.Now()
	for _, p := range paths {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	el := time.Since(start)
	fmt.Fprintf(os.Stderr, "created %d files of %d bytes in %v\n", n, fileSize, el.Round(time.Millisecond))
	fmt.Printf("%.1f files/s\n", float64(n)/el.Seconds())
	return nil
}

// stat stats the N files made by create, round-robin, for d; every result
// is checked so that a missing file is an error, not a fast ENOENT.
func stat(dir string, n int, d time.Duration) error {
	paths := names(dir, n)
	start := time.Now()
	deadline := start.Add(d)
	count := 0
	for {
		for i := 0; i < 1024; i++ {
			fi, err := os.Stat(paths[count%n])
			if err != nil {
				return err
			}
			if fi.Size() != fileSize {
				return fmt.Errorf("%s: size %d, want %d", fi.Name(), fi.Size(), fileSize)
			}
			count++
		}
		if time.Now().After(deadline) {
			break
		}
	}
	el := time.Since(start)
	fmt.Fprintf(os.Stderr, "%d stats of %d files in %v\n", count, n, el.Round(time.Millisecond))
	fmt.Printf("%.1f stats/s\n", float64(count)/el.Seconds())
	return nil
}
