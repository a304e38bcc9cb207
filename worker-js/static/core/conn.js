// @ts-check
// Connection owns one WebSocket: hello, heartbeats, merged outgoing frames,
// go-away, and the reconnect ladder (backoff.js) across the /lbs addresses.
// Everything it needs from the platform is injected, so Node tests can drive
// it with a fake socket and fake timers.
import { Ladder, STEP } from './backoff.js';
import { decodeMessage, encodeBatches } from './frames.js';

// CLOSE_TOO_MANY_CONNS is the close code after a goaway too_many_connections.
export const CLOSE_TOO_MANY_CONNS = 4003;

export const DEFAULT_CONN = Object.freeze({
  slowMs: 30000,           // after the fast ladder gave up: retry this often (jittered), for ever
  slowJitter: 0.5,         // +-50%: slowMs*(1-j) .. slowMs*(1+j)
  connectTimeoutMs: 5000,  // socket open + hello
  pingMs: 0,               // 0: use hello.hb_ms
  pongTimeoutMs: 10000,    // nothing received this long after a ping: dead
  lbsTimeoutMs: 3000,
  sendDelayMs: 0,          // 0: merge frames queued in the same task
});

// States reported to onState: connecting, open, waiting (before a retry of
// the fast ladder), offline (the fast ladder gave up: retrying every slowMs,
// jittered, with retryAt; or kicked: not retrying), closed (stopped on
// purpose).
/**
 * lbsOf is the /lbs URL of the node a ws:// or wss:// address names
 * (ws://host:port/ws → http://host:port/lbs), or '' for anything else.
 * @param {string} addr
 * @returns {string}
 */
export function lbsOf(addr) {
  try {
    const u = new URL(addr);
    if (u.protocol !== 'ws:' && u.protocol !== 'wss:') return '';
    u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
    u.pathname = u.pathname.replace(/[^/]*$/, 'lbs');
    u.search = '';
    u.hash = '';
    return u.href;
  } catch {
    return '';
  }
}

export class Connection {
  /**
   * @param {{WebSocket: any, fetch: any, lbsUrl: string, defaultAddr: string, config?: any, random?: () => number,
   *   setTimer?: (f: () => void, ms: number) => any, clearTimer?: (id: any) => void, now?: () => number,
   *   onHello?: (h: any) => void, onFrames?: (f: any[]) => void, onDown?: (d: any) => void, onState?: (s: any) => void,
   *   log?: (...a: any[]) => void}} o
   */
  constructor({
    WebSocket, fetch, lbsUrl, defaultAddr, config = {}, random = Math.random,
    setTimer = (f, ms) => setTimeout(f, ms), clearTimer = (id) => clearTimeout(id), now = Date.now,
    onHello = () => {}, onFrames = () => {}, onDown = () => {}, onState = () => {}, log = () => {},
  }) {
    this.WS = WebSocket;
    this.fetch = fetch;
    this.lbsUrl = lbsUrl;
    this.defaultAddr = defaultAddr;
    this.cfg = { ...DEFAULT_CONN };
    this.ladder = new Ladder({}, random);
    this.random = random;
    this.configure(config);
    this.setTimer = setTimer;
    this.clearTimer = clearTimer;
    this.now = now;
    this.onHello = onHello;
    this.onFrames = onFrames;
    this.onDown = onDown;
    this.onState = onState;
    this.log = log;
    this.ws = null;
    this.state = 'idle';
    this.hello = null;
    this.out = [];
    this.flushScheduled = false;
    this.timers = {};
    this.pingSeq = 0;
    this.pingSent = new Map();
    this.goaway = null;
    this.slow = false;       // the fast ladder gave up: one attempt per slowMs
    this.kicked = false;
    this.stats = { connects: 0, opens: 0, drops: 0, pings: 0, pongs: 0, rttMs: 0, framesOut: 0, messagesOut: 0, framesIn: 0, messagesIn: 0, bytesIn: 0, lbsFetches: 0, slowRetries: 0, wakes: 0 };
    this.info = {};
  }

