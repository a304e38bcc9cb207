// @ts-check
// auth.js: JSON Web Tokens on the browser side (a server started with
// --auth jwt: docs/protocol.md "Authentication", docs/browser.md
// "Authentication"). Not the anonymous name-resume token of peers.js.
//
// Tabs of one browser share one login: the hub keeps one token per user
// (TokenBook) and asks a tab for one (the tab's getToken, client.js) only
// when it needs one: to attach a session when it has no token of that user
// valid, and when the server says token_expiring. Two tabs of one user
// cause one getToken call, and one refresh per expiry, whose new token the
// hub sends in a refresh for every session of that user. HubAuth is the
// hub's side of it: the SharedWorker, the leader tab and each direct tab run
// the same Hub, so the same code; direct tabs (a hub each) share their
// tokens over a BroadcastChannel, one tab at a time under a Web Lock per
// user (JwtShare), so they too ask once.
//
// The hub reads a token's payload (sub, exp) without verifying it: the
// server verifies. A new hub (a new leader tab, a restarted SharedWorker)
// does not ask again for what its tabs still hold: each tab remembers the
// newest token of its user it knows (its getToken's, or the one the hub told
// it) and says it in its hello (state.jwt); the hub checks it as a getToken
// answer (offerHello). Tab <-> hub messages:
//   hub -> tab {op:'token_req', id, user, reason, after}  (reason: attach, refresh, expired)
//   tab -> hub {op:'token', id, jwt, error}                (within the tab's tokenTimeoutMs, else ignored)
//   tab -> hub {op:'hello', ..., state: {..., jwt}}        (the token the tab knows, '' if none)
//   hub -> tab {op:'jwt', jwt}                             (the token its session attached or refreshed with)
//   tab -> hub {op:'reauth'}                               (client.retryAuth())
//   hub -> tab events {k:'detached', code, error, msg, reason}, {k:'auth_error', code, error, msg}
import { foldName } from './dms.js';
import { ERR, CODE, CLIENT_ERR, CLIENT_CODE, transient } from './errors.js';
import { WORKER_NAME } from './version.js';

/** AUTH_JWT is the hello's auth when sessions attach with a token. */
export const AUTH_JWT = 'jwt';

// The pushes of --auth jwt (docs/protocol.md §4).
const EV_EXPIRING = 'token_expiring';
const EV_DETACHED = 'detached';
// RETRY_MS: an attach refused for a while (503) is tried again after this, times the tries.
const RETRY_MS = 2000;

/**
 * DEFAULT_TOKEN_TIMEOUT_MS is how long the hub waits for a tab's getToken
 * (client.js tokenTimeoutMs) before the attach or refresh waiting for it
 * fails with no_token.
 */
export const DEFAULT_TOKEN_TIMEOUT_MS = 10000;

/**
 * tokenTimeout is the tokenTimeoutMs a tab's hello gave, if a number >= 0
 * (0: no timeout), else DEFAULT_TOKEN_TIMEOUT_MS.
 * @param {unknown} v @returns {number}
 */
export function tokenTimeout(v) {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : DEFAULT_TOKEN_TIMEOUT_MS;
}

/** @typedef {{jwt: string, user: string, key: string, exp: number}} TokenEntry */

/**
 * decodeJwt reads a JSON Web Token's payload without verifying it: its
 * sub, its exp (in Unix milliseconds) and its display name. It returns
 * null for anything that is not a JWS compact token whose payload has a
 * string sub and a numeric exp.
 * @param {unknown} jwt
 * @returns {{sub: string, exp: number, name: string}|null}
 */
export function decodeJwt(jwt) {
  if (typeof jwt !== 'string' || jwt.length > 8192) return null;
  const parts = jwt.split('.');
  if (parts.length !== 3 || !parts[1]) return null;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    const p = JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
    if (!p || typeof p.sub !== 'string' || !p.sub || typeof p.exp !== 'number' || !Number.isFinite(p.exp)) return null;
    return { sub: p.sub, exp: p.exp * 1000, name: typeof p.name === 'string' ? p.name : '' };
  } catch {
    return null;
  }
}

/** tokenError is the Error a token that cannot be used rejects with. @param {string} msg */
function tokenError(msg) {
  const e = /** @type {Error & {error: string, code: number}} */ (new Error(msg));
  e.error = CLIENT_ERR.noToken;
  e.code = CLIENT_CODE.noToken;
  return e;
}

