// @ts-check
// client.js: the tab side of imload. A small promise API over the one
// socket of this browser, which lives in a SharedWorker (worker.js), in the
// leader tab (core/leader.js) or, as the last resort, in this tab (direct).
//
//   import { connect } from './client.js';
//   const c = await connect({ name: 'alice' });         // mode chosen automatically
//   c.on('message', (m) => ...);                         // room messages, in offset order, once
//   await c.join('lobby'); await c.send('lobby', 'hi'); await c.dm('bob', 'psst');
//
// With a server started with --auth jwt, pass getToken (a function that
// resolves with a JSON Web Token of your backend) and user (who this tab
// is signed in as): the hub calls getToken only when it needs a token, once
// for all the tabs of that user (docs/browser.md, "Authentication").
//
// See docs/browser.md for every option, event and fallback.
import { Offsets } from './core/offsets.js';
import { validName } from './core/names.js';
import { byteLength } from './core/frames.js';
import { ERR, CODE, CLIENT_ERR } from './core/errors.js';
import { DirectPeers, TokenStore } from './core/peers.js';
import { PROTOCOL_VERSION, WORKER_NAME, TAB_LOCK_PREFIX, DB_NAME, BUILD, MODES, modeFromParam } from './core/version.js';
import { DEFAULT_TOKEN_TIMEOUT_MS, decodeJwt } from './core/auth.js';
import { foldName } from './core/dms.js';

export { MODES, PROTOCOL_VERSION, WORKER_NAME, BUILD, ERR, CODE, CLIENT_ERR };

// DEFAULT_MAX_TEXT is the max_text a client assumes before the server's
// hello says otherwise (docs/protocol.md, Limits).
export const DEFAULT_MAX_TEXT = 4096;

export class TimeoutError extends Error {
  constructor(cmd, ms) {
    super(`${cmd}: no reply within ${ms} ms`);
    this.name = 'TimeoutError';
    this.code = 0;
    this.error = CLIENT_ERR.timeout;
    this.cmd = cmd;
  }
}

export class CommandError extends Error {
  constructor(cmd, r) {
    super(r.msg || r.error || `${cmd} failed with ${r.code}`);
    this.name = 'CommandError';
    this.code = r.code;
    this.error = r.error || '';
    this.cmd = cmd;
  }
}

const DEFAULTS = {
  mode: '',             // '' (auto) | 'shared' | 'leader' | 'direct'
  name: '',             // attach with this name at once ('' = anonymous)
  token: '',
  cmdTimeoutMs: 10000,  // every command rejects with TimeoutError after this
  helloRetryMs: 1500,
  config: {},           // hub settings (flushMs, flushMax, historyN, triesPerAddr, graceMs, slowMs, ...): first tab wins
  base: new URL('./', import.meta.url).href, // where worker.js and core/ are
  server: '',           // the server's http(s) URL (its /lbs and /ws); '' = base
  workerUrl: '',        // the SharedWorker's script; '' = worker.js beside client.js
  workerName: '',       // the SharedWorker's name; '' = WORKER_NAME (protocol and build)
  tokens: null,         // where names' tokens are kept: {get(name), set(name, token)}; null = localStorage
  title: '',
  // --auth jwt (docs/browser.md, "Authentication"): who this tab is
  // signed in as ('' = name), and getToken({user, reason, after}) resolving
  // with a JSON Web Token (not the name token above)
  user: '',
  /** @type {((req: {user: string, reason: string, after: number}) => Promise<string>|string)|null} */
  getToken: null,
  // how long the hub waits for getToken before the attach (or refresh)
  // waiting for it fails with no_token (auth_error); 0 = no limit
  tokenTimeoutMs: DEFAULT_TOKEN_TIMEOUT_MS,
};

