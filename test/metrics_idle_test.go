package test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMetricsOnlyOpsSeen: an idle mount exports a few dozen series, not a
// histogram for every FUSE operation that never ran (760 series before);
// an operation's histogram appears, whole, once it runs.
func TestMetricsOnlyOpsSeen(t *testing.T) {
	addr := freeLoopbackAddr(t)
	m := mountBinary(t, "--metrics", addr)
	sc := &metricsScraper{url: "http://" + addr + "/metrics"}

	idle, err := sc.scrape()
	if err != nil {
		t.Fatal(err)
	}
	// The Go and process collectors make ~50, spoolfs's own figures ~20,
	// and the few operations of mounting a histogram of 19 each: 83 when
	// this was written.
	if len(idle) > 200 {
		t.Errorf("an idle mount exports %d series, want at most 200", len(idle))
	}
	const op = "SYMLINK"
	if n := idle.value("spoolfs_fuse_request_duration_seconds_count", "op", op); n != 0 || seriesOf(idle, "op", op) != 0 {
		t.Fatalf("%d series of %s before any symlink", seriesOf(idle, "op", op), op)
	}
	t.Logf("idle mount: %d series", len(idle))

	if err := os.Symlink("target", filepath.Join(m.Dir, "link")); err != nil {
		t.Fatal(err)
	}
	s := sc.waitFor(t, "the SYMLINK histogram", func(s metricSamples) bool {
		return s.value("spoolfs_fuse_request_duration_seconds_count", "op", op) == 1
	})
	// 16 buckets and +Inf, _sum and _count: the histogram is whole.
	if n := seriesOf(s, "op", op); n != 19 {
		t.Errorf("%s has %d series, want 19", op, n)
	}
	if inf := s.value("spoolfs_fuse_request_duration_seconds_bucket", "op", op, "le", "+Inf"); inf != 1 {
		t.Errorf("%s +Inf bucket = %v, want 1", op, inf)
	}
}

// TestMetricsLandingPage: '/' answers, as exporters' do, with a short page
// that links to /metrics; other paths are still 404.
func TestMetricsLandingPage(t *testing.T) {
	addr := freeLoopbackAddr(t)
	mountBinary(t, "--metrics", addr)
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) (int, string, string) {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
	}
	code, ctype, body := get("/")
	if code != http.StatusOK || !strings.HasPrefix(ctype, "text/html") || !strings.Contains(body, `href="/metrics"`) {
		t.Errorf("GET /: %d %s %q, want 200 and an HTML page linking /metrics", code, ctype, body)
	}
	if code, _, _ := get("/nothing-here"); code != http.StatusNotFound {
		t.Errorf("GET /nothing-here: %d, want 404", code)
	}
}

// seriesOf counts the samples with the label k=v.
func seriesOf(s metricSamples, k, v string) int {
	n := 0
	for _, m := range s {
		if m.labels[k] == v {
			n++
		}
	}
	return n
}
