// @ts-check
// DirectPeers: the tabs of one browser in direct mode (a socket each) find
// each other over a BroadcastChannel, so that they are still one user: a
// tab hands its name's token to the others (the server lets a name be
// taken on several connections only with its token), and each knows how
// many sockets its browser holds (the panel's "This browser").
//   {op:'who', from}                       a tab asks everyone to announce
//   {op:'here', from, open, user, token}   a tab's state
//   {op:'bye', from}                       a tab goes
import { BUS_NAME } from './version.js';
import { foldName } from './dms.js';

/** @typedef {{open: boolean, user: string, token: string, at: number}} Peer */

export class DirectPeers {
  /**
   * @param {{tabId: string, BC?: typeof BroadcastChannel, now?: () => number, onChange?: () => void, expireMs?: number}} o
   */
  constructor({ tabId, BC = globalThis.BroadcastChannel, now = Date.now, onChange = () => {}, expireMs = 16000 }) {
    this.tabId = tabId;
    this.BC = BC;
    this.now = now;
    this.onChange = onChange;
    this.expireMs = expireMs;
    /** @type {Map<string, Peer>} */
    this.peers = new Map();
    this.me = { open: false, user: '', token: '' };
    /** @type {BroadcastChannel|null} */
    this.bc = null;
  }

  static supported(BC = globalThis.BroadcastChannel) { return typeof BC === 'function'; }

  start() {
    if (!DirectPeers.supported(this.BC)) return;
    this.bc = new this.BC(`${BUS_NAME}-direct`);
    this.bc.onmessage = (e) => this.onBus(e.data);
    this.ask();
  }

  // ask asks every other direct tab to announce itself.
  ask() { this.postBus({ op: 'who', from: this.tabId }); }

  /** announce tells the others this tab's state. @param {{open?: boolean, user?: string, token?: string}} st */
  announce(st = {}) {
    this.me = { ...this.me, ...st };
    this.postBus({ op: 'here', from: this.tabId, ...this.me });
  }

  /** @param {any} m */
  postBus(m) { try { if (this.bc) this.bc.postMessage(m); } catch { /* closed */ } }

  /** @param {any} d */
  onBus(d) {
    if (!d || typeof d !== 'object' || d.from === this.tabId || typeof d.from !== 'string') return;
    if (d.op === 'who') { this.announce(); return; }
    if (d.op === 'bye') { if (this.peers.delete(d.from)) this.onChange(); return; }
    if (d.op === 'here') {
      this.peers.set(d.from, { open: !!d.open, user: String(d.user || ''), token: String(d.token || ''), at: this.now() });
      this.onChange();
    }
  }

  expire() {
    let changed = false;
    for (const [id, p] of this.peers) if (this.now() - p.at > this.expireMs) { this.peers.delete(id); changed = true; }
    if (changed) this.onChange();
  }

  /** tokenFor returns the token another tab holds for name, or ''. @param {string} name */
  tokenFor(name) {
    const f = foldName(name);
    for (const p of this.peers.values()) if (p.token && foldName(p.user) === f) return p.token;
    return '';
  }

  /** sockets is how many of the other direct tabs hold an open socket. */
  sockets() { let n = 0; for (const p of this.peers.values()) if (p.open) n++; return n; }

  close() {
    this.postBus({ op: 'bye', from: this.tabId });
    if (this.bc) { this.bc.close(); this.bc = null; }
  }
}

// TokenStore keeps the token of each name this browser used (localStorage
// "imload.tokens", at most 20 names), so a name can be taken back after
// every tab closed: the server keeps it reserved to its token for a while
// (docs/protocol.md, "Names and tokens"). Without storage it keeps nothing.
export class TokenStore {
  constructor(key = 'imload.tokens', storage = globalThis.localStorage) {
    this.key = key;
    this.storage = storage;
  }

  /** @returns {Record<string, string>} */
  all() {
    try { return JSON.parse((this.storage && this.storage.getItem(this.key)) || '{}') || {}; } catch { return {}; }
  }

  /** @param {string} name */
  get(name) {
    const all = this.all();
    const f = foldName(name);
    for (const [n, t] of Object.entries(all)) if (foldName(n) === f) return t;
    return '';
  }

  /** @param {string} name @param {string} token */
  set(name, token) {
    if (!name || !token || !this.storage) return;
    try {
      const t = this.all();
      for (const n of Object.keys(t)) if (foldName(n) === foldName(name)) delete t[n];
      t[name] = token;
      const names = Object.keys(t);
      for (const n of names.slice(0, Math.max(0, names.length - 20))) delete t[n];
      this.storage.setItem(this.key, JSON.stringify(t));
    } catch { /* no storage: names are not taken back after a reload */ }
  }
}
