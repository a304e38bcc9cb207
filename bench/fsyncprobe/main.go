// Command fsyncprobe measures what an fsync costs on this machine's disk
// in the shape of a durable store's group commits: a small write and an
// fsync of one file, again and again, with a short pause between. It
// prints the distribution and the worst fsync of every second, which is
// what the tail latency of durable sends follows (docs/benchmarks.md,
// "Durable sends").
//
//	go run ./bench/fsyncprobe -dir . -size 8192 -gap 1ms -duration 30s
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

func main() {
	dir := flag.String("dir", ".", "directory for the probe's file (on the disk to measure)")
	size := flag.Int("size", 8192, "bytes written before each fsync")
	gap := flag.Duration("gap", time.Millisecond, "pause between fsyncs")
	duration := flag.Duration("duration", 30*time.Second, "how long to probe")
	flag.Parse()
	if err := probe(*dir, *size, *gap, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "fsyncprobe:", err)
		os.Exit(1)
	}
}

func probe(dir string, size int, gap, duration time.Duration) error {
	f, err := os.CreateTemp(dir, "fsyncprobe-*")
	if err != nil {
		return err
	}
	defer os.Remove(filepath.Join(dir, filepath.Base(f.Name())))
	defer f.Close()
	buf := make([]byte, size)
	var all []time.Duration
	var worst []time.Duration // per second
	start := time.Now()
	for time.Since(start) < duration {
		t := time.Now()
		if _, err := f.Write(buf); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("fsync: %w", err)
		}
		d := time.Since(t)
		all = append(all, d)
		sec := int(time.Since(start) / time.Second)
		for len(worst) <= sec {
			worst = append(worst, 0)
		}
		worst[sec] = max(worst[sec], d)
		time.Sleep(gap)
	}
	if len(all) == 0 {
		return fmt.Errorf("no fsync in %v", duration)
	}
	slices.Sort(all)
	q := func(p float64) time.Duration { return all[min(len(all)-1, int(p*float64(len(all))))] }
	fmt.Printf("fsyncs %d  p50 %v  p99 %v  p99.9 %v  max %v\n", len(all), q(0.5), q(0.99), q(0.999), all[len(all)-1])
	fmt.Print("worst per second (ms):")
	for _, w := range worst {
		fmt.Printf(" %d", w.Milliseconds())
	}
	fmt.Println()
	return nil
}