/**
 * TokenBook keeps the newest token of each user (keyed by the folded user
 * name) and makes sure a token is asked for once per user at a time:
 * obtain() with a request under way for that user waits for it.
 */
export class TokenBook {
  /** @param {{now?: () => number, minLifeMs?: number, share?: JwtShare|null}} [o] */
  constructor({ now = Date.now, minLifeMs = 1000, share = null } = {}) {
    this.now = now;
    this.minLifeMs = minLifeMs;
    /** @type {Map<string, TokenEntry>} */
    this.tokens = new Map();
    /** @type {Map<string, Promise<TokenEntry>>} */
    this.pending = new Map();
    this.share = share;
    if (share) share.bind(this);
  }

  /**
   * usable: e is a token that lives more than minLifeMs from now, and
   * expires after `after` (a refresh wants one newer than the expiring).
   * @param {TokenEntry|null|undefined} e @param {number} [after]
   */
  usable(e, after = 0) { return !!e && e.exp - this.now() > this.minLifeMs && e.exp > after; }

  /** valid returns the user's token if usable, else null. @param {string} key @param {number} [after] */
  valid(key, after = 0) {
    const e = key ? this.tokens.get(key) : undefined;
    return e && this.usable(e, after) ? e : null;
  }

  /**
   * offer keeps jwt if it is a token newer than the one kept for its user
   * (another direct tab's, say); it returns its entry, or null.
   * @param {string} jwt
   */
  offer(jwt) {
    const d = decodeJwt(jwt);
    if (!d || d.exp <= this.now()) return null;
    const e = { jwt, user: d.sub, key: foldName(d.sub), exp: d.exp };
    const old = this.tokens.get(e.key);
    if (!old || old.exp < e.exp) this.tokens.set(e.key, e);
    return e;
  }

  /**
   * take checks a token a tab gave (a JWT with sub and exp, of user key
   * if key is not '', not expired) and keeps it.
   * @param {string} jwt @param {string} key @param {string} user
   * @returns {TokenEntry}
   */
  take(jwt, key, user) {
    const d = decodeJwt(jwt);
    if (!d) throw tokenError('getToken gave something that is not a JSON Web Token with sub and exp');
    if (key && foldName(d.sub) !== key) throw tokenError(`getToken gave a token for "${d.sub}", not for "${user || key}"`);
    if (d.exp <= this.now()) throw tokenError(`getToken gave a token that expired at ${new Date(d.exp).toISOString()}`);
    return /** @type {TokenEntry} */ (this.offer(jwt));
  }

  /** forget drops the user's token (only if it is jwt, when given). @param {string} key @param {string} [jwt] */
  forget(key, jwt = '') {
    const e = this.tokens.get(key);
    if (e && (!jwt || e.jwt === jwt)) this.tokens.delete(key);
  }

  /**
   * obtain resolves with a usable token of user key expiring after
   * `after`: the one kept, the one being asked for, or a new one from
   * ask() (a tab's getToken), asked once however many wait for it. With
   * key '' (a tab that did not say who it is) nothing is shared.
   * @param {string} key @param {string} user @param {number} after @param {() => Promise<string>} ask
   * @returns {Promise<TokenEntry>}
   */
  async obtain(key, user, after, ask) {
    const have = this.valid(key, after);
    if (have) return have;
    const p = key ? this.pending.get(key) : undefined;
    if (p) {
      const e = await p;
      if (this.usable(e, after)) return e;
    }
    return this.fetch(key, user, after, ask);
  }

  /** @param {string} key @param {string} user @param {number} after @param {() => Promise<string>} ask */
  fetch(key, user, after, ask) {
    const share = this.share;
    const run = async () => {
      if (!share || !key) return this.take(await ask(), key, user);
      // direct tabs: one at a time per user, and a token another tab has
      // (or got while we waited for the lock) is used instead of asking
      return share.exclusive(key, async () => {
        let e = this.valid(key, after);
        if (e) return e;
        await share.ask(key, after);
        e = this.valid(key, after);
        if (e) return e;
        e = this.take(await ask(), key, user);
        share.publish(e.jwt);
        return e;
      });
    };
    const p = run();
    if (key) {
      this.pending.set(key, p);
      const done = () => { if (this.pending.get(key) === p) this.pending.delete(key); };
      p.then(done, done);
    }
    return p;
  }
}

