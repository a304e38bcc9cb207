// @ts-check
// RoomCache keeps the recent messages of each room (seed section 3.3.1):
// the worker shows them at once when a tab opens a room and asks the server
// only for what came after. Every change goes through one ordered queue, so
// writes land in the order the messages arrived, and a read sees every write
// queued before it. Consecutive appends are merged into one write.
//
// A backend stores the data: MemoryBackend here (tests, and where IndexedDB
// is missing), IDBBackend in idb.js. Backend interface:
//   read(room, limit) -> Promise<{epoch, messages}|null>   (messages ascending)
//   write(room, {epoch, clear, add, trimBelow}) -> Promise  (one transaction)
// and, for the outbox and the private messages, records in named stores
// ("outbox" keyed by cid, "dms" keyed by key):
//   getAll(store) -> Promise<records>, put(store, record), del(store, key)

export const KEYS = Object.freeze({ outbox: 'cid', dms: 'key' });

export class MemoryBackend {
  constructor() { this.rooms = new Map(); this.writes = 0; /** @type {Map<string, Map<string, any>>} */ this.stores = new Map(); }
  /** @param {string} store */
  kv(store) { let m = this.stores.get(store); if (!m) { m = new Map(); this.stores.set(store, m); } return m; }
  /** @param {string} store */
  async getAll(store) { return [...this.kv(store).values()].map((v) => structuredClone(v)); }
  /** @param {string} store @param {any} v */
  async put(store, v) { this.kv(store).set(v[KEYS[store]], structuredClone(v)); }
  /** @param {string} store @param {string} key */
  async del(store, key) { this.kv(store).delete(key); }
  async read(room, limit) {
    const r = this.rooms.get(room);
    if (!r) return null;
    return { epoch: r.epoch, messages: r.messages.slice(-limit).map((m) => ({ ...m })) };
  }
  async write(room, op) {
    this.writes++;
    let r = this.rooms.get(room);
    if (!r || op.clear) { r = { epoch: op.epoch, messages: [] }; this.rooms.set(room, r); }
    r.epoch = op.epoch;
    for (const m of op.add || []) r.messages.push({ ...m });
    if (op.trimBelow) r.messages = r.messages.filter((m) => m.offset >= op.trimBelow);
  }
}

export class RoomCache {
  /** @param {any} [backend] @param {{keep?: number, onError?: (e: unknown) => void}} [o] */
  constructor(backend = new MemoryBackend(), { keep = 200, onError = () => {} } = {}) {
    this.backend = backend;
    this.keep = keep;
    this.onError = onError;
    this.state = new Map(); // room -> {epoch, messages} (mirror of what is stored, up to keep)
    this.ops = [];
    this.running = false;
    this.stats = { reads: 0, writes: 0, appended: 0, replaced: 0, skipped: 0 };
  }

  // load returns {epoch, messages} of a room (after every queued write), or
  // null when nothing is cached.
  load(room) {
    return this.enqueue({ kind: 'load', room });
  }

  append(room, messages) {
    if (!messages || !messages.length) return this.idle();
    return this.enqueue({ kind: 'append', room, messages: messages.slice() });
  }

  // replace drops the room's cache and stores messages instead (the server
  // said our offsets are gone: epoch changed or too old).
  replace(room, epoch, messages) {
    return this.enqueue({ kind: 'replace', room, epoch, messages: (messages || []).slice() });
  }

  idle() { return this.enqueue({ kind: 'noop' }); }

  enqueue(op) {
    return new Promise((resolve) => {
      op.resolve = resolve;
      this.ops.push(op);
      if (!this.running) {
        // set before drain() runs: drain may finish without awaiting
        this.running = true;
        this.drain();
      }
    });
  }

  async drain() {
    try {
      while (this.ops.length) {
        const op = this.ops.shift();
        if (op.kind === 'append') {
          // merge the following appends of the same room into one write
          const group = [op];
          while (this.ops.length && this.ops[0].kind === 'append' && this.ops[0].room === op.room) group.push(this.ops.shift());
          const msgs = group.flatMap((g) => g.messages);
          try { await this.doAppend(op.room, msgs); } catch (e) { this.onError(e); }
          for (const g of group) g.resolve();
          continue;
        }
        let result;
        try {
          if (op.kind === 'load') result = await this.doLoad(op.room);
          else if (op.kind === 'replace') await this.doReplace(op.room, op.epoch, op.messages);
        } catch (e) { this.onError(e); result = null; }
        op.resolve(result);
      }
    } finally {
      this.running = false;
    }
  }

  async mirror(room) {
    let st = this.state.get(room);
    if (st) return st;
    this.stats.reads++;
    let r = null;
    try { r = await this.backend.read(room, this.keep); } catch (e) { this.onError(e); }
    st = r && r.epoch ? { epoch: r.epoch, messages: contiguousTail(r.messages || []) } : { epoch: '', messages: [] };
    this.state.set(room, st);
    return st;
  }

  async doLoad(room) {
    const st = await this.mirror(room);
    if (!st.epoch) return null;
    return { epoch: st.epoch, messages: st.messages.slice(), top: top(st) };
  }

  async doAppend(room, msgs) {
    const st = await this.mirror(room);
    let clear = false;
    const add = [];
    for (const m of msgs) {
      if (!m || typeof m.offset !== 'number') continue;
      const t = top(st);
      if (st.epoch && m.epoch === st.epoch && m.offset <= t) { this.stats.skipped++; continue; }
      if (!st.epoch || m.epoch !== st.epoch || (t > 0 && m.offset !== t + 1)) {
        // new epoch, or a gap: the cache restarts at this message so that
        // it always holds one contiguous run of offsets
        if (st.epoch || st.messages.length) clear = true;
        st.epoch = m.epoch;
        st.messages = [];
        add.length = 0;
      }
      st.messages.push(m);
      add.push(m);
      this.stats.appended++;
    }
    if (!add.length && !clear) return;
    const trimBelow = this.trim(st);
    this.stats.writes++;
    await this.backend.write(room, { epoch: st.epoch, clear, add: add.filter((m) => m.offset >= trimBelow), trimBelow });
  }

  async doReplace(room, epoch, msgs) {
    const sorted = contiguousTail(msgs.filter((m) => m && m.epoch === epoch).sort((a, b) => a.offset - b.offset));
    const st = { epoch, messages: sorted };
    this.state.set(room, st);
    const trimBelow = this.trim(st);
    this.stats.replaced++;
    this.stats.writes++;
    await this.backend.write(room, { epoch, clear: true, add: st.messages.slice(), trimBelow });
  }

  trim(st) {
    if (st.messages.length > this.keep) st.messages = st.messages.slice(-this.keep);
    return st.messages.length ? st.messages[0].offset : 0;
  }
}

function top(st) { return st.messages.length ? st.messages[st.messages.length - 1].offset : 0; }

// contiguousTail keeps the newest run of consecutive offsets.
function contiguousTail(msgs) {
  let i = msgs.length - 1;
  while (i > 0 && msgs[i - 1].offset === msgs[i].offset - 1) i--;
  return msgs.slice(Math.max(0, i));
}
