// @ts-check
// DmStore keeps private messages as conversations, one per (user of this
// browser, peer), with an unread count, in the hub's storage backend
// (IndexedDB store "dms", one record per conversation: at most `keep`
// messages, oldest first). The hub adds every DM it sees (pushes, and the
// replies to its own dm commands) and the pages of the server's history
// (dm_history); tabs list the conversations, read one, and mark it read.
//
// Server-side history (docs/protocol.md, dm_history; docs/browser.md,
// "Private messages"): a conversation of the server has an epoch and
// offsets 1, 2, 3 … A record keeps `epoch` and `top`, the offset up to
// which it has every message of that epoch: the hub asks the server for
// what follows (`dm_history {peer, epoch, after: top}`) after a reconnect,
// when a push skips an offset (add() reports the gap) and when a tab opens
// the conversation; merge() applies the answer. A message is the same
// message as another when both have an offset and it is the same (in the
// same epoch); without one (a server without DM history), the same
// server, id and sender. A new epoch (the server's conversation started
// again: another holder of a name, or it expired) replaces what the record
// had of the old one.

// A DM's `display` is its sender's display name (--auth jwt: the token's
// name claim), kept with it; a conversation's `display` is the peer's, from
// the peer's newest message ('' when that one had none).

/**
 * @typedef {{id: number, from: string, to: string, text: string, ts: number, color?: string, display?: string, cid?: string, srv?: string, epoch?: string, offset?: number}} DM
 * @typedef {{key: string, me: string, peer: string, color: string, display?: string, msgs: DM[], readTs: number, readId: number, top: number, epoch: string, srv: string}} Conv
 * @typedef {{peer: string, color: string, display: string, unread: number, count: number, last: DM|null, top: number, epoch: string}} ConvInfo
 * @typedef {{epoch: string, top?: number, reset?: boolean, more?: boolean, messages?: DM[]}} Page
 * @typedef {{peer: string, gap: boolean, reset: boolean}} Added
 */

/** @param {string} s */
export const foldName = (s) => String(s || '').toLowerCase();
/** @param {string} me @param {string} peer */
const convKey = (me, peer) => `${foldName(me)}\n${foldName(peer)}`;
/** @param {DM} a @param {DM} b */
const order = (a, b) => ((a.epoch && a.epoch === b.epoch && a.offset && b.offset) ? a.offset - b.offset : 0) || (a.ts - b.ts) || (a.id - b.id);
/** @param {DM} a @param {DM} b */
const same = (a, b) => (a.offset && b.offset
  ? a.offset === b.offset && a.epoch === b.epoch
  : a.id === b.id && a.ts === b.ts && foldName(a.from) === foldName(b.from));

export class DmStore {
  /**
   * @param {{getAll: (store: string) => Promise<any[]>, put: (store: string, v: any) => Promise<void>}|null} backend
   * @param {{keep?: number, onError?: (e: unknown) => void}} [opts]
   */
  constructor(backend, { keep = 200, onError = () => {} } = {}) {
    this.backend = backend;
    this.keep = keep;
    this.onError = onError;
    /** @type {Map<string, Conv>} */
    this.convs = new Map();
    /** @type {Promise<void>|null} */
    this.loaded = null;
    /** @type {Promise<void>} */
    this.writes = Promise.resolve();
  }

  /** load reads every stored conversation once. */
  load() {
    if (!this.loaded) {
      this.loaded = (async () => {
        if (!this.backend) return;
        try {
          for (const c of await this.backend.getAll('dms')) {
            if (!c || !c.key || this.convs.has(c.key)) continue;
            if (typeof c.epoch !== 'string') { c.epoch = ''; c.top = 0; } // a record of the days without server history
            this.convs.set(c.key, c);
          }
        } catch (e) { this.onError(e); }
      })();
    }
    return this.loaded;
  }

