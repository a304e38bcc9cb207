// Package store persists the history of chat rooms for imload serve: each
// room's epoch and its last messages, bounded by count and age. The hub keeps
// the retained history in memory and serves every read from there; a Store
// only makes it survive a restart, and writes off the hot path, in batches.
package store

import (
	"context"
	"errors"

	"imload/mux"
)

// Room is a room as loaded at start-up: its name, its epoch and its retained
// messages, oldest first (offsets increasing by one).
type Room struct {
	Name     string
	Epoch    string
	Messages []mux.Message
}

// ConvMeta is a conversation of private messages as CreateConv records
// it: its name (the two users' keys in order, joined by '|'), its epoch,
// and its two users (as spelt) and their generations, in the order of the
// name.
type ConvMeta struct {
	Name, Epoch string
	Users, Gens [2]string
}

// Conv is a conversation as loaded at start-up, with its retained
// messages, oldest first (offsets increasing by one; each message's Room
// is the conversation's name).
type Conv struct {
	ConvMeta
	Messages []mux.Message
}

// ErrFull is returned by Append, CreateRoom and DeleteRoom when the queue
// of changes not yet committed is full: the disk does not keep up. The
// change is not queued; the caller refuses the request that made it (the
// hub answers 503 unavailable) rather than wait.
var ErrFull = errors.New("store: queue of changes is full")

// ErrClosed is returned by Load and by the queuing calls on a closed store.
var ErrClosed = errors.New("store is closed")

// Committed names the newest message of a room that a transaction made
// durable: every message of that room with an offset up to Offset, in that
// epoch, is committed.
type Committed struct {
	Room, Epoch string
	Offset      uint64
	// DM: Room names a conversation of private messages (AppendDM).
	DM bool
}

// Store persists rooms and their messages.
//
// Append and the room calls never wait: they queue the change, or refuse it
// with ErrFull when the queue is full, and a background writer applies
// queued changes in batches (one transaction per batch). Changes are
// committed in the order they were queued. After each commit the writer
// calls Options.OnCommit with the newest message of every room the
// transaction appended to; a durable server releases a message (its reply
// and its pushes) only then. Flush waits until everything queued before it
// is committed. All methods are safe for concurrent use.
type Store interface {
	// Load returns every stored room with its messages, trimmed to the
	// store's bounds (the newest max messages, none older than max age),
	// with Room and Epoch set in each message. A room whose messages are
	// all gone is still returned, with its epoch: the hub decides when a
	// room with no members and no history is deleted. Changes still queued
	// are not seen; Flush first to include them.
	Load(ctx context.Context) ([]Room, error)
	// CreateRoom queues the record of a new room and its epoch. Recording
	// a room again with the same epoch changes nothing; with another epoch
	// (the room was made again) it replaces the room and drops its old
	// messages.
	CreateRoom(name, epoch string) error
	// DeleteRoom queues forgetting a room and its messages (the room
	// expired) if the room is stored with epoch: a deletion that reaches
	// the store after the room was made again (another epoch) changes
	// nothing. Deletions may fill only half of the queue (ErrFull beyond),
	// leaving the rest to messages.
	DeleteRoom(name, epoch string) error
	// Append queues a message for writing. A message whose offset is
	// stored already replaces it (so a replay is harmless).
	Append(m mux.Message) error
	// LoadConvs, CreateConv, DeleteConv and AppendDM are Load,
	// CreateRoom, DeleteRoom and Append for the conversations of private
	// messages, kept apart from the rooms with bounds of their own
	// (Options.DMMaxMessages, DMMaxAge), in the same queue and the same
	// transactions (OnCommit reports them with Committed.DM).
	LoadConvs(ctx context.Context) ([]Conv, error)
	CreateConv(c ConvMeta) error
	DeleteConv(name, epoch string) error
	AppendDM(m mux.Message) error
	// Flush blocks until every change queued before the call is written, or
	// ctx ends. It reports changes that could not be written.
	Flush(ctx context.Context) error
	// Err is nil while the store writes what it is given; else why not:
	// the error of the batch the writer is retrying (it goes back to nil
	// once the batch is written), or ErrClosed after Close.
	Err() error
	// Close flushes, stops the writer and releases the database. Calls
	// after the first return nil; the queuing calls after Close return
	// ErrClosed and Load an error wrapping it.
	Close() error
}
