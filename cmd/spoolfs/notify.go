package main

import (
	"net"
	"os"
	"strings"
)

// notifier speaks systemd's readiness protocol (sd_notify(3)): datagrams of
// KEY=VALUE lines to the socket named by $NOTIFY_SOCKET, so that a
// Type=notify service starts its dependants only once the mount answers.
// It is a few lines, so no library is needed. With no $NOTIFY_SOCKET it
// does nothing.
type notifier struct{ addr *net.UnixAddr }

func newNotifier() *notifier {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return &notifier{}
	}
	os.Unsetenv("NOTIFY_SOCKET") // not for the programs we might start
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:] // abstract namespace
	}
	return &notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// send writes one message; errors are ignored, as sd_notify does: a
// missing supervisor must not stop the mount.
func (n *notifier) send(lines ...string) {
	if n.addr == nil {
		return
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return
	}
	defer conn.Close()
	conn.Write([]byte(strings.Join(lines, "\n") + "\n"))
}