  /** @param {string} me @param {string} peer @param {string} srv @returns {Conv} */
  conv(me, peer, srv) {
    const key = convKey(me, peer);
    let c = this.convs.get(key);
    if (!c) {
      c = { key, me, peer, color: '', display: '', msgs: [], readTs: 0, readId: 0, top: 0, epoch: '', srv };
      this.convs.set(key, c);
    }
    return c;
  }

  /**
   * add stores a DM seen by user me (a push, or the reply to one's own dm).
   * It returns the conversation's peer ('' when the message was there
   * already), whether an offset was skipped (the hub then syncs the
   * conversation), and whether the conversation started again (a new
   * epoch: what it had of the old one is gone).
   * @param {string} me @param {DM} m @param {string} [srv] the server's identity (its hello)
   * @returns {Promise<Added>}
   */
  async add(me, m, srv = '') {
    await this.load();
    const mine = foldName(m.from) === foldName(me);
    const c = this.conv(me, mine ? m.to : m.from, srv);
    const dm = this.record(m, srv);
    let reset = false;
    if (dm.epoch && c.epoch !== dm.epoch) {
      reset = this.restart(c, dm.epoch);
    }
    if (c.msgs.some((x) => same(x, dm))) return { peer: '', gap: false, reset };
    if (!mine && m.color) c.color = m.color;
    if (!mine) { c.peer = m.from; this.peerDisplay(c, dm); } // the peer's own spelling, and display name
    c.msgs.push(dm);
    this.trim(c);
    let gap = false;
    if (dm.offset) {
      if (dm.offset === c.top + 1) c.top = this.contiguous(c);
      else if (dm.offset > c.top + 1) gap = true;
    }
    if (mine) { c.readTs = dm.ts; c.readId = dm.id; } // what I wrote is read
    this.save(c);
    return { peer: c.peer, gap, reset };
  }

  /**
   * merge applies a page of the server's history of user me's conversation
   * with peer: a reset (or another epoch) replaces what the record had of
   * the old epoch; the messages are added once each; `top` goes up to the
   * last offset the record now has without a gap. A conversation the
   * browser did not have is read up to its newest message (its messages
   * reached another browser of the user live). It returns the messages
   * added, oldest first, and whether the conversation started again.
   * @param {string} me @param {string} peer @param {Page} page @param {string} [srv]
   * @returns {Promise<{added: DM[], reset: boolean, peer: string}>}
   */
  async merge(me, peer, page, srv = '') {
    await this.load();
    const known = this.convs.has(convKey(me, peer));
    const c = this.conv(me, peer, srv);
    const epoch = String(page.epoch || '');
    // a resume goes on in the same epoch; anything else replaces what we had of it
    const restarted = !epoch || !!page.reset || c.epoch !== epoch;
    const had = c.msgs.slice();
    const reset = restarted ? this.restart(c, epoch) : false;
    /** @type {DM[]} */
    const added = [];
    for (const m of (page.messages || []).slice().sort((a, b) => (a.offset || 0) - (b.offset || 0))) {
      const dm = this.record({ ...m, epoch: m.epoch || epoch }, srv);
      if (c.msgs.some((x) => same(x, dm))) continue;
      c.msgs.push(dm);
      if (!had.some((x) => same(x, dm))) added.push(dm); // new to the tabs
      const mine = foldName(dm.from) === foldName(me);
      if (!mine && dm.color) c.color = dm.color;
      if (!mine) { c.peer = dm.from; this.peerDisplay(c, dm); }
    }
    this.trim(c);
    if (epoch) {
      const last = Math.max(0, ...(page.messages || []).map((m) => Number(m.offset) || 0));
      // after a reset the page is the newest messages: go on after the newest
      c.top = restarted ? Math.max(last, Number(page.top) || 0) : this.contiguous(c);
    }
    if (!known && c.msgs.length) {
      const newest = c.msgs[c.msgs.length - 1];
      c.readTs = newest.ts; c.readId = newest.id;
    }
    if (!c.msgs.length && !epoch && !known) this.convs.delete(c.key);
    else this.save(c);
    return { added, reset, peer: c.peer };
  }