export class Client {
  constructor(opts = {}) {
    this.opts = { ...DEFAULTS, ...opts, config: { ...(opts.config || {}) } };
    if (this.opts.server) this.opts.config.server = new URL(this.opts.server, globalThis.location ? location.href : undefined).href;
    this.tokenStore = this.opts.tokens || new TokenStore();
    this.peers = null;       // DirectPeers in direct mode
    this.limits = { maxText: DEFAULT_MAX_TEXT };
    this.tabId = randomId();
    this.handlers = new Map();
    this.pending = new Map();
    this.seq = 0;
    this.cidSeq = 0;
    this.rooms = new Offsets();
    this.joined = new Set();
    this.joining = new Set();
    this.name = validName(this.opts.name) ? this.opts.name : '';
    this.token = this.opts.token || (this.name ? this.tokenStore.get(this.name) : '');
    this.session = null;
    this.hubId = '';
    this.mode = '';
    this.requestedMode = modeFromParam(this.opts.mode);
    this.fallback = '';
    this.status = { state: 'idle' };
    this.tabs = [];
    this.hubConfig = {};
    this.welcomed = false;
    this.closed = false;
    /** @type {Record<string, any>} */
    this.timers = {};
    this.lastPong = 0;
    this.helloTries = 0;
    this.restarted = false;
    /** @type {Set<string>} */
    this.triedTokens = new Set();
    // --auth jwt: the newest token of this tab's user it knows (its
    // getToken's, or the one the hub attached or refreshed it with), in
    // memory only: its hello gives it to a new hub, which need not ask
    this.jwt = '';
    this.jwtExp = 0;
  }

