// @ts-check
// DmStore keeps private messages as conversations, one per (user of this
// browser, peer), with an unread count, in the hub's storage backend
// (IndexedDB store "dms", one record per conversation: at most `keep`
// messages, oldest first). The hub adds every DM it sees (pushes, and the
// replies to its own dm commands); tabs list the conversations, read one,
// and mark it read.
//
// Server-side history (docs/browser.md, "Private messages"): a record keeps
// `top`, the highest DM id of the server (`srv`) it has seen; a later
// `dm_history {with, after: top}` per conversation merges its answer with
// add(), which drops what is there already (same server, id and sender).

/**
 * @typedef {{id: number, from: string, to: string, text: string, ts: number, color?: string, cid?: string, srv?: string}} DM
 * @typedef {{key: string, me: string, peer: string, color: string, msgs: DM[], readTs: number, readId: number, top: number, srv: string}} Conv
 * @typedef {{peer: string, color: string, unread: number, count: number, last: DM|null, top: number}} ConvInfo
 */

/** @param {string} s */
export const foldName = (s) => String(s || '').toLowerCase();
/** @param {string} me @param {string} peer */
const convKey = (me, peer) => `${foldName(me)}\n${foldName(peer)}`;
/** @param {DM} a @param {DM} b */
const order = (a, b) => (a.ts - b.ts) || (a.id - b.id);

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
          for (const c of await this.backend.getAll('dms')) if (c && c.key && !this.convs.has(c.key)) this.convs.set(c.key, c);
        } catch (e) { this.onError(e); }
      })();
    }
    return this.loaded;
  }

  /**
   * add stores a DM seen by user me; it returns the conversation's peer, or
   * '' when the message was there already.
   * @param {string} me @param {DM} m @param {string} [srv] the server's identity (its hello)
   */
  async add(me, m, srv = '') {
    await this.load();
    const mine = foldName(m.from) === foldName(me);
    const peer = mine ? m.to : m.from;
    const key = convKey(me, peer);
    let c = this.convs.get(key);
    if (!c) {
      c = { key, me, peer, color: '', msgs: [], readTs: 0, readId: 0, top: 0, srv };
      this.convs.set(key, c);
    }
    const dm = { id: Number(m.id) || 0, from: m.from, to: m.to, text: m.text, ts: Number(m.ts) || 0, color: m.color || '', cid: m.cid || '', srv };
    if (c.msgs.some((x) => x.id === dm.id && x.ts === dm.ts && foldName(x.from) === foldName(dm.from))) return '';
    if (!mine && m.color) c.color = m.color;
    if (!mine) c.peer = m.from; // the peer's own spelling
    c.msgs.push(dm);
    c.msgs.sort(order);
    if (c.msgs.length > this.keep) c.msgs = c.msgs.slice(-this.keep);
    if (srv === c.srv || !c.srv) { c.srv = srv; c.top = Math.max(c.top, dm.id); }
    if (mine) { c.readTs = dm.ts; c.readId = dm.id; } // what I wrote is read
    this.save(c);
    return c.peer;
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
      if (foldName(c.me) !== f) continue;
      const unread = c.msgs.filter((m) => order(m, { ts: c.readTs, id: c.readId, from: '', to: '', text: '' }) > 0 && foldName(m.from) !== f).length;
      out.push({ peer: c.peer, color: c.color, unread, count: c.msgs.length, last: c.msgs[c.msgs.length - 1] || null, top: c.top });
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
