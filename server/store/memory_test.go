package store

import (
	"context"
	"testing"
	"time"
)

func TestMemory(t *testing.T) {
	s := NewMemory()
	s.CreateRoom("r", "e1")
	s.Append(msg("r", "e1", 1, time.Now()))
	s.DeleteRoom("r", "e1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	rooms, err := s.Load(context.Background())
	if err != nil || len(rooms) != 0 {
		t.Fatalf("Load = %v, %v; want no rooms", rooms, err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s.Append(msg("r", "e1", 2, time.Now())) // after Close: still a no-op
}
