// @ts-check
// Offsets tracks, per room, the epoch and the last offset delivered (to one
// tab). accept() classifies an incoming message so that every offset is
// shown once and in order; get() gives the epoch and offset a join sends to
// resume the room after a reconnect.
export class Offsets {
  constructor(entries) {
    this.m = new Map();
    for (const e of entries || []) {
      if (e && typeof e.room === 'string') this.m.set(e.room, { epoch: e.epoch || '', offset: Number(e.offset) || 0 });
    }
  }

  has(room) { return this.m.has(room); }
  get(room) { return this.m.get(room); }
  rooms() { return [...this.m.keys()]; }
  delete(room) { this.m.delete(room); }
  set(room, epoch, offset) { this.m.set(room, { epoch: epoch || '', offset: Number(offset) || 0 }); }

  // advance raises the offset (never lowers it within an epoch).
  advance(room, epoch, offset) {
    const s = this.m.get(room);
    if (!s || s.epoch !== epoch) this.set(room, epoch, offset);
    else if (offset > s.offset) s.offset = offset;
  }

  // accept returns 'new' (deliver; state advanced), 'dup' (drop: already
  // delivered), 'gap' (deliver; offsets in between are missing) or 'epoch'
  // (the room's history was replaced: drop what is shown, then deliver).
  accept(msg) {
    const s = this.m.get(msg.room);
    if (!s || !s.epoch) { this.set(msg.room, msg.epoch, msg.offset); return 'new'; }
    if (msg.epoch !== s.epoch) { this.set(msg.room, msg.epoch, msg.offset); return 'epoch'; }
    if (msg.offset <= s.offset) return 'dup';
    const gap = s.offset > 0 && msg.offset > s.offset + 1;
    s.offset = msg.offset;
    return gap ? 'gap' : 'new';
  }

  // filter keeps the messages of one room not yet delivered, in order.
  // It reports reset when the epoch changed (the caller must clear the room).
  filter(room, epoch, messages) {
    const s = this.m.get(room);
    let reset = false;
    if (s && s.epoch && epoch && s.epoch !== epoch) { reset = true; this.set(room, epoch, 0); }
    if (!this.m.has(room)) this.set(room, epoch, 0);
    const st = this.m.get(room);
    if (!st.epoch) st.epoch = epoch;
    const out = [];
    for (const msg of messages || []) {
      if (msg.offset > st.offset) { out.push(msg); st.offset = msg.offset; }
    }
    return { messages: out, reset };
  }

  toJSON() { return [...this.m].map(([room, s]) => ({ room, epoch: s.epoch, offset: s.offset })); }
}