/**
 * JwtShare lets the direct-mode hubs of one browser (a hub per tab) share
 * their users' tokens: a Web Lock per user makes them get a token one at a
 * time, and a BroadcastChannel carries the tokens (same origin only, as
 * localStorage would):
 *   {op:'want', key, after}   a hub asks for a token of user key newer than after
 *   {op:'jwt', jwt}           a hub's token (answer, or one it just got)
 */
export class JwtShare {
  /**
   * @param {{locks?: any, BC?: any, name?: string, waitMs?: number, setTimer?: (f: () => void, ms: number) => any, clearTimer?: (id: any) => void}} [o]
   */
  constructor({
    locks = globalThis.navigator && globalThis.navigator.locks, BC = globalThis.BroadcastChannel, name = `${WORKER_NAME}-jwt`,
    waitMs = 150, setTimer = (f, ms) => setTimeout(f, ms), clearTimer = (id) => clearTimeout(id),
  } = {}) {
    this.locks = locks;
    this.BC = BC;
    this.name = name;
    this.waitMs = waitMs;
    this.setTimer = setTimer;
    this.clearTimer = clearTimer;
    /** @type {TokenBook|null} */
    this.book = null;
    /** @type {any} */
    this.bc = null;
    /** @type {Set<{key: string, after: number, done: () => void}>} */
    this.waits = new Set();
  }

  /** supported: Web Locks and BroadcastChannel exist. */
  static supported(locks = globalThis.navigator && globalThis.navigator.locks, BC = globalThis.BroadcastChannel) {
    return !!(locks && typeof locks.request === 'function' && typeof BC === 'function');
  }

  /** bind starts listening for the book. @param {TokenBook} book */
  bind(book) {
    this.book = book;
    this.bc = new this.BC(this.name);
    this.bc.onmessage = (/** @type {MessageEvent} */ e) => this.onBus(e.data);
  }

  /** @param {any} d */
  onBus(d) {
    if (!d || typeof d !== 'object' || !this.book) return;
    if (d.op === 'want' && typeof d.key === 'string') {
      const e = this.book.valid(d.key, Number(d.after) || 0);
      if (e) this.publish(e.jwt);
    } else if (d.op === 'jwt' && typeof d.jwt === 'string') {
      const e = this.book.offer(d.jwt);
      if (!e) return;
      for (const w of [...this.waits]) if (w.key === e.key && this.book.usable(e, w.after)) w.done();
    }
  }

  /**
   * exclusive runs fn holding this browser's Web Lock of user key.
   * @template T @param {string} key @param {() => Promise<T>} fn @returns {Promise<T>}
   */
  exclusive(key, fn) { return this.locks.request(`${this.name}-${key}`, fn); }

  /**
   * ask asks the other tabs for a token of user key expiring after
   * `after`, and resolves when one came, or after waitMs.
   * @param {string} key @param {number} after @returns {Promise<void>}
   */
  ask(key, after) {
    return new Promise((resolve) => {
      const w = { key, after, done: () => { this.clearTimer(t); this.waits.delete(w); resolve(); } };
      const t = this.setTimer(w.done, this.waitMs);
      this.waits.add(w);
      this.post({ op: 'want', key, after });
    });
  }

  /** publish tells the other tabs a token. @param {string} jwt */
  publish(jwt) { this.post({ op: 'jwt', jwt }); }

  /** @param {any} m */
  post(m) { try { if (this.bc) this.bc.postMessage(m); } catch { /* closed */ } }

  close() {
    for (const w of [...this.waits]) w.done();
    if (this.bc) { this.bc.close(); this.bc = null; }
  }
}

/**
 * @typedef {{id: string, key: string, user: string, reason: string, after: number, tabId: string, timer: any, ms: number,
 *   resolve: (jwt: string) => void, reject: (e: Error) => void}} Ask
 */

/**
 * HubAuth is the hub's side of --auth jwt: which token a session attaches
 * with, asking a tab for one, refreshing every session of a user on
 * token_expiring, attaching again after token_expired, and keeping a
 * session the server disconnected (or whose token was refused) detached
 * until its tab asks again (retryAuth). The hub calls it from attach,
 * attached, onPush and its tab messages.
 */
export class HubAuth {
  /** @param {any} hub the Hub @param {{share?: JwtShare|null, minLifeMs?: number}} [o] */
  constructor(hub, { share = null, minLifeMs = 1000 } = {}) {
    this.hub = hub;
    this.book = new TokenBook({ now: hub.now, minLifeMs, share });
    this.share = share;
    /** @type {Map<string, Ask>} */
    this.asks = new Map();
    this.askSeq = 0;
    this.stats = { asks: 0, tokenTimeouts: 0, refreshes: 0, refreshFailures: 0, expired: 0, reattached: 0, disconnected: 0, failures: 0 };
  }

  /** on: this connection's sessions attach with a token (hello auth jwt). */
  get on() { const h = this.hub.conn.hello; return !!h && h.auth === AUTH_JWT; }

  /** key is the folded user a session is (declared by its tab, or its token's). @param {any} s */
  key(s) { return foldName(s.login || s.user || ''); }

  /** gen names the hub's connection (each open counts): a token awaited on one is not used on the next. */
  gen() { return this.hub.conn.stats.opens; }

  /**
   * tokenNow returns the token session s attaches with now, or '' when it
   * must not attach now: it was refused or disconnected, or it has no
   * token yet; then one is obtained (a tab asked), and s attached with it
   * (its rooms joined behind) when it comes.
   * @param {any} s @returns {string}
   */
  tokenNow(s) {
    if (s.authFailure) return '';
    const key = this.key(s);
    const e = this.book.valid(key);
    if (e) return e.jwt;
    const gen = this.gen();
    if (s.authWait === gen) return ''; // asked already on this connection
    s.authWait = gen;
    const user = s.login || s.user || '';
    const reason = s.expiredAt ? 'expired' : 'attach';
    this.book.obtain(key, user, 0, () => this.ask(s, key, user, reason, 0)).then((got) => {
      if (s.authWait !== gen) return;
      s.authWait = 0;
      if (!s.login) s.login = got.user; // a tab that did not say who it is: its token did
      if (this.hub.sessions.has(s.sid) && !s.attached && this.gen() === gen && this.hub.conn.isOpen) this.hub.attach(s, false, true);
    }, (err) => {
      if (s.authWait !== gen) return;
      s.authWait = 0;
      if (this.hub.sessions.has(s.sid)) this.fail(s, { code: CLIENT_CODE.noToken, error: CLIENT_ERR.noToken, msg: String(err && err.message ? err.message : err) }, 'auth_error');
    });
    return '';
  }

  /**
   * offerHello takes the token a tab's hello carries (state.jwt: what its
   * getToken gave, or what a hub told it) as a getToken answer: checked
   * (a JWT with sub and exp, of the tab's user, not expired) and kept if
   * newer than the book's, so that the session (and the other sessions
   * of that user) attach with it without asking. A token that fails the
   * checks is ignored (logged): the hub asks getToken as before. A tab
   * that did not say who it is is the user its token names.
   * @param {any} s @param {unknown} jwt
   */
  offerHello(s, jwt) {
    if (typeof jwt !== 'string' || !jwt) return;
    try {
      const e = this.book.take(jwt, this.key(s), s.login || s.user || '');
      if (!s.login) s.login = e.user;
    } catch (err) {
      this.hub.log('hello token ignored', s.login || '', String(err && err.message ? err.message : err));
    }
  }

  /**
   * tell tells s's tab the token its session attached or refreshed with
   * ({op:'jwt', jwt}): its own user's only, which the tab says in its
   * next hello (to a new hub). @param {any} s
   */
  tell(s) {
    const tab = s.tab;
    if (!s.jwt || !tab || !this.hub.tabs.has(tab.id)) return;
    try { tab.ep.post({ op: 'jwt', jwt: s.jwt }); } catch (e) { this.hub.log('jwt', String(e)); }
  }

  /** waiting: s has no attach on the wire because it waits for a token. @param {any} s */
  waiting(s) { return !!s.authWait && s.authWait === this.gen(); }

  /**
   * ask asks one live tab of user key (s's own first) for a token, with
   * its getToken; another tab of that user is asked if it goes first. A
   * tab that does not answer within its tokenTimeoutMs fails the ask
   * (no_token); its late answer is ignored, and the next need asks again.
   * @param {any} s @param {string} key @param {string} user @param {string} reason @param {number} after
   * @returns {Promise<string>}
   */
  ask(s, key, user, reason, after) {
    return new Promise((resolve, reject) => {
      /** @type {Ask} */
      const q = { id: `t${++this.askSeq}`, key, user, reason, after, tabId: s.tab ? s.tab.id : '', timer: null, ms: 0, resolve, reject };
      this.asks.set(q.id, q);
      this.sendAsk(q, s.tab);
    });
  }

