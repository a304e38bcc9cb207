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

// procTrack follows one process (or the processes that replace each
// other under one name: a server restarted by a fault) between samples.
type procTrack struct {
	pidOf func() int // the process to watch now (a restarted server is a new one)
	pid   int
	cpu   float64 // CPU seconds of the processes watched before pid
	start ProcSample
	last  ProcSample
	peak  int64
	ok    bool
}

func newProcTrack(pidOf func() int) *procTrack {
	pid := pidOf()
	t := &procTrack{pidOf: pidOf, pid: pid}
	if s, err := ReadProc(pid); err == nil {
		t.start, t.last, t.peak, t.ok = s, s, s.RSSBytes, true
	}
	return t
}

// sample reads the process again and returns its RSS now (ok false: it
// could not be read, e.g. it has exited).
func (t *procTrack) sample() (rss int64, ok bool) {
	pid := t.pidOf()
	s, err := ReadProc(pid)
	if err != nil {
		return 0, false
	}
	if pid != t.pid {
		// A new process: what the old one used until its last sample is
		// kept, the new one counts from its start.
		t.cpu += t.last.CPUSeconds - t.start.CPUSeconds
		t.pid = pid
		t.start = ProcSample{}
		t.ok = true
	}
	t.last = s
	t.peak = max(t.peak, s.RSSBytes)
	return s.RSSBytes, true
}

// cpuSeconds is the CPU time used since the watch began.
func (t *procTrack) cpuSeconds() float64 { return t.cpu + t.last.CPUSeconds - t.start.CPUSeconds }

// ServerProcess names one process of a server made of several (imload run
// --nodes: each node and the redis-server), for WithServerProcesses.
type ServerProcess struct {
	// Name names it in the result ("n0", …, "redis-server").
	Name string
	// Target is a node's ws:// address (as in Run.Nodes); "" for a
	// process that is not a node.
	Target string
	// PID returns its process id.
	PID func() int
}

// procWatch samples one process, or the several processes of a server,
// every second during a run: the CPU time used between start and stop,
// and the highest RSS seen (of each, and of their sum).
type procWatch struct {
	parts []ServerProcess // names of the tracks, when several
	mu    sync.Mutex
	track []*procTrack
	peak  int64 // the highest summed RSS
	stop  chan struct{}
	done  chan struct{}
}

func watchProc(pid int) *procWatch { return watchProcOf(func() int { return pid }) }

// watchProcOf watches the process pidOf names, which may change (a server
// restarted by a fault): CPU times add up over the processes, the RSS peak
// is the highest of any.
func watchProcOf(pidOf func() int) *procWatch {
	return watchProcs([]ServerProcess{{PID: pidOf}})
}

// watchProcs watches every process of ps together: each sample reads them
// all, and their RSS is summed.
func watchProcs(ps []ServerProcess) *procWatch {
	w := &procWatch{stop: make(chan struct{}), done: make(chan struct{})}
	if len(ps) > 1 {
		w.parts = ps
	}
	for _, p := range ps {
		t := newProcTrack(p.PID)
		w.track = append(w.track, t)
		if t.ok {
			w.peak += t.last.RSSBytes
		}
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
	w.mu.Lock()
	defer w.mu.Unlock()
	var sum int64
	for _, t := range w.track {
		if rss, ok := t.sample(); ok {
			sum += rss
		}
	}
	w.peak = max(w.peak, sum)
}

// finish stops sampling and returns the processes' use during the watch
// (nil when /proc could not be read for any).
func (w *procWatch) finish() *reports.Process {
	close(w.stop)
	<-w.done
	w.sample()
	w.mu.Lock()
	defer w.mu.Unlock()
	var out *reports.Process
	var cpu float64
	for i, t := range w.track {
		if !t.ok {
			continue
		}
		if out == nil {
			out = &reports.Process{}
		}
		cpu += t.cpuSeconds()
		if w.parts != nil {
			out.Processes = append(out.Processes, reports.ProcessPart{Name: w.parts[i].Name, Target: w.parts[i].Target,
				CPUSeconds: round3(t.cpuSeconds()), RSSPeakBytes: t.peak})
		}
	}
	if out != nil {
		out.CPUSeconds, out.RSSPeakBytes = round3(cpu), w.peak
	}
	return out
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }
