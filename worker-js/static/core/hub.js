// @ts-check
// Hub is the shared brain of a browser: it owns the one Connection, keeps a
// logical session per tab, relays the tabs' commands, fans pushes out to the
// right tabs through a FlushBuffer each, caches room history (cache.js) and
// re-attaches every tab after a reconnect, resuming each room from the last
// offset that tab has seen. The SharedWorker (worker.js) runs one Hub; where
// SharedWorker is missing the leader tab runs it (leader.js), and in direct
// mode every tab runs its own.
//
// Tabs talk to the hub with small messages (docs/browser.md, "Tab messages"):
//   tab -> hub: {op:'hello'|'cmd'|'cancel'|'detach'|'ping'|'retry'|'wake'|'info'|'q', tab, ...}
//   hub -> tab: {op:'welcome'|'events'|'pong'|'info'|'a'|'bye', ...}
// An endpoint is anything with post(msg).
import { Connection } from './conn.js';
import { FlushBuffer } from './flush.js';
import { Offsets } from './offsets.js';
import { RoomCache, MemoryBackend } from './cache.js';
import { PROTOCOL_VERSION } from './version.js';
import { validName } from './names.js';
import { ERR, CLIENT_ERR, CLIENT_CODE, CODE, transient } from './errors.js';
import { DmStore, foldName } from './dms.js';
import { HubAuth, tokenTimeout } from './auth.js';
import { DmSync } from './dmsync.js';

export const DEFAULT_HUB = Object.freeze({
  flushMs: 50,          // events for a tab are merged this long...
  flushMax: 100,        // ...or until this many are waiting
  historyN: 50,         // messages asked for / shown when a tab opens a room
  cacheKeep: 200,       // messages kept per room in the cache
  cmdTimeoutMs: 15000,  // the hub forgets a command after this (tabs time out first)
  tabPingMs: 5000,      // how often tabs ping the hub (port ping)
  tabTimeoutMs: 21000,  // a tab silent this long is gone (no Web Lock)
  tabTimeoutLockMs: 65000, // ...when a Web Lock also watches it (background tabs are throttled)
  graceMs: 4000,        // the socket stays this long after the last tab went (a reload), then closes
  outboxRetryMs: 2000,  // an outbox send refused for a while (rate limit, store behind) is tried again after this
  outboxMax: 500,       // messages the outbox keeps at most (the oldest failed ones go first)
  dmKeep: 200,          // private messages kept per conversation
});

let hubSeq = 0;

export class Hub {
  /**
   * @param {{mode: string, WebSocket: any, fetch: any, locks?: any, cacheBackend?: any, base?: string, config?: any,
   *   setTimer?: (f: () => void, ms: number) => any, clearTimer?: (id: any) => void, now?: () => number, random?: () => number,
   *   log?: (...a: any[]) => void, onIdle?: (() => void)|null, jwtShare?: import('./auth.js').JwtShare|null}} o
   */
  constructor({
    mode, WebSocket, fetch, locks = null, cacheBackend = null, base = '', config = {},
    setTimer = (f, ms) => setTimeout(f, ms), clearTimer = (id) => clearTimeout(id), now = Date.now, random = Math.random, log = () => {},
    onIdle = null, jwtShare = null,
  }) {
    this.id = `${mode}-${now().toString(36)}-${Math.floor(random() * 1e9).toString(36)}-${++hubSeq}`;
    this.mode = mode;
    this.locks = locks;
    this.setTimer = setTimer;
    this.clearTimer = clearTimer;
    this.now = now;
    this.log = log;
    this.cfg = { ...DEFAULT_HUB };
    this.configured = false;
    this.tabs = new Map();      // tabId -> Tab
    this.sessions = new Map();  // sid -> Session
    this.nextSid = 1;
    this.tokens = new Map();    // user name -> token (shared by this browser's tabs)
    this.lockWaits = new Set();
    this.errors = [];
    this.status = { state: 'idle' };
    this.stats = {
      msgsFromServer: 0, msgsFromCache: 0, pushes: 0, delivered: 0, dups: 0, gaps: 0,
      resets: 0, resumed: 0, attaches: 0, reattaches: 0, reconnects: 0, joinsFromCache: 0, lastJoinFetched: -1, lastJoinCached: -1,
    };
    const backend = cacheBackend || new MemoryBackend();
    this.backend = backend;
    this.cache = new RoomCache(backend, { keep: this.cfg.cacheKeep, onError: (e) => log('cache', String(e)) });
    // onIdle is called when the grace after the last tab is over and the
    // socket is closed (the SharedWorker ends itself then)
    this.onIdle = onIdle;
    this.graceTimer = null;
    // the outbox: room messages not yet published (docs/browser.md,
    // "The outbox"), by cid, kept in the backend until the server took them
    this.outbox = new Map();
    this.outboxTimer = null;
    this.outboxLoaded = this.loadOutbox();
    this.dms = new DmStore(backend, { keep: this.cfg.dmKeep, onError: (e) => log('dms', String(e)) });
    this.dmSync = new DmSync(this);
    const root = base ? new URL('./', base) : null;
    const wsAddr = root ? new URL('ws', root) : null;
    if (wsAddr) wsAddr.protocol = wsAddr.protocol === 'https:' ? 'wss:' : 'ws:';
    this.conn = new Connection({
      WebSocket, fetch, random, setTimer, clearTimer, now, log,
      lbsUrl: root ? new URL('lbs', root).href : '',
      defaultAddr: wsAddr ? wsAddr.href : '',
      onHello: () => this.onOpen(),
      onFrames: (fs) => this.onFrames(fs),
      onDown: () => this.onDown(),
      onState: (s) => this.onConnState(s),
    });
    this.configure(config);
    this.sweeper = null;
    // --auth jwt: one token per user for all its tabs (core/auth.js)
    this.auth = new HubAuth(this, { share: jwtShare });
  }

  configure(c = {}) {
    for (const k of Object.keys(DEFAULT_HUB)) {
      if (typeof c[k] === 'number' && Number.isFinite(c[k]) && c[k] >= 0) this.cfg[k] = c[k];
    }
    this.cache.keep = this.cfg.cacheKeep;
    if (this.dms) this.dms.keep = this.cfg.dmKeep;
    this.conn.configure(c);
    if (typeof c.server === 'string' && c.server && this.conn.state === 'idle') {
      try { this.conn.setServer(c.server); } catch (e) { this.log('server address', String(e)); }
    }
  }

  // ---- tabs ---------------------------------------------------------------

  // handle takes one message from a tab; ep is where that tab's answers go.
  handle(ep, m) {
    try {
      this.handleTab(ep, m);
    } catch (e) {
      // keep the last errors where the panel and the tests can see them
      this.errors.push(`${m && m.op}: ${e && e.stack ? e.stack : e}`);
      if (this.errors.length > 10) this.errors.shift();
      this.log('error', e);
    }
  }

  handleTab(ep, m) {
    if (!m || typeof m !== 'object' || typeof m.tab !== 'string') return;
    const tab = this.tabs.get(m.tab);
    if (tab) { tab.lastSeen = this.now(); if (m.op !== 'detach') tab.ep = ep; }
    switch (m.op) {
      case 'hello': this.hello(ep, m); break;
      case 'cmd':
        if (!tab) { ep.post({ op: 'events', list: [{ k: 'reply', id: m.id, code: CLIENT_CODE.unknownTab, error: CLIENT_ERR.unknownTab, msg: 'say hello first' }] }); return; }
        this.tabCmd(tab, m);
        break;
      case 'cancel': if (tab) this.cancel(tab.session, m.id); break;
      case 'detach': this.removeTab(m.tab, 'detach'); break;
      case 'ping': ep.post({ op: 'pong', known: !!tab, hub: this.id, t: m.t }); break;
      case 'retry': this.conn.retryNow(); break;
      case 'wake': this.conn.wake(String(m.why || 'tab')); break;
      case 'info': ep.post({ op: 'info', id: m.id, info: this.info() }); break;
      case 'token': this.auth.answer(m); break;
      case 'reauth': if (tab) this.auth.retry(tab.session); break;
      case 'q':
        if (!tab) { ep.post({ op: 'a', id: m.id, error: CLIENT_ERR.unknownTab }); return; }
        this.query(tab, m).then((result) => ep.post({ op: 'a', id: m.id, result }),
          (e) => ep.post({ op: 'a', id: m.id, error: String(e && e.message ? e.message : e) }));
        break;
      default: break;
    }
  }

  hello(ep, m) {
    if (m.v !== PROTOCOL_VERSION) {
      ep.post({ op: 'bye', reason: 'version', v: PROTOCOL_VERSION });
      return;
    }
    if (!this.configured && m.config) { this.configure(m.config); }
    this.configured = true;
    if (this.graceTimer !== null) { this.clearTimer(this.graceTimer); this.graceTimer = null; }
    let tab = this.tabs.get(m.tab);
    if (tab) {
      // the tab thinks we lost it (it may have missed a welcome): answer again
      tab.ep = ep;
      this.welcome(tab);
      this.post(tab, { k: 'status', ...this.status }, true);
      this.post(tab, { k: 'tabs', list: this.tabList(), mode: this.mode, hub: this.id });
      if (tab.session.attached) this.post(tab, { k: 'attached', ...tab.session.public(), resumed: true }, true);
      return;
    }
    const st = m.state || {};
    const s = new Session(this.nextSid++, m.tab);
    s.name = validName(st.name) ? st.name : '';
    s.token = typeof st.token === 'string' ? st.token : '';
    if (s.name && !s.token && this.tokens.has(s.name)) s.token = this.tokens.get(s.name);
    s.login = validName(st.user) ? st.user : ''; // --auth jwt: the user the tab says it is
    // --auth jwt: the token the tab knows (a new hub need not ask for it)
    this.auth.offerHello(s, st.jwt);
    for (const r of Array.isArray(st.rooms) ? st.rooms : []) {
      if (r && typeof r.room === 'string') { s.joined.add(r.room); if (r.epoch) s.rooms.set(r.room, r.epoch, Number(r.offset) || 0); }
    }
    tab = {
      id: m.tab, ep, session: s, lastSeen: this.now(), title: String(m.title || '').slice(0, 80), local: !!m.local,
      lockTimeout: false, getToken: !!st.getToken, tokenTimeoutMs: tokenTimeout(st.tokenTimeoutMs),
      buf: null,
    };
    tab.buf = new FlushBuffer({
      intervalMs: this.cfg.flushMs, maxItems: this.cfg.flushMax,
      setTimer: this.setTimer, clearTimer: this.clearTimer,
      onFlush: (list) => { try { tab.ep.post({ op: 'events', list }); } catch (e) { this.log('post', String(e)); } },
    });
    s.tab = tab;
    this.tabs.set(tab.id, tab);
    this.sessions.set(s.sid, s);
    if (m.lock && this.locks && !tab.local) this.watchLock(tab.id, m.lock);
    this.welcome(tab);
    this.post(tab, { k: 'status', ...this.status }, true);
    this.tabsChanged();
    this.ensureSweeper();
    if (this.conn.state === 'idle' || this.conn.state === 'closed') this.conn.start();
    else if (this.conn.isOpen) this.attach(s);
    // what this user has waiting in the outbox, and the conversations
    this.postOutbox(s);
    this.postDMs(s);
  }

  welcome(tab) {
    tab.ep.post({ op: 'welcome', hub: this.id, sid: tab.session.sid, mode: this.mode, v: PROTOCOL_VERSION, config: { ...this.cfg, ...this.conn.cfg } });
  }

  // watchLock waits for the tab's own Web Lock: it is granted to us only
  // when the tab is gone (closed, crashed, navigated away).
  watchLock(tabId, name) {
    if (this.lockWaits.has(tabId)) return;
    this.lockWaits.add(tabId);
    const tab = this.tabs.get(tabId);
    if (tab) tab.lockTimeout = true;
    try {
      this.locks.request(name, () => {
        this.lockWaits.delete(tabId);
        this.removeTab(tabId, 'lock');
      }).catch(() => this.lockWaits.delete(tabId));
    } catch (e) {
      this.lockWaits.delete(tabId);
      this.log('lock', String(e));
    }
  }

  ensureSweeper() {
    if (this.sweeper !== null || !this.cfg.tabPingMs) return;
    const tick = () => {
      this.sweeper = null;
      const now = this.now();
      for (const tab of [...this.tabs.values()]) {
        if (tab.local) continue;
        const limit = tab.lockTimeout ? this.cfg.tabTimeoutLockMs : this.cfg.tabTimeoutMs;
        if (now - tab.lastSeen > limit) this.removeTab(tab.id, 'silent');
      }
      if (this.tabs.size) this.sweeper = this.setTimer(tick, this.cfg.tabPingMs);
    };
    this.sweeper = this.setTimer(tick, this.cfg.tabPingMs);
  }

  removeTab(tabId, why) {
    const tab = this.tabs.get(tabId);
    if (!tab) return;
    this.log('tab gone', tabId, why);
    this.tabs.delete(tabId);
    this.auth.tabGone(tabId);
    tab.buf.flush();
    tab.buf.close();
    const s = tab.session;
    this.sessions.delete(s.sid);
    for (const e of s.inflight.values()) this.clearTimer(e.timer);
    for (const e of s.queue) this.clearTimer(e.timer);
    if (s.attached && this.conn.isOpen) {
      // the reply comes back for a sid we no longer know, and is ignored
      this.conn.send({ t: 'cmd', sid: s.sid, seq: ++s.seq, cmd: 'detach', body: {} });
    }
    s.attached = false;
    this.tabsChanged();
    if (!this.tabs.size && this.onIdle && this.graceTimer === null) {
      // the last tab went: keep the socket for a reload, then close it
      this.graceTimer = this.setTimer(() => {
        this.graceTimer = null;
        if (this.tabs.size) return;
        this.log('no tab for', this.cfg.graceMs, 'ms: closing');
        this.conn.stop();
        if (this.sweeper !== null) { this.clearTimer(this.sweeper); this.sweeper = null; }
        if (this.onIdle) this.onIdle();
      }, this.cfg.graceMs);
    }
  }

  tabsChanged() {
    const list = this.tabList();
    for (const tab of this.tabs.values()) this.post(tab, { k: 'tabs', list, mode: this.mode, hub: this.id });
  }

  tabList() {
    return [...this.tabs.values()].map((t) => ({
      tab: t.id, sid: t.session.sid, user: t.session.user || '', title: t.title, local: t.local, attached: t.session.attached,
    }));
  }

  // post queues an event for a tab; urgent ones flush at once (keeping order).
  post(tab, ev, urgent = false) {
    if (!this.tabs.has(tab.id)) return;
    if (urgent) tab.buf.pushNow(ev);
    else tab.buf.push(ev);
  }

  info() {
    return {
      hub: this.id, mode: this.mode, status: this.status, errors: this.errors.slice(), tabs: this.tabList(), stats: { ...this.stats },
      conn: { ...this.conn.stats, ...this.conn.info, hello: this.conn.hello }, cache: { ...this.cache.stats }, config: { ...this.cfg, ...this.conn.cfg },
      outbox: [...this.outbox.values()].map((e) => this.outboxEvent(e)), auth: this.auth.info(),
    };
  }

  // query answers a tab's request about what the hub keeps (not a protocol
  // command): the private conversations, and the outbox's retry or discard.
  async query(tab, m) {
    const s = tab.session;
    const me = s.user || s.name;
    const a = m.args || {};
    switch (m.q) {
      case 'dm_list': return me ? this.dms.list(me) : [];
      case 'dm_messages':
        if (!me || typeof a.peer !== 'string') return [];
        await this.dmSynced(me, a.peer);
        return this.dms.messages(me, a.peer);
      case 'dm_read':
        if (me && typeof a.peer === 'string' && await this.dms.markRead(me, a.peer)) this.dmsChanged(me);
        return true;
      case 'outbox_retry': return this.outboxRetry(String(a.cid || ''));
      case 'outbox_discard': return this.outboxDiscard(String(a.cid || ''));
      default: throw new Error(`unknown query ${m.q}`);
    }
  }

  // ---- commands -----------------------------------------------------------

  tabCmd(tab, m) {
    const s = tab.session;
    const body = m.body && typeof m.body === 'object' ? m.body : {};
    const origin = { tab, id: m.id };
    // disconnected, or its token refused: a clear error until retryAuth
    // (room messages wait in the outbox)
    if (s.authFailure && m.cmd !== 'send') { this.reply(origin, s.authFailure); return; }
    switch (m.cmd) {
      case 'join': this.join(s, origin, body); return;
      case 'leave':
        if (typeof body.room === 'string') { s.joined.delete(body.room); s.rooms.delete(body.room); s.catchup.delete(body.room); s.deferred.delete(body.room); }
        break;
      case 'attach': case 'detach':
        this.reply(origin, { code: CODE.badRequest, error: ERR.badRequest, msg: 'the hub attaches and detaches sessions' });
        return;
      case 'send': this.outboxAdd(s, origin, body); return;
      case 'dm':
        this.cmd(s, 'dm', body, origin, (r) => { this.sentDM(s, body, r); return r; });
        return;
      default: break;
    }
    this.cmd(s, m.cmd, body, origin, (r) => this.afterCmd(s, m.cmd, body, r));
  }

  afterCmd(s, cmd, body, r) {
    if (cmd === 'nick' && r.code === 200 && r.body) {
      s.name = r.body.user; s.user = r.body.user; s.color = r.body.color; s.token = r.body.token;
      if (s.user && s.token) this.tokens.set(s.user, s.token);
      this.dmSync.attached(s);
      this.post(s.tab, { k: 'attached', ...s.public(), resumed: false });
      this.tabsChanged();
    }
    if (cmd === 'leave' && (r.code === 403 || r.code === 404)) {
      // a leave resent after a reconnect finds the room already left
      return { ...r, code: 200, body: { room: body.room } };
    }
    return r;
  }

  // cmd sends a command for session s now, or when it is attached again
  // (pipelined: now, right behind an attach whose reply has not come yet).
  // done(reply) may rewrite the reply before it goes to the tab.
  cmd(s, cmd, body, origin, done = null, pipelined = false) {
    const e = { cmd, body, origin, done, seq: 0, timer: null, internal: !origin };
    e.timer = this.setTimer(() => {
      s.inflight.delete(e.seq);
      const i = s.queue.indexOf(e);
      if (i >= 0) s.queue.splice(i, 1);
      this.finish(e, { code: CLIENT_CODE.timeout, error: CLIENT_ERR.timeout, msg: `no reply to ${cmd}` });
    }, this.cfg.cmdTimeoutMs);
    if ((s.attached || pipelined) && this.conn.isOpen) this.transmit(s, e);
    else s.queue.push(e);
    return e;
  }

  transmit(s, e) {
    e.seq = ++s.seq;
    s.inflight.set(e.seq, e);
    this.conn.send({ t: 'cmd', sid: s.sid, seq: e.seq, cmd: e.cmd, body: e.body });
  }

  cancel(s, id) {
    for (const e of s.queue) if (e.origin && e.origin.id === id) { s.queue.splice(s.queue.indexOf(e), 1); this.clearTimer(e.timer); return; }
    for (const [seq, e] of s.inflight) if (e.origin && e.origin.id === id) { e.origin = null; e.cancelled = true; void seq; return; }
  }

  finish(e, r) {
    this.clearTimer(e.timer);
    let out = r;
    if (e.done) {
      try { out = e.done(r) || r; } catch (err) { this.log('reply handler', String(err)); }
    }
    if (e.origin) this.reply(e.origin, out);
  }

  reply(origin, r) {
    const { tab, id } = origin;
    this.post(tab, { k: 'reply', id, code: r.code, body: r.body, error: r.error, msg: r.msg }, true);
  }

  // join shows what the cache has at once, then asks the server only for
  // what came after it (seed 3.3.1).
  async join(s, origin, body) {
    const room = body.room;
    if (typeof room !== 'string' || !room) { this.reply(origin, { code: CODE.badRequest, error: ERR.badRequest, msg: 'room required' }); return; }
    const n = clampInt(body.history, 0, 500, this.cfg.historyN);
    let cached = 0;
    if (!s.rooms.has(room)) {
      let c = null;
      try { c = await this.cache.load(room); } catch { c = null; }
      if (!this.sessions.has(s.sid)) return;
      if (c && c.messages.length && !s.rooms.has(room)) {
        const msgs = n > 0 ? c.messages.slice(-n) : [];
        // we resume from the cache's top even if we show fewer
        s.rooms.set(room, c.epoch, c.top);
        cached = msgs.length;
        this.stats.msgsFromCache += msgs.length;
        this.stats.joinsFromCache++;
        if (msgs.length) this.post(s.tab, { k: 'history', room, epoch: c.epoch, messages: msgs, reset: false, source: 'cache' }, true);
      }
    }
    if ((!this.conn.isOpen || this.auth.waiting(s)) && !s.joined.has(room)) {
      // offline (a page opened or reloaded while the server is away, or a
      // room picked meanwhile), or waiting for a token: the room is joined
      // with the attach, as the resume of the other rooms
      s.joined.add(room);
      s.deferred.set(room, cached);
      this.reply(origin, { code: CODE.ok, body: { room, cached, fetched: 0, deferred: true } });
      return;
    }
    const cur = s.rooms.get(room);
    const req = { room, history: n };
    if (cur && cur.epoch) { req.epoch = cur.epoch; req.offset = cur.offset; }
    this.cmd(s, 'join', req, origin, (r) => {
      if (r.code !== 200 || !r.body) {
        if (!s.joined.has(room)) s.rooms.delete(room);
        return r;
      }
      const fetched = (r.body.messages || []).length;
      this.stats.lastJoinFetched = fetched;
      this.stats.lastJoinCached = cached;
      this.applyJoin(s, r.body, 'server');
      const { messages, ...rest } = r.body;
      void messages;
      return { ...r, body: { ...rest, cached, fetched } };
    });
  }

  // applyJoin takes a JoinResp (from a tab's join, or from a join that
  // resumes a room after a re-attach).
  // again: the same reply was applied to another session already (a join
  // for several): its messages are not counted, nor cached, twice.
  applyJoin(s, jr, source, again = false) {
    const { room, epoch, top = 0, reset = false, more = false } = jr;
    const msgs = (jr.messages || []).slice().sort((a, b) => a.offset - b.offset);
    if (!again) this.stats.msgsFromServer += msgs.length;
    if (source === 'resume') this.stats.resumed += msgs.length;
    if (s.deferred.has(room)) {
      // the join a tab asked for while offline: this is its answer
      this.stats.lastJoinFetched = msgs.length;
      this.stats.lastJoinCached = s.deferred.get(room);
      s.deferred.delete(room);
    }
    s.joined.add(room);
    const isReset = reset || (s.rooms.has(room) && s.rooms.get(room).epoch && s.rooms.get(room).epoch !== epoch);
    if (isReset) {
      this.stats.resets++;
      if (!again) this.cache.replace(room, epoch, msgs);
      s.rooms.set(room, epoch, 0);
    } else if (!again) {
      this.cache.append(room, msgs);
    }
    const f = s.rooms.filter(room, epoch, msgs);
    this.stats.delivered += f.messages.length;
    this.post(s.tab, { k: 'history', room, epoch, top, messages: f.messages, reset: isReset || f.reset, source });
    if (more) {
      // the server sent only the first part: fetch the rest before any
      // later push of this room reaches the tab
      this.catchUp(s, room, epoch, s.rooms.get(room).offset);
    } else if (isReset && !msgs.length && top > 0) {
      // resuming was impossible and nothing came with the reset (the
      // server sent none of the latest): fetch them instead
      this.catchUp(s, room, '', 0);
    } else {
      s.rooms.advance(room, epoch, top);
    }
    this.flushOutbox();
  }

  // catchUp asks for a room's messages after an offset (or the latest ones)
  // page by page, holding the room's live pushes for that session meanwhile.
  catchUp(s, room, epoch, after) {
    if (!s.catchup.has(room)) s.catchup.set(room, []);
    const limit = Number((this.conn.hello || {}).max_history) || 500;
    const body = epoch ? { room, epoch, after, limit } : { room, limit: this.cfg.historyN };
    this.cmd(s, 'history', body, null, (r) => {
      if (!this.sessions.has(s.sid) || !s.catchup.has(room)) return;
      const b = r.body || {};
      if (r.code === 200) {
        const msgs = (b.messages || []).slice().sort((x, y) => x.offset - y.offset);
        this.stats.msgsFromServer += msgs.length;
        const reset = !!b.reset || !epoch;
        if (reset) { this.cache.replace(room, b.epoch, msgs); s.rooms.set(room, b.epoch, 0); } else this.cache.append(room, msgs);
        const f = s.rooms.filter(room, b.epoch, msgs);
        this.post(s.tab, { k: 'history', room, epoch: b.epoch, messages: f.messages, reset: reset || f.reset, source: 'server' });
        if (b.more && msgs.length) { this.catchUp(s, room, b.epoch, s.rooms.get(room).offset); return; }
      }
      const held = s.catchup.get(room);
      s.catchup.delete(room);
      for (const m of held) this.deliver(s, m);
    });
  }

  // ---- connection ---------------------------------------------------------

  onConnState(st) {
    this.status = { ...st, mode: this.mode, at: this.now() };
    for (const tab of this.tabs.values()) this.post(tab, { k: 'status', ...this.status }, true);
  }

  onOpen() {
    if (this.stats.attaches > 0) this.stats.reconnects++;
    // Every attach first, then the rooms' joins: the sessions that resume
    // a room from the same epoch and offset share one join that names them
    // all (sids, docs/protocol.md §3), so what they missed travels once.
    // (A session that waits for its token, or may not attach, is left
    // out: it attaches and joins its rooms by itself later.)
    const all = [...this.sessions.values()].filter((s) => this.attach(s, false, false));
    const groups = new Map(); // room, epoch, offset -> {room, sessions}, in the order met
    for (const s of all) {
      for (const room of s.joined) {
        const cur = s.rooms.get(room);
        // a room without offsets is joined afresh, alone
        const key = cur && cur.epoch ? JSON.stringify([room, cur.epoch, cur.offset]) : Symbol(room);
        if (!groups.has(key)) groups.set(key, { room, sessions: [] });
        groups.get(key).sessions.push(s);
      }
    }
    for (const g of groups.values()) this.rejoinGroup(g.sessions, g.room);
  }

  onDown() {
    for (const s of this.sessions.values()) {
      s.attached = false;
      s.catchup.clear(); // what was held comes again when the rooms resume
      // commands that were on the wire are sent again after re-attaching
      // (sends carry a cid, so the server publishes them once)
      const again = [...s.inflight.values()].filter((e) => !e.internal && !e.cancelled).sort((a, b) => a.seq - b.seq);
      for (const e of s.inflight.values()) if (e.internal || e.cancelled) this.clearTimer(e.timer);
      s.inflight.clear();
      s.queue = again.concat(s.queue);
    }
    // the outbox's sends on the wire went with the link: sent again (same
    // cid) after the rooms are joined again
    for (const e of this.outbox.values()) e.inflight = false;
    // the private conversations are listed and synced again after the attach
    this.dmSync.linkDown();
  }

  // attach attaches s (and, with joins, resumes its rooms right behind);
  // false when s does not attach now: --auth jwt and no token yet (it
  // attaches when one comes) or s may not attach (core/auth.js).
  attach(s, anonymous = false, joins = true) {
    const body = { mode: this.mode };
    if (this.auth.on) {
      const jwt = this.auth.tokenNow(s);
      if (!jwt) return false;
      body.jwt = jwt;
      s.jwt = jwt;
    } else if (s.name && !anonymous) {
      body.name = s.name;
      const tok = s.token || this.tokens.get(s.name);
      if (tok) body.token = tok;
    }
    const again = this.stats.attaches > 0 && s.everAttached;
    const e = { cmd: 'attach', body, origin: null, internal: true, timer: null, seq: 0 };
    e.done = (r) => this.attached(s, r, again, anonymous);
    e.timer = this.setTimer(() => { s.inflight.delete(e.seq); }, this.cfg.cmdTimeoutMs);
    this.transmit(s, e);
    // Resume (docs/protocol.md §3): one join per room with the last epoch
    // and offset, sent right behind the attach without waiting for its
    // reply, so they leave in the same WebSocket message (one round trip).
    // The server handles a message's frames in order; if this attach
    // fails, these joins get 401 not_attached and are sent again with the
    // next attach (see rejoin). onOpen sends them itself (joins false).
    if (joins) for (const room of s.joined) this.rejoin(s, room);
    return true;
  }

  attached(s, r, again, anonymous) {
    if (!this.sessions.has(s.sid)) return;
    if (this.auth.on && this.auth.attachReply(s, r)) return; // refused: handled there
    if (r.code === CODE.nameTaken && s.name && !anonymous) {
      // the name is someone else's: stay connected without it
      const name = s.name;
      s.name = '';
      s.token = '';
      this.post(s.tab, { k: 'name_refused', name, error: r.error, msg: r.msg || `name ${name} is taken` }, true);
      this.attach(s, true);
      return;
    }
    if (r.code !== CODE.ok && r.code !== CODE.sessionExists) {
      this.post(s.tab, { k: 'notice', text: `attach failed: ${r.msg || r.error || r.code}`, reason: r.error || 'attach' }, true);
      return;
    }
    s.attached = true;
    s.everAttached = true;
    this.stats.attaches++;
    if (again) this.stats.reattaches++;
    const b = r.body || {};
    if (b.user) { s.user = b.user; s.name = b.user; s.color = b.color || ''; s.display = typeof b.name === 'string' ? b.name : ''; }
    if (b.token) { s.token = b.token; if (s.user) this.tokens.set(s.user, b.token); }
    // the rooms' joins are already on the wire, behind the attach
    this.post(s.tab, { k: 'attached', ...s.public(), resumed: again }, true);
    this.tabsChanged();
    const q = s.queue;
    s.queue = [];
    for (const e of q) this.transmit(s, e);
    this.postOutbox(s);
    this.postDMs(s);
    this.dmSync.attached(s);
  }

  // rejoin resumes one room of s, pipelined behind its attach: the reply
  // (JoinResp) carries what was missed since the offset we have, and comes
  // before any later push of the room.
  rejoin(s, room) {
    const cur = s.rooms.get(room);
    const body = { room, history: this.cfg.historyN };
    if (cur && cur.epoch) { body.epoch = cur.epoch; body.offset = cur.offset; }
    this.cmd(s, 'join', body, null, (r) => {
      if (!this.sessions.has(s.sid)) return;
      if (!s.joined.has(room)) return; // the tab left the room meanwhile
      if (r.code === 200 && r.body) { this.applyJoin(s, r.body, 'resume'); return; }
      // 504: lost with the link; 401 not_attached: the attach in front of
      // it failed (a taken name is attached again anonymously, joins and
      // all). Either way the next attach joins the room again.
      if (r.code === CLIENT_CODE.timeout || r.code === CODE.notAttached) return;
      s.joined.delete(room);
      s.rooms.delete(room);
      this.post(s.tab, { k: 'left', room, reason: r.error || 'rejoin_failed' });
    }, true);
  }

  // rejoinGroup resumes room for every session of group (attached on this
  // link, all at the same epoch and offset) with one join naming the others
  // (sids): the one reply is applied to each session the server lists in
  // its sids. A session it does not list (a server that ignores sids), or
  // a group refused as a whole, resumes by itself.
  rejoinGroup(group, room) {
    if (group.length === 1) { this.rejoin(group[0], room); return; }
    const [lead, ...others] = group;
    const cur = lead.rooms.get(room);
    const body = { room, history: this.cfg.historyN, epoch: cur.epoch, offset: cur.offset, sids: others.map((o) => o.sid) };
    const live = (g) => this.sessions.has(g.sid) && g.joined.has(room);
    this.cmd(lead, 'join', body, null, (r) => {
      if (r.code === 200 && r.body) {
        const listed = new Set(Array.isArray(r.body.sids) ? r.body.sids : [lead.sid]);
        const { sids, ...jr } = r.body;
        void sids;
        let counted = false;
        for (const g of group) {
          if (!live(g)) continue;
          if (!listed.has(g.sid)) { this.rejoin(g, room); continue; }
          // the messages came once: count them once
          this.applyJoin(g, jr, 'resume', counted);
          counted = true;
        }
        return;
      }
      if (r.code === CLIENT_CODE.timeout) return; // lost with the link: the next attach joins again
      // refused as a whole (an attach in front of it failed, say): each
      // attached session asks for itself; the others join again behind
      // their next attach
      for (const g of group) if (live(g) && g.attached) this.rejoin(g, room);
    }, true);
  }

  onFrames(frames) {
    for (const f of frames) {
      switch (f.t) {
        case 'reply': this.onReply(f); break;
        case 'push': this.onPush(f); break;
        case 'error': this.log('server error frame', f); break;
        default: break;
      }
    }
  }

  onReply(f) {
    const s = this.sessions.get(f.sid);
    if (!s) return;
    const e = s.inflight.get(f.seq);
    if (!e) return;
    s.inflight.delete(f.seq);
    this.finish(e, { code: f.code, body: f.body, error: f.error, msg: f.msg });
  }

  onPush(f) {
    const body = f.body || {};
    const sids = Array.isArray(f.sids) ? f.sids : [];
    this.stats.pushes++;
    if (this.auth.onPush(f.ev, sids, body)) return; // token_expiring, detached
    switch (f.ev) {
      case 'msg': {
        this.stats.msgsFromServer++;
        this.cache.append(body.room, [body]);
        for (const sid of sids) {
          const s = this.sessions.get(sid);
          if (s) this.deliver(s, body);
        }
        break;
      }
      case 'dm': this.gotDM(sids, body); break;
      case 'join': case 'leave':
        for (const sid of sids) { const s = this.sessions.get(sid); if (s) this.post(s.tab, { k: 'presence', kind: f.ev, ...body }); }
        break;
      default:
        for (const sid of sids) { const s = this.sessions.get(sid); if (s) this.post(s.tab, { k: f.ev || 'notice', ...body }); }
        break;
    }
  }

  deliver(s, msg) {
    if (!s.joined.has(msg.room)) return; // the tab left the room
    const held = s.catchup.get(msg.room);
    if (held) { held.push(msg); return; }
    const r = s.rooms.accept(msg);
    if (r === 'dup') { this.stats.dups++; return; }
    if (r === 'gap') this.stats.gaps++;
    if (r === 'epoch') {
      this.stats.resets++;
      this.post(s.tab, { k: 'history', room: msg.room, epoch: msg.epoch, messages: [], reset: true, source: 'live' });
    }
    this.stats.delivered++;
    this.post(s.tab, { k: 'msg', ...msg });
  }

  // ---- the outbox ---------------------------------------------------------
  // A room message a tab sends goes into the outbox (and the backend) with
  // its cid, and stays there until the server published it (or refused it
  // for good): it is sent when a session of its user is attached and in its
  // room, again after every reconnect (the server's cid check publishes it
  // once), whatever the tab's timeout, and after a reload or a new worker.

  async loadOutbox() {
    let list = [];
    try { list = await this.backend.getAll('outbox'); } catch (e) { this.log('outbox', String(e)); }
    for (const e of list) {
      if (!e || typeof e.cid !== 'string' || this.outbox.has(e.cid)) continue;
      this.outbox.set(e.cid, { ...e, inflight: false, origin: null });
    }
    if (list.length) {
      for (const s of this.sessions.values()) this.postOutbox(s);
      this.flushOutbox();
    }
  }

  outboxAdd(s, origin, body) {
    const room = body.room;
    const text = body.text;
    if (typeof room !== 'string' || typeof text !== 'string') { this.reply(origin, { code: CODE.badRequest, error: ERR.badRequest, msg: 'send needs room and text' }); return; }
    const user = s.user || s.name;
    if (!user) { this.reply(origin, { code: CODE.nameRequired, error: ERR.nameRequired, msg: 'pick a name first' }); return; }
    const cid = typeof body.cid === 'string' && body.cid ? body.cid : `h${this.now().toString(36)}.${Math.floor(Math.random() * 1e9).toString(36)}`;
    let e = this.outbox.get(cid);
    if (!e) {
      e = { cid, room, text, user, ts: this.now(), state: 'sending', error: '', msg: '', tries: 0, inflight: false, origin };
      this.outbox.set(cid, e);
      this.trimOutbox();
      this.saveOutbox(e);
    } else {
      e.origin = origin;
    }
    this.outboxChanged(e);
    this.flushOutbox();
  }

  trimOutbox() {
    if (this.outbox.size <= this.cfg.outboxMax) return;
    const old = [...this.outbox.values()].sort((a, b) => (a.state === 'failed' ? 0 : 1) - (b.state === 'failed' ? 0 : 1) || a.ts - b.ts);
    for (const e of old.slice(0, this.outbox.size - this.cfg.outboxMax)) {
      this.outbox.delete(e.cid);
      this.deleteOutbox(e.cid);
      if (e.origin) this.reply(e.origin, { code: CODE.internal, error: ERR.internal, msg: 'the outbox is full' });
    }
  }

  saveOutbox(e) {
    const { inflight, origin, ...rec } = e;
    void inflight; void origin;
    this.backend.put('outbox', rec).catch((err) => this.log('outbox', String(err)));
  }

  deleteOutbox(cid) { this.backend.del('outbox', cid).catch((err) => this.log('outbox', String(err))); }

  // flushOutbox sends every waiting message that can go now: through a
  // session of its user, attached, in its room, on an open link.
  flushOutbox() {
    if (!this.conn.isOpen) return;
    for (const e of this.outbox.values()) {
      if (e.inflight || e.state !== 'sending' || e.waitUntil > this.now()) continue;
      const fu = foldName(e.user);
      let via = e.origin && this.tabs.has(e.origin.tab.id) ? e.origin.tab.session : null;
      if (!(via && via.attached && foldName(via.user) === fu && via.joined.has(e.room) && via.rooms.has(e.room))) {
        via = [...this.sessions.values()].find((x) => x.attached && foldName(x.user) === fu && x.joined.has(e.room) && x.rooms.has(e.room)) || null;
      }
      if (!via) continue;
      e.inflight = true;
      e.tries++;
      this.cmd(via, 'send', { room: e.room, text: e.text, cid: e.cid }, null, (r) => this.outboxReply(e, r));
    }
  }

  outboxReply(e, r) {
    e.inflight = false;
    if (!this.outbox.has(e.cid)) return;
    if (r.code === CODE.ok) {
      this.outbox.delete(e.cid);
      this.deleteOutbox(e.cid);
      e.state = 'sent';
      e.offset = r.body && r.body.offset;
      e.epoch = r.body && r.body.epoch;
      this.outboxChanged(e);
      if (e.origin) this.reply(e.origin, r);
      return;
    }
    if (transient(r.error || '')) {
      // the server may take it later: try again (same cid) after a while,
      // or after the next reconnect
      e.waitUntil = this.now() + this.cfg.outboxRetryMs;
      e.error = r.error || '';
      e.msg = r.msg || '';
      if (this.outboxTimer === null) {
        this.outboxTimer = this.setTimer(() => { this.outboxTimer = null; this.flushOutbox(); }, this.cfg.outboxRetryMs);
      }
      this.outboxChanged(e);
      return;
    }
    e.state = 'failed';
    e.error = r.error || '';
    e.msg = r.msg || '';
    this.saveOutbox(e);
    this.outboxChanged(e);
    if (e.origin) { this.reply(e.origin, r); e.origin = null; }
  }

  outboxRetry(cid) {
    const e = this.outbox.get(cid);
    if (!e) return false;
    e.state = 'sending';
    e.error = '';
    e.msg = '';
    e.waitUntil = 0;
    this.saveOutbox(e);
    this.outboxChanged(e);
    this.flushOutbox();
    return true;
  }

  outboxDiscard(cid) {
    const e = this.outbox.get(cid);
    if (!e) return false;
    this.outbox.delete(cid);
    this.deleteOutbox(cid);
    e.state = 'discarded';
    this.outboxChanged(e);
    return true;
  }

  outboxEvent(e) {
    return { k: 'outbox', cid: e.cid, room: e.room, text: e.text, user: e.user, ts: e.ts, state: e.state, error: e.error || '', msg: e.msg || '', offset: e.offset, epoch: e.epoch, tries: e.tries };
  }

  // outboxChanged tells every tab of the message's user.
  outboxChanged(e) {
    const fu = foldName(e.user);
    for (const s of this.sessions.values()) if (foldName(s.user || s.name) === fu) this.post(s.tab, this.outboxEvent(e), true);
  }

  // postOutbox tells one session what its user has waiting.
  postOutbox(s) {
    const fu = foldName(s.user || s.name);
    if (!fu) return;
    for (const e of this.outbox.values()) if (foldName(e.user) === fu) this.post(s.tab, this.outboxEvent(e), true);
  }

  // ---- private messages ---------------------------------------------------

  // gotDM stores a DM pushed to sessions (once per user), then shows it to
  // them; a skipped offset syncs the conversation (dmsync.js).
  gotDM(sids, body) {
    /** @type {Map<string, any[]>} */
    const byUser = new Map();
    for (const sid of sids) {
      const s = this.sessions.get(sid);
      if (!s) continue;
      const f = foldName(s.user);
      if (!byUser.has(f)) byUser.set(f, []);
      byUser.get(f).push(s);
    }
    for (const list of byUser.values()) {
      const me = list[0].user;
      const peer = foldName(body.from) === foldName(me) ? body.to : body.from;
      if (!me) { for (const s of list) this.post(s.tab, { k: 'dm', ...body, peer }); continue; }
      this.dms.add(me, body, this.serverId()).then((a) => this.dmAdded(me, peer, a, list, body));
    }
  }

  // sentDM stores a DM this session sent (its reply: the server pushes it to
  // the sender's other sessions, not to this one) and shows it to the tab.
  sentDM(s, body, r) {
    if (r.code !== CODE.ok || !r.body || !s.user) return;
    const m = { id: r.body.id, ts: r.body.ts, from: s.user, to: body.to, text: body.text, color: s.color, cid: body.cid, epoch: r.body.epoch, offset: r.body.offset };
    if (s.display) m.display = s.display; // as the server shows it to the others
    const me = s.user;
    this.dms.add(me, m, this.serverId()).then((a) => this.dmAdded(me, body.to, a, [s], m));
  }

  // dmAdded shows a DM stored by add() to the sessions it is for: after a
  // reset of its conversation (dm_reset to every tab of the user), and
  // syncs the conversation if it skipped an offset.
  dmAdded(me, peer, a, list, m) {
    if (a.reset) this.postUser(me, { k: 'dm_reset', peer: a.peer || peer, epoch: m.epoch || '' });
    for (const s of list) this.post(s.tab, { k: 'dm', ...m, peer });
    if (a.peer || a.reset) this.dmsChanged(me);
    if (a.gap) this.dmSync.sync(me, peer);
  }

  // dmsMerged shows what a sync of the server's history added (dmsync.js).
  dmsMerged(me, peer, added, reset) {
    if (reset) this.postUser(me, { k: 'dm_reset', peer, epoch: '' });
    for (const m of added) this.postUser(me, { k: 'dm', ...m, peer, source: 'history' });
    this.dmsChanged(me);
  }

  // dmSynced waits (a little) for a sync of user me's conversation with
  // peer: a tab opening it shows the server's history.
  dmSynced(me, peer) {
    if (!this.conn.isOpen || !this.dmSync.enabled()) return Promise.resolve();
    return new Promise((resolve) => {
      const t = this.setTimer(() => resolve(undefined), 3000);
      this.dmSync.sync(me, peer).then(() => { this.clearTimer(t); resolve(undefined); });
    });
  }

  // request sends a command for session s and resolves with its reply.
  request(s, cmd, body) {
    return new Promise((resolve) => { this.cmd(s, cmd, body, null, (r) => { resolve(r); return r; }); });
  }

  // postUser posts an event to every tab of user me.
  postUser(me, ev) {
    const fu = foldName(me);
    for (const s of this.sessions.values()) if (foldName(s.user || s.name) === fu) this.post(s.tab, ev, true);
  }

  serverId() {
    const h = this.conn.hello || {};
    return String(h.server || '');
  }

  dmsChanged(me) {
    const fu = foldName(me);
    this.dms.list(me).then((list) => {
      for (const s of this.sessions.values()) if (foldName(s.user || s.name) === fu) this.post(s.tab, { k: 'dm_conv', list }, true);
    });
  }

  postDMs(s) {
    const me = s.user || s.name;
    if (!me) return;
    this.dms.list(me).then((list) => { if (this.sessions.has(s.sid)) this.post(s.tab, { k: 'dm_conv', list }, true); });
  }

  stop() {
    for (const id of [...this.tabs.keys()]) this.removeTab(id, 'stop');
    if (this.graceTimer !== null) { this.clearTimer(this.graceTimer); this.graceTimer = null; }
    if (this.outboxTimer !== null) { this.clearTimer(this.outboxTimer); this.outboxTimer = null; }
    this.conn.stop();
    if (this.sweeper !== null) { this.clearTimer(this.sweeper); this.sweeper = null; }
    this.auth.close();
  }
}

class Session {
  constructor(sid, tabId) {
    this.sid = sid;
    this.tabId = tabId;
    this.tab = null;
    this.name = '';
    this.token = '';
    this.user = '';
    this.color = '';
    this.display = ''; // --auth jwt: the display name of the token (the attach reply's name), '' if none
    this.attached = false;
    this.everAttached = false;
    this.seq = 0;
    this.inflight = new Map();
    this.queue = [];
    this.joined = new Set();
    this.rooms = new Offsets();
    this.catchup = new Map(); // room -> live messages held while catching up
    this.deferred = new Map(); // room -> messages shown from the cache, for a join asked offline
    // --auth jwt (core/auth.js): the user the tab says it is, the token
    // attached or refreshed with and its expiry (Unix ms), and its state
    this.login = '';
    this.jwt = '';
    this.jwtExp = 0;
    this.refreshing = '';
    this.authWait = 0;       // the connection (conn.stats.opens) on which a token is awaited
    this.authRetries = 0;
    this.expiredAt = 0;      // detached for token_expired, attaching again
    /** @type {{code: number, error: string, msg: string, reason?: string}|null} */
    this.authFailure = null; // disconnected or refused: not attached until the tab asks again
  }

  public() { return { sid: this.sid, user: this.user, color: this.color, token: this.token, expires: this.jwtExp || undefined, display: this.display || undefined }; }
}



function clampInt(v, lo, hi, dflt) {
  const n = Number(v);
  if (!Number.isFinite(n)) return dflt;
  return Math.max(lo, Math.min(hi, Math.floor(n)));
}
