// @ts-check
// DmSync keeps the hub's private conversations (dms.js) in step with the
// server's history (docs/protocol.md, dm_history and dm_list), as the
// rooms are kept by their joins and offsets:
//   * after an attach, once per user and link: dm_list, then dm_history
//     for each conversation whose epoch or newest offset the browser does
//     not have (a fresh browser learns its conversations this way), and
//     for each one it has that the server does not list (gone: expired,
//     or another holder of a name);
//   * when a DM skips an offset (add() reports the gap);
//   * when a tab opens a conversation (the hub waits a little for it).
// A sync asks for what follows the offset the browser has in the
// conversation's epoch (or, without one, for the latest messages) and
// pages on while the server says more; one sync at a time per
// conversation (a sync asked meanwhile runs again after it).
import { foldName } from './dms.js';

/** the most pages one sync asks for before it stops */
const MAX_PAGES = 100;

export class DmSync {
  /**
   * @param {{dms: import('./dms.js').DmStore, sessions: Map<number, any>, conn: {hello: any},
   *   cfg: {historyN: number}, request: (s: any, cmd: string, body: any) => Promise<any>,
   *   serverId: () => string, dmsMerged: (me: string, peer: string, added: any[], reset: boolean) => void}} hub
   */
  constructor(hub) {
    this.hub = hub;
    /** @type {Map<string, {again: boolean, promise: Promise<void>}>} */
    this.running = new Map();
    /** @type {Set<string>} users whose conversations were listed on this link */
    this.listed = new Set();
  }

  /** enabled reports whether the server keeps private messages (its hello). */
  enabled() {
    const h = this.hub.conn.hello || {};
    return Number(h.dm_history_max) > 0;
  }

  /** linkDown forgets what was listed: the next attach lists again. */
  linkDown() { this.listed.clear(); }

  /** attached: session s of a user is attached; list its conversations once per link. */
  attached(s) {
    const me = s.user;
    if (!me || !this.enabled() || this.listed.has(foldName(me))) return;
    this.listed.add(foldName(me));
    this.hub.request(s, 'dm_list', {}).then((r) => this.gotList(me, r), () => this.listed.delete(foldName(me)));
  }

  /** @param {string} me @param {any} r the dm_list reply */
  async gotList(me, r) {
    if (r.code !== 200 || !r.body) { this.listed.delete(foldName(me)); return; }
    /** @type {Map<string, any>} */
    const server = new Map();
    for (const c of r.body.conversations || []) server.set(foldName(c.peer), c);
    const local = new Map();
    for (const c of await this.hub.dms.list(me)) local.set(foldName(c.peer), c);
    /** @type {Map<string, string>} */
    const peers = new Map();
    for (const c of server.values()) peers.set(foldName(c.peer), c.peer);
    // what the server no longer lists (beyond the newest it lists: still there)
    if (!r.body.more) for (const c of local.values()) if (c.epoch && !server.has(foldName(c.peer))) peers.set(foldName(c.peer), c.peer);
    for (const [f, peer] of peers) {
      const sc = server.get(f);
      const lc = local.get(f);
      if (sc && lc && lc.epoch === sc.epoch && lc.top >= sc.top) continue; // up to date
      this.sync(me, peer);
    }
  }

  /**
   * sync brings user me's conversation with peer up to date with the
   * server's history; the promise resolves when it is (or when it could
   * not be).
   * @param {string} me @param {string} peer @returns {Promise<void>}
   */
  sync(me, peer) {
    if (!this.enabled()) return Promise.resolve();
    const key = `${foldName(me)}\n${foldName(peer)}`;
    const cur = this.running.get(key);
    if (cur) { cur.again = true; return cur.promise; }
    const run = { again: false, promise: Promise.resolve() };
    run.promise = this.run(me, peer, run).catch(() => {}).finally(() => { if (this.running.get(key) === run) this.running.delete(key); });
    this.running.set(key, run);
    return run.promise;
  }

  /** @param {string} me @param {string} peer @param {{again: boolean}} run */
  async run(me, peer, run) {
    for (let pages = 0; pages < MAX_PAGES; pages++) {
      const s = this.session(me);
      if (!s) return;
      const c = await this.hub.dms.get(me, peer);
      const max = Number((this.hub.conn.hello || {}).max_history) || 500;
      const body = c && c.epoch ? { peer, epoch: c.epoch, after: c.top, limit: max } : { peer, limit: this.hub.cfg.historyN };
      const r = await this.hub.request(s, 'dm_history', body);
      if (r.code !== 200 || !r.body) return;
      const { added, reset, peer: spelt } = await this.hub.dms.merge(me, peer, r.body, this.hub.serverId());
      this.hub.dmsMerged(me, spelt || peer, added, reset);
      const resumed = !!body.epoch && !r.body.reset;
      if (resumed && r.body.more && (r.body.messages || []).length) continue; // the rest of what we missed
      if (run.again) { run.again = false; continue; }
      return;
    }
  }

  /** session returns an attached session of user me, or null. @param {string} me */
  session(me) {
    const f = foldName(me);
    for (const s of this.hub.sessions.values()) if (s.attached && foldName(s.user) === f) return s;
    return null;
  }
}
