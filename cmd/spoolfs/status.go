package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"
)

// mountStatus mirrors the daemon's user.spoolfs.status.
type mountStatus struct {
	Capacity       int64 `json:"capacity"`
	Used           int64 `json:"used"`
	Inodes         int64 `json:"inodes"`
	InodesUsed     int64 `json:"inodes_used"`
	RAMBudget      int64 `json:"ram_budget"`
	RAMUsed        int64 `json:"ram_used"`
	DiskUsed       int64 `json:"disk_used"`
	SpillThreshold int64 `json:"spill_threshold"`
	Spills         int64 `json:"spills"`
	Files          int64 `json:"files"`
	SpilledFiles   int64 `json:"spilled_files"`
	Sessions       int   `json:"sessions"`
}

func runStatus(args []string, stdout, stderr io.Writer) int {
	f := pflag.NewFlagSet("status", pflag.ContinueOnError)
	asJSON := f.Bool("json", false, "print JSON for scripts")
	if code, ok := parseFlags(f, args, "Usage: spoolfs status MOUNTPOINT [--json]", stdout, stderr); !ok {
		return code
	}
	if f.NArg() != 1 {
		fmt.Fprintln(stderr, "spoolfs status: need exactly one MOUNTPOINT")
		return exitUsage
	}
	path := f.Arg(0)
	var st *mountStatus
	if raw, err := getControl(path, "status"); err == nil {
		st = new(mountStatus)
		if err := json.Unmarshal([]byte(raw), st); err != nil {
			fmt.Fprintf(stderr, "spoolfs status: bad figures from %s: %v\n", path, err)
			return exitFailure
		}
	}
	sessions, err := listSessions(path)
	if err != nil {
		fmt.Fprintf(stderr, "spoolfs status: %v\n", err)
		return exitFailure
	}
	if *asJSON {
		if sessions == nil {
			sessions = []*sessionInfo{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			Mount    *mountStatus   `json:"mount,omitempty"`
			Sessions []*sessionInfo `json:"sessions"`
		}{st, sessions})
		return exitOK
	}
	if st != nil {
		printMountStatus(stdout, st)
		fmt.Fprintln(stdout)
	}
	printSessions(stdout, sessions, time.Now())
	return exitOK
}

func printMountStatus(w io.Writer, st *mountStatus) {
	ib := func(n int64) string { return humanize.IBytes(uint64(n)) }
	capacity := "unlimited"
	if st.Capacity > 0 {
		capacity = ib(st.Capacity)
	}
	inodes := "unlimited"
	if st.Inodes > 0 {
		inodes = humanize.Comma(st.Inodes)
	}
	fmt.Fprintf(w, "capacity    %s used of %s\n", ib(st.Used), capacity)
	fmt.Fprintf(w, "ram         %s of %s budget (files up to %s stay in RAM)\n", ib(st.RAMUsed), ib(st.RAMBudget), ib(st.SpillThreshold))
	fmt.Fprintf(w, "spilled     %s on disk in %s files (%s spills so far)\n", ib(st.DiskUsed), humanize.Comma(st.SpilledFiles), humanize.Comma(st.Spills))
	fmt.Fprintf(w, "inodes      %s used of %s\n", humanize.Comma(st.InodesUsed), inodes)
	fmt.Fprintf(w, "sessions    %d\n", st.Sessions)
}
