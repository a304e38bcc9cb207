package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"imload/mux"
)

// benchRooms creates rooms rooms and returns their names.
func benchRooms(s Store, rooms int) []string {
	names := make([]string, rooms)
	for i := range names {
		names[i] = fmt.Sprintf("room-%03d", i)
		s.CreateRoom(names[i], "epoch-"+names[i])
	}
	return names
}

// benchMessage makes a message of about 100 bytes of text, sent now.
func benchMessage(room string, off uint64) mux.Message {
	return mux.Message{
		Room:   room,
		Offset: off,
		Epoch:  "epoch-" + room,
		From:   "someone",
		Color:  "#12ab34",
		Text:   "a chat message of about a hundred bytes, which is what people type most of the time, give or take",
		TS:     time.Now().UnixMilli(),
		CID:    "cid-0123456789",
	}
}

// BenchmarkAppend measures messages per second through the queue to disk:
// b.N appends spread over 100 rooms, then a Flush, so every message is
// committed within the measured time.
func BenchmarkAppend(b *testing.B) {
	for _, par := range []bool{false, true} {
		name := "serial"
		if par {
			name = "parallel"
		}
		b.Run(name, func(b *testing.B) {
			s, err := OpenSQLite(context.Background(), b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			rooms := benchRooms(s, 100)
			tops := make([]atomic.Uint64, len(rooms))
			var next atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			if par {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						r := next.Add(1) % uint64(len(rooms))
						s.Append(benchMessage(rooms[r], tops[r].Add(1)))
					}
				})
			} else {
				for i := range b.N {
					r := i % len(rooms)
					s.Append(benchMessage(rooms[r], tops[r].Add(1)))
				}
			}
			if err := s.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkLoad measures Load of 100 rooms of 1000 messages each.
func BenchmarkLoad(b *testing.B) {
	const rooms, perRoom = 100, 1000
	dir := b.TempDir()
	s, err := OpenSQLite(context.Background(), dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	names := benchRooms(s, rooms)
	for off := uint64(1); off <= perRoom; off++ {
		for _, r := range names {
			s.Append(benchMessage(r, off))
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	s, err = OpenSQLite(context.Background(), dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		got, err := s.Load(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != rooms || len(got[rooms-1].Messages) != perRoom {
			b.Fatalf("Load = %d rooms", len(got))
		}
	}
	b.ReportMetric(float64(b.N*rooms*perRoom)/b.Elapsed().Seconds(), "msgs/s")
}