  /** @param {Ask} q @param {any} prefer */
  sendAsk(q, prefer) {
    this.stopTimer(q);
    const tabs = [prefer, ...this.hub.tabs.values()].filter((t) => t && this.hub.tabs.has(t.id) && t.getToken &&
      (t === prefer || (q.key && this.key(t.session) === q.key)));
    const tab = tabs[0];
    if (!tab) {
      this.asks.delete(q.id);
      q.reject(tokenError(`the server needs a token (--auth jwt) and no tab${q.user ? ` of ${q.user}` : ''} gives one: pass getToken to connect()`));
      return;
    }
    q.tabId = tab.id;
    this.stats.asks++;
    // the tab's getToken may never settle (a backend that hangs): the
    // attach or refresh waiting for it fails after the tab's timeout
    q.ms = tokenTimeout(tab.tokenTimeoutMs);
    if (q.ms > 0) q.timer = this.hub.setTimer(() => this.timedOut(q), q.ms);
    try { tab.ep.post({ op: 'token_req', id: q.id, user: q.user, reason: q.reason, after: q.after }); } catch (e) { this.hub.log('token_req', String(e)); }
  }

  /** @param {Ask} q */
  stopTimer(q) {
    if (q.timer !== null) { this.hub.clearTimer(q.timer); q.timer = null; }
  }

  /** timedOut: q's tab did not answer within q.ms. @param {Ask} q */
  timedOut(q) {
    q.timer = null;
    if (this.asks.get(q.id) !== q) return;
    this.asks.delete(q.id);
    this.stats.tokenTimeouts++;
    this.hub.log('getToken timed out', q.user, q.reason, q.ms);
    q.reject(tokenError(`getToken did not answer within ${q.ms} ms`));
  }

  /** answer takes a tab's {op:'token', id, jwt, error}. @param {any} m */
  answer(m) {
    const q = this.asks.get(m && m.id);
    if (!q) return; // answered already, or too late (timed out)
    this.asks.delete(q.id);
    this.stopTimer(q);
    if (typeof m.jwt === 'string' && m.jwt) q.resolve(m.jwt);
    else q.reject(tokenError(`getToken failed: ${m.error || 'no token'}`));
  }

  /** tabGone asks another tab what a tab that went was asked. @param {string} tabId */
  tabGone(tabId) {
    for (const q of [...this.asks.values()]) if (q.tabId === tabId) this.sendAsk(q, null);
  }

  /**
   * attachReply looks at an attach's reply: it records the token's expiry
   * on success (false: the hub goes on), else handles the refusal (true):
   * an expired token is replaced and the session attached again, a refusal
   * that may pass (503) is tried again a little later (three times at most
   * in a row), any other refusal leaves the session detached and tells its
   * tab (auth_error).
   * @param {any} s @param {{code: number, error?: string, msg?: string, body?: any}} r
   */
  attachReply(s, r) {
    if (r.code === CODE.ok || r.code === CODE.sessionExists) {
      const b = r.body || {};
      if (b.expires) s.jwtExp = Number(b.expires);
      if (!s.login && b.user) s.login = b.user;
      s.authRetries = 0;
      if (s.expiredAt) { s.expiredAt = 0; this.stats.reattached++; }
      this.tell(s);
      return false;
    }
    const again = (s.authRetries = (s.authRetries || 0) + 1) <= 3;
    if (again && transient(r.error || '')) {
      // the server is busy (503 unavailable: it waits for its JWK Set):
      // the same token, a little later, on this connection
      const gen = this.gen();
      this.hub.setTimer(() => {
        if (this.gen() === gen && this.hub.conn.isOpen && this.hub.sessions.has(s.sid) && !s.attached && !s.authFailure && !this.waiting(s)) this.hub.attach(s, false, true);
      }, RETRY_MS * s.authRetries);
      return true;
    }
    this.book.forget(this.key(s), s.jwt);
    if (again && r.error === ERR.tokenExpired) { this.hub.attach(s, false, true); return true; }
    this.fail(s, { code: r.code, error: r.error || '', msg: r.msg || `attach refused (${r.code})` }, 'auth_error');
    return true;
  }

