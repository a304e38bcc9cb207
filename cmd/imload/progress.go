package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"imload/loadgen"
)

// progressPrinter shows imload run's progress (the snapshots the library
// hands loadgen.WithProgress) and its informational lines: on a terminal one
// line rewritten in place every second; otherwise a plain line every Every.
type progressPrinter struct {
	W     io.Writer
	TTY   bool
	Every time.Duration // plain-line interval (default 5 s)

	mu      sync.Mutex
	last    time.Time
	lastLen int
	dirty   bool
}

// Print shows one snapshot.
func (p *progressPrinter) Print(s loadgen.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := formatProgress(s)
	if p.TTY {
		pad := ""
		if n := p.lastLen - len(line); n > 0 {
			pad = strings.Repeat(" ", n)
		}
		fmt.Fprintf(p.W, "\r%s%s", line, pad)
		p.lastLen = len(line)
		p.dirty = true
		return
	}
	every := p.Every
	if every <= 0 {
		every = 5 * time.Second
	}
	if time.Since(p.last) < every {
		return
	}
	p.last = time.Now()
	fmt.Fprintln(p.W, line)
}

// Done ends the in-place line (call before printing anything else).
func (p *progressPrinter) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.TTY && p.dirty {
		fmt.Fprintln(p.W)
		p.dirty = false
		p.lastLen = 0
	}
}

// Logf prints an informational line without breaking the progress line.
func (p *progressPrinter) Logf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.TTY && p.dirty {
		fmt.Fprint(p.W, "\r"+strings.Repeat(" ", p.lastLen)+"\r")
		p.dirty = false
		p.lastLen = 0
	}
	fmt.Fprintf(p.W, "imload run: "+format+"\n", args...)
}

// formatProgress renders a snapshot as one line.
func formatProgress(s loadgen.Progress) string {
	el := s.Elapsed.Truncate(time.Second)
	return fmt.Sprintf("[%s %s %s/%s] conns %d  sessions %d  send %.0f/s  deliver %.0f/s  p99 %s  errors %d  reconnects %d",
		s.Mode, s.Phase, el, s.Total, s.Conns, s.Sessions, s.SendRate, s.DeliverRate, fmtMsShort(s.P99Ms), s.Errors, s.Reconnects)
}

func fmtMsShort(ms float64) string {
	switch {
	case ms <= 0:
		return "-"
	case ms < 10:
		return fmt.Sprintf("%.2fms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.0fms", ms)
	default:
		return fmt.Sprintf("%.1fs", ms/1000)
	}
}