  // ---- events -------------------------------------------------------------
  // message, history, dm, dm_conv, outbox, presence, notice, state, session,
  // name_refused, tabs, peers, left, mode, detached, auth_error (types/client.d.ts)
  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(fn);
    return () => this.handlers.get(type).delete(fn);
  }

  emit(type, ev) {
    for (const fn of this.handlers.get(type) || []) {
      try { fn(ev); } catch (e) { console.error('imload handler', type, e); }
    }
  }

  // ---- connecting ---------------------------------------------------------

  async connect() {
    await this.holdTabLock();
    const want = this.requestedMode;
    const hasShared = typeof SharedWorker === 'function';
    const hasLeader = await leaderSupported();
    if ((want === MODES.shared || !want) && hasShared) {
      try { this.useShared(); } catch (e) {
        this.fallback = `SharedWorker failed: ${e.message || e}`;
        await this.useFallback(hasLeader);
      }
    } else if ((want === MODES.leader || !want || want === MODES.shared) && hasLeader) {
      // shared asked for, or nothing asked: say why this is not a SharedWorker
      if (want !== MODES.leader) this.fallback = 'SharedWorker is not available';
      await this.useLeader();
    } else {
      if (want && want !== MODES.direct) this.fallback = `${want} is not available`;
      await this.useDirect();
    }
    this.installPageHooks();
    await new Promise((resolve) => { this.onWelcome = resolve; this.hello(); });
    return this;
  }

  async useFallback(hasLeader) {
    if (this.link && this.link.close) this.link.close();
    if (hasLeader) await this.useLeader();
    else await this.useDirect();
  }

  // holdTabLock takes a Web Lock that this tab keeps until it dies; the hub
  // asks for the same lock and is granted it only then (tab liveness).
  async holdTabLock() {
    const locks = globalThis.navigator && navigator.locks;
    if (!locks || typeof locks.request !== 'function') return;
    this.lockName = TAB_LOCK_PREFIX + this.tabId;
    await new Promise((granted) => {
      locks.request(this.lockName, () => new Promise((release) => { this.releaseLock = release; granted(); }))
        .catch(() => granted());
    });
  }

  useShared() {
    const url = new URL(this.opts.workerUrl || './worker.js', this.opts.workerUrl ? (globalThis.location ? location.href : import.meta.url) : import.meta.url);
    url.searchParams.set('v', `${PROTOCOL_VERSION}.${BUILD}`);
    // extendedLifetime (Chrome 148+) keeps the worker across a single-tab
    // reload; the hub closes the socket and ends the worker itself when no
    // tab came back within its grace (graceMs)
    const w = new SharedWorker(url, /** @type {any} */ ({ type: 'module', name: this.opts.workerName || WORKER_NAME, extendedLifetime: true }));
    this.worker = w;
    w.addEventListener('error', () => {
      // the worker script failed to load or run: fall back unless forced
      if (this.welcomed || this.requestedMode === MODES.shared) return;
      this.fallback = 'SharedWorker failed to start';
      this.switchToFallback();
    });
    w.port.onmessage = (e) => this.onHub(e.data);
    w.port.start();
    this.link = { post: (m) => w.port.postMessage(m), local: false, kind: 'shared', close: () => w.port.close() };
    // no welcome in time (a worker stuck or unsupported as a module): fall back
    this.timers.sharedCheck = setTimeout(() => {
      if (!this.welcomed && this.requestedMode !== MODES.shared) {
        this.fallback = 'SharedWorker did not answer';
        this.switchToFallback();
      }
    }, 4000);
  }

  async switchToFallback() {
    if (this.link && this.link.kind !== 'shared') return;
    this.link.close();
    await this.useFallback(await leaderSupported());
    this.hello();
  }

  async useLeader() {
    const [{ LeaderLink }, hubMod] = await Promise.all([import('./core/leader.js'), import('./core/hub.js')]);
    const { IDBBackend } = await import('./core/idb.js');
    const ll = new LeaderLink({
      tabId: this.tabId,
      onMessage: (m) => this.onHub(m),
      makeHub: () => this.makeHub(hubMod.Hub, IDBBackend, MODES.leader),
      onLeader: () => { this.emit('mode', this.modeInfo()); this.hello(true); },
    });
    ll.start();
    this.leaderLink = ll;
    this.link = { post: (m) => ll.post(m), get local() { return ll.isLeader; }, kind: 'leader', close: () => ll.close() };
  }

  async useDirect() {
    const [{ Hub }, { IDBBackend }] = await Promise.all([import('./core/hub.js'), import('./core/idb.js')]);
    // the other direct tabs of this browser: their tokens (one user per
    // browser) and their sockets (the panel)
    if (DirectPeers.supported()) {
      this.peers = new DirectPeers({ tabId: this.tabId, onChange: () => this.emit('peers', this.browserInfo()) });
      this.peers.start();
      if (this.name && !this.token) {
        // a moment for the other tabs to answer with the name's token
        await new Promise((r) => setTimeout(r, 150));
        this.token = this.peers.tokenFor(this.name);
      }
    }
    // the other direct tabs' hubs share this browser's JSON Web Tokens
    const { JwtShare } = await import('./core/auth.js');
    const hub = this.makeHub(Hub, IDBBackend, MODES.direct, JwtShare.supported() ? new JwtShare() : null);
    this.directHub = hub;
    const ep = { post: (m) => queueMicrotask(() => this.onHub(clone(m))) };
    this.link = { post: (m) => { const c = clone(m); queueMicrotask(() => hub.handle(ep, c)); }, local: true, kind: 'direct', close: () => hub.stop() };
  }

  makeHub(Hub, IDBBackend, mode, jwtShare = null) {
    return new Hub({
      mode, WebSocket: globalThis.WebSocket, fetch: globalThis.fetch.bind(globalThis),
      locks: globalThis.navigator && navigator.locks, base: this.opts.base,
      cacheBackend: typeof indexedDB === 'object' ? new IDBBackend(DB_NAME) : null,
      config: this.opts.config, jwtShare,
      log: (...a) => console.debug('[imload hub]', ...a),
    });
  }

  installPageHooks() {
    if (typeof addEventListener !== 'function') return;
    addEventListener('pagehide', () => { this.detach(); if (this.peers) this.peers.close(); });
    addEventListener('pageshow', (e) => { if (e.persisted) { if (this.peers) this.peers.start(); this.hello(true); } });
    // the network may be back: after the fast ladder gave up, try at once
    addEventListener('online', () => this.wake('online'));
    addEventListener('focus', () => this.wake('focus'));
    if (globalThis.document) document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible') this.wake('visible'); });
    this.pingLoop();
  }

  /** wake asks the hub to reconnect at once if it is waiting after giving up. @param {string} why */
  wake(why = '') { if (this.welcomed) this.post({ op: 'wake', why }); }

  // hello (re)registers this tab with the hub, carrying everything needed to
  // rebuild its session: a new leader, or a worker that lost its state.
  hello(again = false) {
    if (this.closed) return;
    if (again) this.welcomed = false;
    const state = {
      name: this.name, token: this.token,
      user: this.opts.user || this.name, getToken: typeof this.opts.getToken === 'function', tokenTimeoutMs: this.opts.tokenTimeoutMs,
      jwt: this.knownJwt(),
      rooms: [...this.joined].map((room) => {
        const s = this.rooms.get(room);
        return s && s.epoch ? { room, epoch: s.epoch, offset: s.offset } : { room };
      }),
    };
    this.post({
      op: 'hello', v: PROTOCOL_VERSION, state, lock: this.lockName, local: !!this.link.local,
      title: this.opts.title || (globalThis.document ? document.title : ''), config: this.opts.config,
    });
    clearTimeout(this.timers.hello);
    this.helloTries = again ? 1 : (this.helloTries || 0) + 1;
    this.timers.hello = setTimeout(() => {
      if (this.welcomed) return;
      if (this.link && this.link.kind === 'shared' && this.helloTries >= 2 && !this.restarted) {
        // the worker may have ended (its grace ran out) as this tab came:
        // start it again, once
        this.restarted = true;
        this.link.close();
        this.useShared();
      }
      this.hello();
    }, this.opts.helloRetryMs);
  }

  post(m) {
    try { this.link.post({ ...m, tab: this.tabId }); } catch (e) { console.warn('imload post', e); }
  }

  pingLoop() {
    const every = () => this.hubConfig.tabPingMs || 5000;
    const tick = () => {
      if (this.closed) return;
      if (this.peers) { this.peers.expire(); this.announce(); }
      if (this.welcomed && this.lastPong && Date.now() - this.lastPong > every() * 3) {
        // the hub went quiet (worker frozen or restarted, leader gone)
        this.lastPong = Date.now();
        this.hello(true);
      }
      this.post({ op: 'ping', t: Date.now() });
      this.timers.ping = setTimeout(tick, every());
    };
    this.lastPong = Date.now();
    this.timers.ping = setTimeout(tick, every());
  }

  detach() {
    this.post({ op: 'detach' });
    this.welcomed = false;
  }

  close() {
    this.detach();
    this.closed = true;
    if (this.peers) this.peers.close();
    for (const t of Object.values(this.timers)) clearTimeout(t);
    if (this.link && this.link.kind !== 'shared' && this.link.close) this.link.close();
    if (this.releaseLock) this.releaseLock();
    for (const p of this.pending.values()) { clearTimeout(p.timer); p.reject(new CommandError(p.cmd, { code: 0, error: CLIENT_ERR.closed, msg: 'closed' })); }
    this.pending.clear();
  }

  retry() { this.post({ op: 'retry' }); }

  /**
   * retryAuth attaches this tab's session again after a `detached` (the
   * server disconnected the user) or an `auth_error`: the hub asks
   * getToken for a token if it has none valid of this user.
   */
  retryAuth() { this.post({ op: 'reauth' }); }

  /**
   * giveToken answers the hub's request for a JSON Web Token with the
   * page's getToken (--auth jwt): the hub asks one tab per user, when it
   * has no valid token (attach) or the server said token_expiring.
   * @param {{id: string, user?: string, reason?: string, after?: number}} m
   */
  async giveToken(m) {
    const f = this.opts.getToken;
    let jwt = '';
    let error = '';
    try {
      if (typeof f !== 'function') throw new Error('this server needs a token (--auth jwt): pass getToken to connect()');
      jwt = await f({ user: String(m.user || ''), reason: String(m.reason || 'attach'), after: Number(m.after) || 0 });
      if (typeof jwt !== 'string' || !jwt) throw new Error('getToken resolved without a token');
    } catch (e) {
      jwt = '';
      error = String((e && e.message) || e || 'getToken failed');
    }
    if (jwt) this.rememberJwt(jwt);
    this.post({ op: 'token', id: m.id, jwt, error });
  }

  /**
   * rememberJwt keeps jwt as the token this tab knows if it is a JWT of
   * this tab's user (the one it says it is, else the session's) newer
   * than the one it has. In memory only.
   * @param {unknown} jwt
   */
  rememberJwt(jwt) {
    const d = decodeJwt(jwt);
    if (!d || d.exp <= this.jwtExp) return;
    const me = this.opts.user || this.name || (this.session && this.session.user) || '';
    if (me && foldName(d.sub) !== foldName(me)) return;
    this.jwt = /** @type {string} */ (jwt);
    this.jwtExp = d.exp;
  }

  /** knownJwt is the token this tab says in its hello: '' if none or expired. */
  knownJwt() {
    if (!this.jwt || this.jwtExp <= Date.now()) { this.jwt = ''; this.jwtExp = 0; }
    return this.jwt;
  }

  /** forgetJwt drops the token this tab knows (detached, refused). */
  forgetJwt() { this.jwt = ''; this.jwtExp = 0; }

  // info asks the hub for its counters (messages from server / cache, tabs,
  // connection): used by the demo panel and the tests.
  info(timeoutMs = 3000) {
    return new Promise((resolve, reject) => {
      const id = `i${++this.seq}`;
      const t = setTimeout(() => { this.pending.delete(id); reject(new TimeoutError('info', timeoutMs)); }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer: t, cmd: 'info', info: true });
      this.post({ op: 'info', id });
    });
  }

  // browserInfo is this browser as this tab sees it: its mode, how many
  // sockets it holds (1 shared or leader, one per direct tab), its tabs.
  browserInfo() {
    const open = this.status.state === 'open';
    const sockets = this.mode === MODES.direct ? (open ? 1 : 0) + (this.peers ? this.peers.sockets() : 0) : (open ? 1 : 0);
    const tabs = this.mode === MODES.direct ? 1 + (this.peers ? this.peers.peers.size : 0) : this.tabs.length;
    return { mode: this.mode, sockets, tabs, open };
  }

  announce() {
    if (this.peers) this.peers.announce({ open: this.status.state === 'open', user: (this.session && this.session.user) || '', token: this.token });
  }

  modeInfo() {
    return {
      mode: this.mode, requested: this.requestedMode, fallback: this.fallback,
      leader: this.link && this.link.kind === 'leader' ? !!this.link.local : undefined,
      hub: this.hubId, tabs: this.tabs,
    };
  }

  // ---- from the hub -------------------------------------------------------

  onHub(m) {
    if (!m || typeof m !== 'object') return;
    switch (m.op) {
      case 'welcome': {
        clearTimeout(this.timers.sharedCheck);
        const changed = this.hubId && this.hubId !== m.hub;
        this.welcomed = true;
        this.lastPong = Date.now();
        this.hubId = m.hub;
        this.mode = m.mode;
        this.hubConfig = m.config || {};
        if (changed) this.resendPending();
        this.emit('mode', this.modeInfo());
        if (this.onWelcome) { const f = this.onWelcome; this.onWelcome = null; f(); }
        break;
      }
      case 'leader':
        if (m.hub !== this.hubId && !(this.link && this.link.local)) this.hello(true);
        break;
      case 'pong':
        this.lastPong = Date.now();
        if (!m.known || (this.hubId && m.hub !== this.hubId)) this.hello(true);
        break;
      case 'events':
        for (const ev of m.list || []) this.onEvent(ev);
        break;
      case 'info': {
        const p = this.pending.get(m.id);
        if (p) { clearTimeout(p.timer); this.pending.delete(m.id); p.resolve(m.info); }
        break;
      }
      case 'a': {
        const p = this.pending.get(m.id);
        if (!p) break;
        clearTimeout(p.timer);
        this.pending.delete(m.id);
        if (m.error) p.reject(new Error(m.error)); else p.resolve(m.result);
        break;
      }
      case 'token_req': this.giveToken(m); break;
      case 'jwt': this.rememberJwt(m.jwt); break;
      case 'bye':
        this.emit('notice', { text: `the worker speaks protocol ${m.v}, this page ${PROTOCOL_VERSION}: reload`, reason: m.reason });
        break;
      default: break;
    }
  }

  resendPending() {
    for (const [id, p] of this.pending) {
      if (!p.info) this.post({ op: 'cmd', id, cmd: p.cmd, body: p.body });
    }
  }

  onEvent(ev) {
    switch (ev.k) {
      case 'reply': {
        const p = this.pending.get(ev.id);
        if (!p) return;
        clearTimeout(p.timer);
        this.pending.delete(ev.id);
        if (ev.code === 200) p.resolve(ev.body || {});
        else p.reject(new CommandError(p.cmd, ev));
        return;
      }
      case 'history': {
        if (!this.joined.has(ev.room) && !this.joining.has(ev.room)) return;
        if (ev.reset) this.rooms.set(ev.room, ev.epoch, 0);
        const f = this.rooms.filter(ev.room, ev.epoch, ev.messages);
        if (ev.top) this.rooms.advance(ev.room, ev.epoch, ev.top);
        const reset = ev.reset || f.reset;
        if (f.messages.length || reset) this.emit('history', { room: ev.room, epoch: ev.epoch, messages: f.messages, reset, source: ev.source });
        return;
      }
      case 'msg': {
        if (!this.joined.has(ev.room) && !this.joining.has(ev.room)) return;
        const { k, ...msg } = ev;
        void k;
        const r = this.rooms.accept(msg);
        if (r === 'dup') return;
        if (r === 'epoch') this.emit('history', { room: msg.room, epoch: msg.epoch, messages: [], reset: true, source: 'live' });
        this.emit('message', msg);
        return;
      }
      case 'status':
        this.status = ev;
        if (ev.state === 'open' && ev.maxText > 0) this.limits.maxText = ev.maxText;
        this.announce();
        this.emit('state', ev);
        return;
      case 'attached':
        this.session = { sid: ev.sid, user: ev.user, color: ev.color };
        if (ev.expires) this.session.expires = ev.expires;
        if (ev.display) this.session.display = ev.display;
        if (ev.user) {
          this.name = ev.user;
          this.token = ev.token || this.token;
          this.tokenStore.set(ev.user, this.token);
        }
        this.announce();
        this.emit('session', { ...this.session, resumed: ev.resumed });
        return;
      case 'name_refused': {
        this.name = '';
        this.token = '';
        // another direct tab of this browser may hold the name: take it
        // with that tab's token (one user per browser)
        const tok = this.peers ? this.peers.tokenFor(ev.name) : '';
        if (tok && !this.triedTokens.has(tok)) {
          this.triedTokens.add(tok);
          this.nick(ev.name, tok).catch(() => this.emit('name_refused', ev));
          return;
        }
        this.emit('name_refused', ev);
        return;
      }
      case 'tabs':
        this.tabs = ev.list || [];
        this.emit('tabs', { list: this.tabs, mode: ev.mode });
        return;
      case 'left':
        this.joined.delete(ev.room);
        this.rooms.delete(ev.room);
        this.emit('left', ev);
        return;
      case 'detached': case 'auth_error': {
        // --auth jwt: the session is not attached until retryAuth(); the
        // token it knows is not offered to a new hub (the hub forgot it)
        this.forgetJwt();
        const { k, ...rest } = ev;
        if (k === 'detached') this.emit('detached', rest); else this.emit('auth_error', rest);
        return;
      }
      default: {
        const { k, ...rest } = ev;
        this.emit(k, rest);
      }
    }
  }

  // ---- commands -----------------------------------------------------------

  // cmd sends any protocol command; it resolves with the reply body or
  // rejects with CommandError (code, error) or TimeoutError.
  // timeoutMs 0: no timeout (a send: the outbox keeps it until the server
  // answers).
  cmd(cmd, body = {}, { timeoutMs = this.opts.cmdTimeoutMs } = {}) {
    return new Promise((resolve, reject) => {
      const id = ++this.seq;
      const timer = timeoutMs > 0 ? setTimeout(() => {
        this.pending.delete(id);
        this.post({ op: 'cancel', id });
        reject(new TimeoutError(cmd, timeoutMs));
      }, timeoutMs) : undefined;
      this.pending.set(id, { resolve, reject, timer, cmd, body });
      this.post({ op: 'cmd', id, cmd, body });
    });
  }

  /** @param {string} room @param {{history?: number}} [o] */
  async join(room, { history } = {}) {
    this.joining.add(room);
    try {
      const body = { room };
      if (history !== undefined) body.history = history;
      const r = await this.cmd('join', body);
      this.joined.add(room);
      return r;
    } finally {
      this.joining.delete(room);
    }
  }

  async leave(room) {
    this.joined.delete(room);
    this.rooms.delete(room);
    return this.cmd('leave', { room });
  }

  // send publishes text in room through the outbox: it is kept (IndexedDB)
  // until the server published it, sent again after every reconnect (the
  // cid makes the server publish it once), and followed with 'outbox'
  // events (sending, sent, failed). It resolves when published, rejects
  // when refused for good; it never times out. Text over the server's
  // max_text (bytes of UTF-8) is refused here, before anything is sent.
  send(room, text, { cid = this.nextCid() } = {}) {
    const tooLong = this.checkText(text);
    if (tooLong) return Promise.reject(tooLong);
    return this.cmd('send', { room, text, cid }, { timeoutMs: 0 });
  }

  dm(to, text) {
    const tooLong = this.checkText(text);
    if (tooLong) return Promise.reject(tooLong);
    return this.cmd('dm', { to, text, cid: this.nextCid() });
  }

  // checkText returns a CommandError (too_large) for text the server would
  // refuse for its size, else null.
  checkText(text) {
    const n = byteLength(String(text));
    if (n > this.limits.maxText) {
      return new CommandError('send', { code: CODE.tooLarge, error: ERR.tooLarge, msg: `text of ${n} bytes exceeds the limit of ${this.limits.maxText}` });
    }
    return null;
  }

  // ---- what the hub keeps: outbox, private conversations ------------------

  query(q, args = {}, timeoutMs = 5000) {
    return new Promise((resolve, reject) => {
      const id = `q${++this.seq}`;
      const t = setTimeout(() => { this.pending.delete(id); reject(new TimeoutError(q, timeoutMs)); }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer: t, cmd: q, info: true });
      this.post({ op: 'q', id, q, args });
    });
  }

  retrySend(cid) { return this.query('outbox_retry', { cid }); }
  discardSend(cid) { return this.query('outbox_discard', { cid }); }
  dmConversations() { return this.query('dm_list'); }
  dmMessages(peer) { return this.query('dm_messages', { peer }); }
  dmRead(peer) { return this.query('dm_read', { peer }); }
  /** @param {string} room @param {{after?: number, before?: number, limit?: number, epoch?: string}} [o] */
  history(room, { after, before, limit, epoch } = {}) {
    const body = { room };
    if (epoch) body.epoch = epoch;
    if (after !== undefined) body.after = after;
    if (before !== undefined) body.before = before;
    if (limit !== undefined) body.limit = limit;
    return this.cmd('history', body);
  }
  who(room) { return this.cmd('who', { room }); }

  // nick names this tab; token (optional) is the one the name was given
  // before, to take it back while the server keeps it reserved.
  async nick(name, token) {
    const tok = token || this.tokenStore.get(name) || (this.peers ? this.peers.tokenFor(name) : '');
    let r;
    try {
      r = await this.cmd('nick', tok ? { name, token: tok } : { name });
    } catch (e) {
      // another direct tab may have the name: ask, and take it with its token
      if (!(e instanceof CommandError) || e.error !== ERR.nameTaken || !this.peers) throw e;
      this.peers.ask();
      await new Promise((res) => setTimeout(res, 200));
      const peerTok = this.peers.tokenFor(name);
      if (!peerTok || peerTok === tok) throw e;
      r = await this.cmd('nick', { name, token: peerTok });
    }
    this.name = r.user;
    this.token = r.token;
    this.tokenStore.set(r.user, r.token);
    this.announce();
    return r;
  }

  nextCid() { return `${this.tabId}.${++this.cidSeq}`; }
}

export async function connect(opts) {
  const c = new Client(opts);
  return c.connect();
}

async function leaderSupported() {
  const locks = globalThis.navigator && navigator.locks;
  return !!(locks && typeof locks.request === 'function' && typeof BroadcastChannel === 'function');
}



function randomId() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID().replace(/-/g, '').slice(0, 16);
  return Math.random().toString(36).slice(2) + Date.now().toString(36);
}

function clone(m) {
  return typeof structuredClone === 'function' ? structuredClone(m) : JSON.parse(JSON.stringify(m));
}
