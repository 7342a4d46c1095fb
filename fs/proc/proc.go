// Package proc owns what spoolfs knows of other processes: whether one
// lives, its parent, the process a thread belongs to, whether it shares the
// daemon's PID namespace, and a Watcher that calls back when one exits. It
// knows nothing of sessions or files.
//
// PIDs are as seen from the daemon's PID namespace. A zombie counts as
// gone everywhere: its descriptors are closed, and a killed process whose
// parent has gone may stay one for good.
//
// On Linux, the facts come from /proc/PID/stat, read by one parser
// (stat_linux.go), and the Watcher holds a pidfd per process, immune to
// PID reuse. Elsewhere the Watcher polls once a second, and the facts come
// from kill(2), sysctl or ps(1).
package proc
