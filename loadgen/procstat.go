package loadgen

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"imload/reports"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat. It is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// ProcSample is one reading of a process's resource use from /proc.
type ProcSample struct {
	CPUSeconds float64 // user + system CPU time so far
	RSSBytes   int64   // current resident set size (VmRSS)
	HWMBytes   int64   // peak resident set size (VmHWM)
}

// ReadProc reads /proc/PID/stat and /proc/PID/status (pid 0 = this process).
func ReadProc(pid int) (ProcSample, error) {
	p := "self"
	if pid > 0 {
		p = strconv.Itoa(pid)
	}
	var s ProcSample
	stat, err := os.ReadFile("/proc/" + p + "/stat")
	if err != nil {
		return s, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("/proc/%s/stat: unexpected format", p)
	}
	f := bytes.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%s/stat: too few fields", p)
	}
	ut, _ := strconv.ParseInt(string(f[11]), 10, 64)
	st, _ := strconv.ParseInt(string(f[12]), 10, 64)
	s.CPUSeconds = float64(ut+st) / clockTicks
	status, err := os.ReadFile("/proc/" + p + "/status")
	if err != nil {
		return s, err
	}
	for _, line := range bytes.Split(status, []byte("\n")) {
		switch {
		case bytes.HasPrefix(line, []byte("VmRSS:")):
			s.RSSBytes = kbField(line)
		case bytes.HasPrefix(line, []byte("VmHWM:")):
			s.HWMBytes = kbField(line)
		}
	}
	return s, nil
}

func kbField(line []byte) int64 {
	f := bytes.Fields(line)
	if len(f) < 2 {
		return 0
	}
	v, _ := strconv.ParseInt(string(f[1]), 10, 64)
	return v * 1024
}

// procWatch samples one process every second during a run: the CPU time used
// between start and stop, and the highest RSS seen.
type procWatch struct {
	pidOf func() int // the process to watch now (a restarted server is a new one)
	pid   int
	cpu   float64 // CPU seconds of the processes watched before pid
	mu    sync.Mutex
	start ProcSample
	last  ProcSample
	peak  int64
	ok    bool
	stop  chan struct{}
	done  chan struct{}
}

func watchProc(pid int) *procWatch { return watchProcOf(func() int { return pid }) }

// watchProcOf watches the process pidOf names, which may change (a server
// restarted by a fault): CPU times add up over the processes, the RSS peak
// is the highest of any.
func watchProcOf(pidOf func() int) *procWatch {
	pid := pidOf()
	w := &procWatch{pidOf: pidOf, pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	if s, err := ReadProc(pid); err == nil {
		w.start, w.last, w.peak, w.ok = s, s, s.RSSBytes, true
	}
	go func() {
		defer close(w.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				w.sample()
			}
		}
	}()
	return w
}

func (w *procWatch) sample() {
	pid := w.pidOf()
	s, err := ReadProc(pid)
	if err != nil {
		return
	}
	w.mu.Lock()
	if pid != w.pid {
		// A new process: what the old one used until its last sample is
		// kept, the new one counts from its start.
		w.cpu += w.last.CPUSeconds - w.start.CPUSeconds
		w.pid = pid
		w.start = ProcSample{}
		w.ok = true
	}
	w.last = s
	w.peak = max(w.peak, s.RSSBytes)
	w.mu.Unlock()
}

// finish stops sampling and returns the process's use during the watch
// (nil when /proc could not be read).
func (w *procWatch) finish() *reports.Process {
	close(w.stop)
	<-w.done
	w.sample()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.ok {
		return nil
	}
	return &reports.Process{CPUSeconds: round3(w.cpu + w.last.CPUSeconds - w.start.CPUSeconds), RSSPeakBytes: w.peak}
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }
