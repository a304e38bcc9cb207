package mux

// Batch merges frames into one WebSocket message, separated by '\n', up to a
// number of frames and of bytes. It is how both sides merge outgoing frames:
// a writer adds what is ready and sends the batch when it is full or when
// nothing more is ready. The zero Batch has no limits; a Batch is not safe
// for concurrent use.
type Batch struct {
	buf       []byte
	n         int
	maxFrames int
	maxBytes  int
}

// NewBatch returns a Batch that holds at most maxFrames frames and maxBytes
// bytes (0 means no limit). A single frame larger than maxBytes is still
// accepted into an empty batch, so no frame is ever stuck.
func NewBatch(maxFrames, maxBytes int) *Batch {
	return &Batch{maxFrames: maxFrames, maxBytes: maxBytes}
}

// Fits reports whether a frame of size bytes can be added.
func (b *Batch) Fits(size int) bool {
	if b.n == 0 {
		return true
	}
	if b.maxFrames > 0 && b.n >= b.maxFrames {
		return false
	}
	return b.maxBytes <= 0 || len(b.buf)+1+size <= b.maxBytes
}

// Add appends frame if it fits and reports whether it did.
func (b *Batch) Add(frame []byte) bool {
	if !b.Fits(len(frame)) {
		return false
	}
	if b.n > 0 {
		b.buf = append(b.buf, '\n')
	}
	b.buf = append(b.buf, frame...)
	b.n++
	return true
}

// Len returns the number of frames in the batch.
func (b *Batch) Len() int { return b.n }

// Bytes returns the message: the frames joined by '\n'. It aliases the
// batch's buffer until the next Reset.
func (b *Batch) Bytes() []byte { return b.buf }

// Reset empties the batch, keeping its buffer.
func (b *Batch) Reset() { b.buf = b.buf[:0]; b.n = 0 }