  configure(c = {}) {
    for (const k of Object.keys(DEFAULT_CONN)) {
      if (typeof c[k] === 'number' && Number.isFinite(c[k]) && c[k] >= 0) this.cfg[k] = c[k];
    }
    this.ladder.configure(c);
  }

  get isOpen() { return this.state === 'open'; }

  // setServer points the connection at another server: base is its http(s)
  // URL (the folder of /lbs and /ws), e.g. 'https://chat.example.com/'.
  setServer(base) {
    const root = new URL('./', base);
    const ws = new URL('ws', root);
    ws.protocol = ws.protocol === 'https:' ? 'wss:' : 'ws:';
    this.lbsUrl = new URL('lbs', root).href;
    this.defaultAddr = ws.href;
  }

  start() {
    if (this.state !== 'idle' && this.state !== 'offline' && this.state !== 'closed') return;
    this.slow = false;
    this.kicked = false;
    this.ladder.reset();
    this.setState('connecting', { action: 'lbs' });
    this.refetch().then(() => this.connect());
  }

  // retryNow skips the wait (a user's "retry" after giving up, or the
  // browser coming online).
  retryNow() {
    if (this.state === 'open' || this.state === 'connecting' || this.state === 'closed' || this.state === 'idle') return;
    this.clear('retry');
    this.slow = false;
    this.kicked = false;
    this.ladder.reset();
    this.connect();
  }

  // wake is a hint that the network may be back (the browser's online
  // event, a tab shown or focused): after the fast ladder gave up, try at
  // once instead of waiting for the slow retry. Not after a kick (the user
  // decides), not while the fast ladder or a goaway's wait runs.
  wake(why = '') {
    if (this.state !== 'offline' || this.kicked) return false;
    this.stats.wakes++;
    this.log('wake', why);
    this.retryNow();
    return true;
  }

  stop() {
    this.setState('closed', {});
    for (const k of Object.keys(this.timers)) this.clear(k);
    this.dropSocket(1000, 'bye');
    this.out = [];
  }

  // refetch asks for the address list (/lbs): of the page's server
  // first, then of each node of the list it has, in order (the page's
  // server may be the node that died). None answering, it keeps the list
  // it has: a dead node's address stays on it for the ladder to skip,
  // rather than the list shrinking to that dead node alone.
  async refetch() {
    this.stats.lbsFetches++;
    const urls = [];
    if (this.lbsUrl) urls.push(this.lbsUrl);
    for (const a of this.ladder.addrs) {
      const u = lbsOf(a);
      if (u && !urls.includes(u)) urls.push(u);
    }
    let addrs = [];
    for (const u of this.fetch ? urls : []) {
      addrs = await this.fetchList(u);
      if (addrs.length) break;
    }
    if (!addrs.length) addrs = this.ladder.addrs.length ? this.ladder.addrs.slice() : [];
    if (!addrs.length && this.defaultAddr) addrs = [this.defaultAddr];
    this.ladder.setAddrs(addrs);
    this.info.addrs = this.ladder.addrs.slice();
  }

