package main

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// taskStat is one thread's CPU time and context switches so far.
type taskStat struct {
	user, sys   time.Duration
	vol, nonvol int64
}

// taskStats reads every thread of process pid ("self" too).
func taskStats(pid string) map[int]taskStat {
	m := map[int]taskStat{}
	dir := "/proc/" + pid + "/task/"
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var ts taskStat
		if b, err := os.ReadFile(dir + e.Name() + "/stat"); err == nil {
			if i := bytes.LastIndexByte(b, ')'); i >= 0 {
				// f[0] is field 3 (state); utime and stime are 14 and 15.
				if f := strings.Fields(string(b[i+1:])); len(f) > 12 {
					u, _ := strconv.ParseInt(f[11], 10, 64)
					s, _ := strconv.ParseInt(f[12], 10, 64)
					const hz = 100
					ts.user, ts.sys = time.Duration(u)*time.Second/hz, time.Duration(s)*time.Second/hz
				}
			}
		}
		if b, err := os.ReadFile(dir + e.Name() + "/status"); err == nil {
			for line := range strings.SplitSeq(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
					ts.vol, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				} else if v, ok := strings.CutPrefix(line, "nonvoluntary_ctxt_switches:"); ok {
					ts.nonvol, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				}
			}
		}
		m[tid] = ts
	}
	return m
}

// threadReport says, per thread that did something between two
// taskStats, its user and system time and voluntary/involuntary context
// switches, per check: where a checker's CPU goes.
func threadReport(before, after map[int]taskStat, checks int64) string {
	if checks <= 0 {
		checks = 1
	}
	var parts []string
	var cs int64
	for _, tid := range slices.Sorted(func(yield func(int) bool) {
		for tid := range after {
			if !yield(tid) {
				return
			}
		}
	}) {
		a, p := after[tid], before[tid]
		d := taskStat{a.user - p.user, a.sys - p.sys, a.vol - p.vol, a.nonvol - p.nonvol}
		cs += d.vol + d.nonvol
		if d.user+d.sys < 10*time.Millisecond && d.vol+d.nonvol < 100 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%d:u%.0f/s%.0fµs,cs%.2f/%.2f", tid,
			float64(d.user.Microseconds())/float64(checks), float64(d.sys.Microseconds())/float64(checks),
			float64(d.vol)/float64(checks), float64(d.nonvol)/float64(checks)))
	}
	return fmt.Sprintf(" cs/check=%.2f threads{%s}", float64(cs)/float64(checks), strings.Join(parts, " "))
}
