package main

import (
	"context"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"

	spoolfs "github.com/spoolfs/spoolfs/fs"
	"github.com/spoolfs/spoolfs/fs/control"
	"github.com/spoolfs/spoolfs/fs/requests"
)

// metricsAddr is the --metrics flag, checked by parseMetricsAddr.
type metricsAddr string

func (a *metricsAddr) String() string     { return string(*a) }
func (a *metricsAddr) Set(v string) error { *a = metricsAddr(v); return nil }
func (a *metricsAddr) Type() string       { return "addr" }

// parseMetricsAddr checks a --metrics value and returns the address to
// listen on: "" (off) stays "". A bare PORT or ":PORT" means 127.0.0.1
// only, so that metrics are never exposed to the network by accident;
// HOST:PORT listens where it says (0.0.0.0:9780, [::]:9780 for everyone).
func parseMetricsAddr(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	bad := fmt.Errorf("--metrics %q: want PORT, :PORT or HOST:PORT, with PORT from 1 to 65535", v)
	host, port := "", v
	if strings.Contains(v, ":") {
		var err error
		if host, port, err = net.SplitHostPort(v); err != nil {
			return "", bad
		}
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 || strings.ContainsAny(host, " /") {
		return "", bad
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// metrics is what --metrics serves: counts that the filesystem reports
// through spoolfs.Observer and requests.Observe, and figures read from
// the mount's status at each scrape. A nil *metrics is metrics off: every
// method then does nothing.
type metrics struct {
	reg      *prometheus.Registry
	ln       net.Listener
	srv      *http.Server
	log      *slog.Logger
	latency  *prometheus.HistogramVec // op
	ops      []opLatency              // latency's children, indexed by requests.Op
	opErrors *prometheus.CounterVec   // op, errno
	ended    *prometheus.CounterVec   // reason
	refused  *prometheus.CounterVec   // errno
	filled   prometheus.Counter
}

// opLatency is one operation's latency histogram, made at its first
// request: a mount exports the histograms of the operations it has seen,
// not 19 empty series for each of the ~40 that never run. sync.Once costs
// one atomic load per request once made.
type opLatency struct {
	once     sync.Once
	observer prometheus.Observer
}

// latencyBuckets run from 10µs (a cached lookup) to 1s (a large write to
// a slow spill disk), in 1-2.5-5 steps: the upper bounds in seconds.
var latencyBuckets = []float64{
	10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3,
	0.1, 0.25, 0.5, 1,
}

// listenMetrics binds addr (from parseMetricsAddr) before anything is
// mounted, so that a port in use fails the mount cleanly; "" is metrics
// off and returns nil.
func listenMetrics(addr string, logger *slog.Logger) (*metrics, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			err = op.Err // "bind: address already in use", without repeating the address
		}
		return nil, fmt.Errorf("--metrics %s: %v", addr, err)
	}
	m := &metrics{reg: prometheus.NewRegistry(), ln: ln, log: logger}
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "spoolfs_fuse_request_duration_seconds",
		Help:    "Time spoolfs took to answer FUSE requests, by kind of request (op).",
		Buckets: latencyBuckets,
	}, []string{"op"})
	m.ops = make([]opLatency, len(requests.Ops()))
	m.opErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spoolfs_fuse_errors_total",
		Help: "FUSE requests answered with an error, by op and errno (ENOENT from LOOKUP is an ordinary miss).",
	}, []string{"op", "errno"})
	m.ended = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spoolfs_sessions_ended_total",
		Help: "Sessions ended, by reason: ttl, idle, owner-exited, removed.",
	}, []string{"reason"})
	for _, reason := range spoolfs.SessionEndReasons() {
		m.ended.WithLabelValues(reason)
	}
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spoolfs_quota_refusals_total",
		Help: "Operations refused for want of space, by errno: ENOSPC (the mount or the spill disk is full), EDQUOT (a session's quota).",
	}, []string{"errno"})
	m.refused.WithLabelValues("ENOSPC")
	m.refused.WithLabelValues("EDQUOT")
	m.filled = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "spoolfs_cache_filled_bytes_total",
		Help: "Bytes of file data spoolfs stored in the kernel's page cache after a read missed it.",
	})
	m.reg.MustRegister(m.latency, m.opErrors, m.ended, m.refused, m.filled,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(logger.Handler(), slog.LevelError),
		Registry:            m.reg,
		MaxRequestsInFlight: 4,
	}))
	mux.HandleFunc("GET /{$}", landingPage)
	m.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return m, nil
}

// observer is what the filesystem reports sessions and refusals to.
func (m *metrics) observer() spoolfs.Observer {
	if m == nil {
		return nil
	}
	return m
}

// start serves /metrics for fsys, once it is mounted.
func (m *metrics) start(fsys *spoolfs.FS) {
	if m == nil {
		return
	}
	m.reg.MustRegister(newStatusCollector(fsys))
	go func() {
		if err := m.srv.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("metrics server", "err", err)
		}
	}()
	m.log.Info("serving metrics", "url", "http://"+m.ln.Addr().String()+"/metrics")
}

// close stops serving, letting a scrape under way finish first: after it,
// nothing reads the filesystem's status any more.
func (m *metrics) close() {
	if m == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.srv.Shutdown(ctx); err != nil {
		m.srv.Close()
	}
	m.ln.Close() // in case it was never served
}

func (m *metrics) SessionEnded(reason string) { m.ended.WithLabelValues(reason).Inc() }

func (m *metrics) Refused(errno syscall.Errno) { m.refused.WithLabelValues(errnoLabel(errno)).Inc() }

func (m *metrics) CacheFilled(bytes int64) { m.filled.Add(float64(bytes)) }

func (m *metrics) opDone(op requests.Op, _ uint32, took time.Duration, status fuse.Status) {
	l := &m.ops[op]
	l.once.Do(func() { l.observer = m.latency.WithLabelValues(op.String()) })
	l.observer.Observe(took.Seconds())
	if status != fuse.OK {
		m.opErrors.WithLabelValues(op.String(), errnoLabel(syscall.Errno(status))).Inc()
	}
}

// landingPage answers '/' as Prometheus exporters do: a person who opens
// the address in a browser finds the way to /metrics, and which build
// serves it.
func landingPage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!DOCTYPE html>
<html><head><title>spoolfs</title></head>
<body><h1>spoolfs</h1><p>%s</p><p><a href="/metrics">Metrics</a></p></body></html>
`, html.EscapeString(readVersion().text()))
}

// errnoLabel is an errno's symbolic name, such as ENOSPC.
func errnoLabel(errno syscall.Errno) string {
	if name := unix.ErrnoName(errno); name != "" {
		return name
	}
	return strconv.Itoa(int(errno))
}

// statusCollector reads the mount's figures once per scrape, so that
// they are consistent with each other and cost nothing in between.
type statusCollector struct {
	fsys      *spoolfs.FS
	figures   []statusFigure
	transport *prometheus.Desc
}

type statusFigure struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(control.Status) int64
}

func newStatusCollector(fsys *spoolfs.FS) *statusCollector {
	gauge := func(name, help string, value func(control.Status) int64) statusFigure {
		return statusFigure{prometheus.NewDesc(name, help, nil, nil), prometheus.GaugeValue, value}
	}
	counter := func(name, help string, value func(control.Status) int64) statusFigure {
		return statusFigure{prometheus.NewDesc(name, help, nil, nil), prometheus.CounterValue, value}
	}
	return &statusCollector{fsys: fsys, transport: prometheus.NewDesc("spoolfs_transport_info",
		"Always 1; the label says how the kernel's requests reach the daemon: uring (FUSE over io_uring) or dev (/dev/fuse).",
		[]string{"transport"}, nil), figures: []statusFigure{
		gauge("spoolfs_ram_bytes", "Bytes held in RAM against --ram: file data, extended attributes, symlink targets.",
			func(s control.Status) int64 { return s.RAMUsed }),
		gauge("spoolfs_ram_budget_bytes", "Most bytes the mount keeps in RAM (--ram).",
			func(s control.Status) int64 { return s.RAMBudget }),
		gauge("spoolfs_disk_bytes", "Bytes allocated in spill files on disk.",
			func(s control.Status) int64 { return s.DiskUsed }),
		gauge("spoolfs_allocated_bytes", "Bytes charged to the mount's size, RAM and disk together.",
			func(s control.Status) int64 { return s.Used }),
		gauge("spoolfs_capacity_bytes", "The mount's size (--size); 0: no limit.",
			func(s control.Status) int64 { return s.Capacity }),
		gauge("spoolfs_inodes_used", "Files, directories and symlinks in the mount, the root included.",
			func(s control.Status) int64 { return s.InodesUsed }),
		gauge("spoolfs_inodes_limit", "Most inodes the mount may hold (--inodes); 0: no limit.",
			func(s control.Status) int64 { return s.Inodes }),
		gauge("spoolfs_sessions_live", "Sessions (top-level directories) not yet ended.",
			func(s control.Status) int64 { return int64(s.Sessions) }),
		counter("spoolfs_spills_total", "Files moved from RAM to disk.",
			func(s control.Status) int64 { return s.Spills }),
		gauge("spoolfs_files", "Live files, in RAM or on disk.",
			func(s control.Status) int64 { return s.Files }),
		gauge("spoolfs_spilled_files", "Live files on disk.",
			func(s control.Status) int64 { return s.SpilledFiles }),
	}}
}

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range c.figures {
		ch <- f.desc
	}
	ch <- c.transport
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.fsys.Status()
	for _, f := range c.figures {
		ch <- prometheus.MustNewConstMetric(f.desc, f.kind, float64(f.value(st)))
	}
	ch <- prometheus.MustNewConstMetric(c.transport, prometheus.GaugeValue, 1, st.Transport)
}