  /**
   * fetchList fetches one /lbs (within lbsTimeoutMs) and returns its
   * ws:// and wss:// addresses ([] if it does not answer).
   * @param {string} url
   * @returns {Promise<string[]>}
   */
  async fetchList(url) {
    try {
      const ctl = typeof AbortController === 'function' ? new AbortController() : null;
      const t = this.setTimer(() => ctl && ctl.abort(), this.cfg.lbsTimeoutMs);
      try {
        const res = await this.fetch(url, { cache: 'no-store', signal: ctl ? ctl.signal : undefined });
        if (!res.ok) return [];
        const j = await res.json();
        return j && Array.isArray(j.addrs) ? j.addrs.filter((a) => typeof a === 'string' && /^wss?:\/\//.test(a)) : [];
      } finally {
        this.clearTimer(t);
      }
    } catch (e) {
      this.log('lbs fetch failed', url, String(e));
      return [];
    }
  }

  connect() {
    if (this.state === 'closed') return;
    const addr = this.ladder.current();
    this.goaway = null;
    this.hello = null;
    this.stats.connects++;
    this.info.addr = addr;
    this.setState('connecting', { addr, attempt: this.ladder.attempt });
    let ws;
    try {
      ws = new this.WS(addr);
    } catch (e) {
      this.log('socket failed', String(e));
      this.failed('socket: ' + e);
      return;
    }
    this.ws = ws;
    this.arm('connect', this.cfg.connectTimeoutMs, () => { this.dropSocket(4000, 'connect timeout'); this.failed('connect timeout'); });
    ws.onmessage = (e) => { if (this.ws === ws) this.receive(e.data); };
    ws.onclose = (e) => { if (this.ws === ws) { this.ws = null; this.closed(e.code, e.reason); } };
    ws.onerror = () => {};
  }

  receive(data) {
    if (typeof data !== 'string') return; // binary: not ours
    this.stats.messagesIn++;
    this.stats.bytesIn += data.length;
    this.lastRx = this.now();
    this.clear('pong');
    const { frames } = decodeMessage(data);
    this.stats.framesIn += frames.length;
    const rest = [];
    for (const f of frames) {
      switch (f.t) {
        case 'hello': this.gotHello(f.body || {}); break;
        case 'pong': this.gotPong(f.seq); break;
        case 'ping': break;
        case 'goaway':
          this.goaway = { reason: (f.body && f.body.reason) || '', retryMs: Number(f.body && f.body.retry_ms) || 0 };
          this.log('goaway', this.goaway);
          break;
        default: rest.push(f);
      }
    }
    if (rest.length && this.state === 'open') this.onFrames(rest);
  }

  gotHello(h) {
    this.clear('connect');
    this.hello = h;
    this.ladder.success();
    this.slow = false;
    this.stats.opens++;
    this.info.hello = h;
    this.info.since = this.now();
    this.setState('open', { addr: this.info.addr, conn: h.conn, server: h.server, maxText: Number(h.max_text) || 0, auth: String(h.auth || '') });
    const every = this.cfg.pingMs || Number(h.hb_ms) || 15000;
    this.arm('ping', every, () => this.ping(every));
    this.onHello(h);
    this.scheduleFlush();
  }

  ping(every) {
    if (this.state !== 'open') return;
    const seq = ++this.pingSeq;
    this.pingSent.set(seq, this.now());
    if (this.pingSent.size > 8) this.pingSent.delete(this.pingSent.keys().next().value);
    this.stats.pings++;
    this.send({ t: 'ping', seq });
    // the pong (or anything else) must come back in time, or the link is dead
    if (!this.timers.pong) {
      this.arm('pong', this.cfg.pongTimeoutMs, () => {
        this.log('no pong: link dead');
        this.dropSocket(4000, 'heartbeat timeout');
        this.closed(4000, 'heartbeat timeout');
      });
    }
    this.arm('ping', every, () => this.ping(every));
  }

  gotPong(seq) {
    this.stats.pongs++;
    const t = this.pingSent.get(seq);
    if (t !== undefined) { this.stats.rttMs = this.now() - t; this.pingSent.delete(seq); }
  }

  // send queues a frame; frames queued in the same task (or within
  // sendDelayMs) travel in one WebSocket message, within the hello limits.
  send(frame) {
    this.out.push(JSON.stringify(frame));
    this.scheduleFlush();
  }

  scheduleFlush() {
    if (this.flushScheduled || this.state !== 'open' || !this.out.length) return;
    this.flushScheduled = true;
    const run = () => { this.flushScheduled = false; this.flush(); };
    if (this.cfg.sendDelayMs > 0) this.setTimer(run, this.cfg.sendDelayMs);
    else queueMicrotask(run);
  }

  flush() {
    if (this.state !== 'open' || !this.ws || !this.out.length) return;
    const h = this.hello || {};
    const msgs = encodeBatches(this.out, Number(h.max_frames) || 128, Number(h.max_msg) || 65536);
    this.stats.framesOut += this.out.length;
    this.out = [];
    for (const m of msgs) {
      try { this.ws.send(m); this.stats.messagesOut++; } catch (e) { this.log('send failed', String(e)); }
    }
  }

  // dropOutgoing forgets frames not yet sent (the session layer resends
  // what matters after re-attaching).
  dropOutgoing() { this.out = []; }

  closed(code, reason) {
    const wasOpen = this.state === 'open';
    this.clear('connect'); this.clear('ping'); this.clear('pong');
    this.pingSent.clear();
    this.out = [];
    if (this.state === 'closed') return;
    if (wasOpen) { this.stats.drops++; this.onDown({ code, reason, goaway: this.goaway }); }
    const g = this.goaway;
    if ((g && g.reason === 'too_many_connections') || code === CLOSE_TOO_MANY_CONNS) {
      // Kicked: this user has too many connections (the server closes the
      // oldest). Reconnecting would kick the next oldest, for ever: stay
      // offline until the user asks (retryNow).
      this.kicked = true;
      this.setState('offline', { reason: 'too_many_connections', code, kicked: true });
      return;
    }
    if (g) {
      // the server asked us to wait (jittered per connection): honour it
      const step = { action: STEP.retry, addr: this.ladder.current(), delayMs: g.retryMs, attempt: this.ladder.attempt, goaway: g.reason };
      this.ladder.attempt++;
      this.waitThen(step, code, reason);
      return;
    }
    this.failed(reason || `closed ${code}`, code);
  }

  failed(reason, code) {
    if (this.state === 'closed') return;
    this.clear('connect');
    if (this.slow) { this.slowRetry(reason, code, this.ladder.attempt); return; }
    const step = this.ladder.next();
    if (step.action === STEP.giveUp) {
      // the fast ladder is over: tell the user (offline), and keep trying
      // at a long, jittered interval (a wake() tries at once)
      this.slow = true;
      this.slowRetry(reason, code, step.attempt);
      return;
    }
    this.waitThen(step, code, reason);
  }

  slowRetry(reason, code, attempt) {
    const j = Math.max(0, Math.min(1, this.cfg.slowJitter));
    const delayMs = Math.max(0, Math.round(this.cfg.slowMs * (1 - j + 2 * j * this.random())));
    this.setState('offline', { reason, code, attempt, action: STEP.giveUp, slow: true, delayMs, retryAt: this.now() + delayMs });
    this.arm('retry', delayMs, async () => {
      this.stats.slowRetries++;
      await this.refetch();
      this.connect();
    });
  }

  waitThen(step, code, reason) {
    this.setState('waiting', { ...step, code, reason, retryAt: this.now() + step.delayMs });
    this.arm('retry', step.delayMs, async () => {
      if (step.action === STEP.refetch) await this.refetch();
      this.connect();
    });
  }

  dropSocket(code, reason) {
    const ws = this.ws;
    this.ws = null;
    if (!ws) return;
    ws.onmessage = ws.onclose = ws.onerror = ws.onopen = null;
    try { ws.close(code, reason); } catch { /* already closed */ }
  }

  setState(state, detail) {
    this.state = state;
    this.info.state = state;
    this.onState({ state, ...detail });
  }

  arm(name, ms, fn) {
    this.clear(name);
    this.timers[name] = this.setTimer(() => { delete this.timers[name]; fn(); }, ms);
  }

  clear(name) {
    if (this.timers[name] !== undefined) { this.clearTimer(this.timers[name]); delete this.timers[name]; }
  }
}