  /**
   * onPush handles token_expiring and detached (true), else false.
   * @param {string} ev @param {number[]} sids @param {any} body
   */
  onPush(ev, sids, body) {
    if (ev === EV_EXPIRING) { this.expiring(sids, Number(body.expires) || 0); return true; }
    if (ev !== EV_DETACHED) return false;
    let changed = false;
    for (const sid of sids) {
      const s = this.hub.sessions.get(sid);
      if (!s) continue;
      s.attached = false;
      s.catchup.clear(); // what was held comes again when the rooms resume
      changed = true;
      if (body.error === ERR.tokenExpired) {
        // transparent: a new token, the session attached again, its rooms
        // resumed from the offsets it has (as after a reconnect)
        this.stats.expired++;
        s.expiredAt = this.hub.now();
        this.book.forget(this.key(s), s.jwt);
        this.hub.attach(s, false, true);
        continue;
      }
      if (body.error === ERR.disconnected) { this.stats.disconnected++; this.book.forget(this.key(s)); }
      // do not attach again by ourselves: the tab tells its user
      this.fail(s, { code: Number(body.code) || 0, error: String(body.error || ''), msg: String(body.msg || ''), reason: String(body.reason || '') }, EV_DETACHED);
    }
    if (changed) this.hub.tabsChanged();
    return true;
  }

  /**
   * expiring: the tokens of sessions sids expire at `expires`. One token
   * newer than that per user (asked of one tab of the user, unless the
   * book has it already), then a refresh for every session of the user
   * on an older token.
   * @param {number[]} sids @param {number} expires
   */
  expiring(sids, expires) {
    const users = new Map();
    for (const sid of sids) {
      const s = this.hub.sessions.get(sid);
      if (s && s.attached && !users.has(this.key(s))) users.set(this.key(s), s);
    }
    for (const [key, s] of users) {
      const user = s.login || s.user || '';
      this.book.obtain(key, user, expires, () => this.ask(s, key, user, 'refresh', expires)).then((e) => this.refreshUser(key, e), (err) => {
        // the session goes on until its token expires; then it attaches
        // again with a new one (asking again)
        this.stats.refreshFailures++;
        this.hub.log('refresh: no token', user, String(err && err.message ? err.message : err));
      });
    }
  }

  /** refreshUser sends a refresh with e to every attached session of user key on an older token. @param {string} key @param {TokenEntry} e */
  refreshUser(key, e) {
    for (const s of this.hub.sessions.values()) {
      if (!s.attached || this.key(s) !== key || s.jwt === e.jwt || s.refreshing === e.jwt || (s.jwtExp || 0) >= e.exp) continue;
      s.refreshing = e.jwt;
      this.hub.cmd(s, 'refresh', { jwt: e.jwt }, null, (r) => this.refreshed(s, e, r));
    }
  }

  /** @param {any} s @param {TokenEntry} e @param {any} r */
  refreshed(s, e, r) {
    if (s.refreshing === e.jwt) s.refreshing = '';
    if (r.code !== CODE.ok) {
      // not_attached: the old token expired first, and the detach
      // attaches again; a refused token is not used again
      this.stats.refreshFailures++;
      if (r.error !== ERR.notAttached) this.book.forget(e.key, e.jwt);
      this.hub.log('refresh refused', s.sid, r.error, r.msg);
      return;
    }
    this.stats.refreshes++;
    s.jwt = e.jwt;
    s.jwtExp = Number(r.body && r.body.expires) || e.exp;
    this.tell(s);
    // the new token allows fewer rooms: the server took the session out
    for (const room of (r.body && r.body.left) || []) {
      s.joined.delete(room);
      s.rooms.delete(room);
      s.catchup.delete(room);
      this.hub.post(s.tab, { k: 'left', room, reason: ERR.forbidden });
    }
  }

  /**
   * fail leaves s detached until its tab asks again (retry), and tells
   * the tab: kind 'detached' (the server detached it) or 'auth_error'.
   * @param {any} s @param {{code: number, error: string, msg: string, reason?: string}} f @param {string} kind
   */
  fail(s, f, kind) {
    this.stats.failures++;
    s.authFailure = f;
    s.attached = false;
    this.hub.post(s.tab, { k: kind, ...f }, true);
  }

  /** retry attaches s again (a tab's retryAuth), asking for a token if none is valid. @param {any} s */
  retry(s) {
    s.authFailure = null;
    s.authRetries = 0;
    if (this.hub.conn.isOpen && !s.attached && !this.waiting(s)) this.hub.attach(s, false, true);
  }

  info() { return { ...this.stats, users: [...this.book.tokens.values()].map((e) => ({ user: e.user, exp: e.exp })), asking: this.asks.size }; }

  close() {
    for (const q of this.asks.values()) { this.stopTimer(q); q.reject(tokenError('the hub stopped')); }
    this.asks.clear();
    if (this.share) this.share.close();
  }
}
