// Package store persists the history of chat rooms for imload serve: each
// room's epoch and its last messages, bounded by count and age. The hub keeps
// the retained history in memory and serves every read from there; a Store
// only makes it survive a restart, and writes off the hot path, in batches.
package store

import (
	"context"

	"imload/mux"
)

// Room is a room as loaded at start-up: its name, its epoch and its retained
// messages, oldest first (offsets increasing by one).
type Room struct {
	Name     string
	Epoch    string
	Messages []mux.Message
}

// Store persists rooms and their messages.
//
// Append and the room calls do not wait for I/O: they queue the change and
// a background writer applies queued changes in batches (one transaction per
// batch). The queue is bounded; when it is full (the disk cannot keep up)
// Append waits for room, which pushes back on the senders instead of losing
// messages or growing without bound. Flush waits until everything queued before it
// is durable. All methods are safe for concurrent use.
type Store interface {
	// Load returns every stored room with its messages, trimmed to the
	// store's bounds (the newest max messages, none older than max age),
	// with Room and Epoch set in each message. A room whose messages are
	// all gone is still returned, with its epoch: the hub decides when a
	// room with no members and no history is deleted. Changes still queued
	// are not seen; Flush first to include them.
	Load(ctx context.Context) ([]Room, error)
	// CreateRoom records a new room and its epoch. Recording a room again
	// with the same epoch changes nothing; with another epoch (the room was
	// made again) it replaces the room and drops its old messages.
	CreateRoom(name, epoch string)
	// DeleteRoom forgets a room and its messages (the room expired).
	DeleteRoom(name string)
	// Append queues a message for writing, waiting while the queue is full.
	// A message whose offset is stored already replaces it (so a replay is
	// harmless).
	Append(m mux.Message)
	// Flush blocks until every change queued before the call is written, or
	// ctx ends. It reports changes that could not be written.
	Flush(ctx context.Context) error
	// Close flushes, stops the writer and releases the database. Calls
	// after the first, and any other call after Close, do nothing (Load
	// returns an error).
	Close() error
}