  /** restart drops what c had of a server epoch; it reports whether it had any. @param {Conv} c @param {string} epoch */
  restart(c, epoch) {
    const had = !!c.epoch || c.msgs.some((m) => m.epoch);
    c.msgs = c.msgs.filter((m) => !m.epoch);
    c.epoch = epoch;
    c.top = 0;
    return had;
  }

  /** contiguous is the last offset of c's epoch reached from c.top without a gap. @param {Conv} c */
  contiguous(c) {
    const offs = new Set(c.msgs.filter((m) => m.epoch === c.epoch && m.offset).map((m) => m.offset));
    let top = c.top;
    while (offs.has(top + 1)) top++;
    return top;
  }

  /**
   * peerDisplay takes the peer's display name from dm, the peer's, unless
   * the conversation has a newer message of the peer.
   * @param {Conv} c @param {DM} dm
   */
  peerDisplay(c, dm) {
    const f = foldName(c.peer);
    if (c.msgs.some((x) => x !== dm && foldName(x.from) === f && order(x, dm) > 0)) return;
    c.display = dm.display || '';
  }

  /** @param {DM} m @param {string} srv @returns {DM} */
  record(m, srv) {
    /** @type {DM} */
    const dm = { id: Number(m.id) || 0, from: m.from, to: m.to, text: m.text, ts: Number(m.ts) || 0, color: m.color || '', cid: m.cid || '', srv };
    if (typeof m.display === 'string' && m.display) dm.display = m.display;
    if (m.epoch && Number(m.offset) > 0) { dm.epoch = String(m.epoch); dm.offset = Number(m.offset); }
    return dm;
  }

  /** trim keeps the newest `keep` messages of c, in order. @param {Conv} c */
  trim(c) {
    c.msgs.sort(order);
    if (c.msgs.length > this.keep) c.msgs = c.msgs.slice(-this.keep);
  }

  /** get returns the conversation of me with peer, or null. @param {string} me @param {string} peer */
  async get(me, peer) {
    await this.load();
    return this.convs.get(convKey(me, peer)) || null;
  }

  /** markRead marks every message of the conversation read. @param {string} me @param {string} peer */
  async markRead(me, peer) {
    await this.load();
    const c = this.convs.get(convKey(me, peer));
    if (!c || !c.msgs.length) return false;
    const last = c.msgs[c.msgs.length - 1];
    if (c.readTs === last.ts && c.readId === last.id) return false;
    c.readTs = last.ts;
    c.readId = last.id;
    this.save(c);
    return true;
  }

  /** @param {string} me @param {string} peer @returns {Promise<DM[]>} */
  async messages(me, peer) {
    await this.load();
    const c = this.convs.get(convKey(me, peer));
    return c ? c.msgs.slice() : [];
  }

  /** list returns user me's conversations, the newest first. @param {string} me @returns {Promise<ConvInfo[]>} */
  async list(me) {
    await this.load();
    const f = foldName(me);
    const out = [];
    for (const c of this.convs.values()) {
      if (foldName(c.me) !== f || !c.msgs.length) continue;
      const unread = c.msgs.filter((m) => ((m.ts - c.readTs) || (m.id - c.readId)) > 0 && foldName(m.from) !== f).length;
      out.push({ peer: c.peer, color: c.color, display: c.display || '', unread, count: c.msgs.length, last: c.msgs[c.msgs.length - 1] || null, top: c.top, epoch: c.epoch });
    }
    return out.sort((a, b) => ((b.last && b.last.ts) || 0) - ((a.last && a.last.ts) || 0));
  }

  /** @param {Conv} c */
  save(c) {
    if (!this.backend) return;
    const b = this.backend;
    const rec = { ...c, msgs: c.msgs.slice() };
    this.writes = this.writes.then(() => b.put('dms', rec)).catch((e) => this.onError(e));
  }
}
