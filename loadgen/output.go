package loadgen

// A socket's output. The engine queues frames (with the browser's lock held)
// into the socket's mux.Batch, or one WebSocket message each when the wire
// does not merge frames; whoever flushes writes them: the shard at the flush
// tick, or at once when a batch is full or a pong must go.

import (
	"bytes"
	"time"

	"github.com/gorilla/websocket"

	"imload/mux"
)

// queue appends one frame to the socket's batch (the frame is copied). When
// the wire does not batch (socket.io), every frame is a WebSocket message of
// its own: they are written one after the other at the flush.
func (s *sock) queue(frame []byte) {
	e := s.b.e
	if !e.traits.Batches {
		s.omu.Lock()
		s.spill = append(s.spill, bytes.Clone(frame))
		s.spillBytes += len(frame)
		now := s.spillBytes >= s.maxBytes
		wasDirty := s.dirty
		s.dirty = true
		s.omu.Unlock()
		e.cnt.framesOut.Add(1)
		if !wasDirty || now {
			s.b.sh.markDirty(s, now)
		}
		return
	}
	s.omu.Lock()
	if s.batch == nil {
		if s.spare != nil {
			s.batch, s.spare = s.spare, nil
		} else {
			s.batch = mux.NewBatch(s.maxFrames, s.maxBytes)
		}
	}
	now := false
	if !s.batch.Add(frame) {
		s.spill = append(s.spill, bytes.Clone(s.batch.Bytes()))
		s.batch.Reset()
		s.batch.Add(frame)
		now = true
	}
	wasDirty := s.dirty
	s.dirty = true
	s.omu.Unlock()
	e.cnt.framesOut.Add(1)
	if !wasDirty || now {
		s.b.sh.markDirty(s, now)
	}
}

// flush writes what is queued as one WebSocket message (plus any spilled
// full batches before it).
func (s *sock) flush() {
	e := s.b.e
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.omu.Lock()
	l := s.wlink
	b := s.batch
	s.batch = nil
	spill := s.spill
	s.spill = nil
	s.spillBytes = 0
	s.dirty = false
	s.omu.Unlock()
	if l == nil {
		return
	}
	write := func(msg []byte) bool {
		if len(msg) == 0 {
			return true
		}
		_ = l.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := l.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
			// The reader sees the broken link too and counts it (unless
			// the generator cut it on purpose).
			l.cutLink()
			return false
		}
		e.cnt.wsOut.Add(1)
		e.cnt.bytesOut.Add(int64(len(msg)))
		return true
	}
	for _, m := range spill {
		if !write(m) {
			return
		}
	}
	if b != nil {
		write(b.Bytes())
		if cap(b.Bytes()) <= 4<<10 {
			b.Reset()
			s.omu.Lock()
			if s.spare == nil && s.wlink == l {
				s.spare = b
			}
			s.omu.Unlock()
		}
	}
}

// setOutput sets the connection writes go to and drops anything queued for
// an older one.
func (s *sock) setOutput(l *wsLink) {
	s.omu.Lock()
	s.wlink = l
	if s.batch != nil {
		s.batch.Reset()
	}
	s.spill = nil
	s.spillBytes = 0
	s.omu.Unlock()
}

// queueNow queues a packet and flushes without waiting for the flush tick
// (a pong).
func (s *sock) queueNow(pkt []byte) {
	s.queue(pkt)
	s.b.sh.markDirty(s, true)
}
