package store

import (
	"context"

	"imload/mux"
)

// memory is a Store that persists nothing.
type memory struct{}

// NewMemory returns a Store that persists nothing: Load returns no rooms and
// every other method returns at once. The hub keeps history in RAM itself, so
// with this store history lasts as long as the process (imload serve
// --memory, quick tests).
func NewMemory() Store { return memory{} }

// Load returns no rooms.
func (memory) Load(context.Context) ([]Room, error) { return nil, nil }

// CreateRoom does nothing.
func (memory) CreateRoom(string, string) error { return nil }

// DeleteRoom does nothing.
func (memory) DeleteRoom(string, string) error { return nil }

// Append does nothing.
func (memory) Append(mux.Message) error { return nil }

// LoadConvs returns no conversations.
func (memory) LoadConvs(context.Context) ([]Conv, error) { return nil, nil }

// CreateConv does nothing.
func (memory) CreateConv(ConvMeta) error { return nil }

// DeleteConv does nothing.
func (memory) DeleteConv(string, string) error { return nil }

// AppendDM does nothing.
func (memory) AppendDM(mux.Message) error { return nil }

// Flush returns nil at once.
func (memory) Flush(context.Context) error { return nil }

// Err returns nil.
func (memory) Err() error { return nil }

// Close returns nil.
func (memory) Close() error { return nil }
