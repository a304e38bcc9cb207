// --auth jwt on the browser side (core/auth.js): reading tokens, one token
// per user for all its tabs, one getToken per need, refresh, token_expired
// and disconnected, against the real Hub with a fake socket and clock.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Hub } from '../static/core/hub.js';
import { MemoryBackend } from '../static/core/cache.js';
import { decodeJwt, TokenBook, JwtShare } from '../static/core/auth.js';
import { ERR, CLIENT_ERR } from '../static/core/errors.js';
import { Clock, fakeWebSocket, settle } from './helpers.js';

const b64url = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
// jwt makes an unsigned-looking token (the hub does not verify: the server does).
const jwt = (sub, expMs, extra = {}) => `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ sub, exp: Math.floor(expMs / 1000), ...extra })}.c2ln`;

test('decodeJwt reads sub, exp (ms) and name; refuses what is not a JWT with sub and exp', () => {
  const t = jwt('Алиса', 2_000_000_000_000, { name: 'Alice Ω' });
  assert.deepEqual(decodeJwt(t), { sub: 'Алиса', exp: 2_000_000_000_000, name: 'Alice Ω' });
  for (const bad of ['', 'a.b', 'a..c', `x.${b64url({ sub: 'a' })}.y`, `x.${b64url({ exp: 1 })}.y`, `x.${b64url({ sub: 'a', exp: '1' })}.y`, 'x.!!!.y', 42, null]) {
    assert.equal(decodeJwt(bad), null, String(bad));
  }
});

test('TokenBook: one ask per user however many wait, newest kept, checks what a tab gave', async () => {
  let now = 1_000_000;
  const book = new TokenBook({ now: () => now, minLifeMs: 1000 });
  let asks = 0;
  let give;
  const ask = () => { asks++; return new Promise((r) => { give = r; }); };
  const p1 = book.obtain('alice', 'alice', 0, ask);
  const p2 = book.obtain('alice', 'alice', 0, ask);
  await settle();
  assert.equal(asks, 1, 'the second waits for the first ask');
  give(jwt('alice', now + 60_000));
  const [e1, e2] = await Promise.all([p1, p2]);
  assert.equal(e1.jwt, e2.jwt);
  assert.equal((await book.obtain('alice', 'alice', 0, ask)).jwt, e1.jwt, 'kept: no ask');
  assert.equal(asks, 1);
  // a refresh wants one newer than the expiring token
  const p3 = book.obtain('alice', 'alice', now + 60_000, ask);
  await settle();
  assert.equal(asks, 2);
  give(jwt('alice', now + 120_000));
  assert.equal((await p3).exp, now + 120_000);
  // not usable any more within minLifeMs of its expiry
  now += 119_500;
  assert.equal(book.valid('alice'), null);
  // what a tab gave is checked: another user's, expired, not a JWT
  await assert.rejects(book.obtain('alice', 'alice', 0, async () => jwt('bob', now + 60_000)), (e) => e.error === CLIENT_ERR.noToken && /for "bob", not for "alice"/.test(e.message));
  await assert.rejects(book.obtain('alice', 'alice', 0, async () => jwt('alice', now - 1)), /expired/);
  await assert.rejects(book.obtain('alice', 'alice', 0, async () => 'opaque'), /not a JSON Web Token/);
  // a tab that did not say who it is: its token is kept under its sub
  const e = await book.obtain('', '', 0, async () => jwt('carol', now + 60_000));
  assert.equal(e.key, 'carol');
  assert.equal(book.valid('carol').jwt, e.jwt);
});

// setup: a hub on a fake socket whose hello says auth jwt; tabs answer
// token requests with tokens of their user (counted).
function setup({ auth = 'jwt', share = null, mode = 'shared_worker' } = {}) {
  const clock = new Clock();
  const { FakeWS, sockets } = fakeWebSocket();
  const fetch = async () => ({ ok: true, json: async () => ({ addrs: ['ws://s1/ws'] }) });
  const hub = new Hub({
    mode, WebSocket: FakeWS, fetch, base: 'http://h/', cacheBackend: new MemoryBackend(), jwtShare: share,
    setTimer: clock.setTimer, clearTimer: clock.clearTimer, now: clock.now, random: () => 0.5,
    config: { flushMs: 0, baseMs: 100, maxMs: 1000, pongTimeoutMs: 60000, pingMs: 60000 },
  });
  const asks = [];
  const tab = (id, state = {}, { ttl = 60_000, give = true } = {}) => {
    const t = { id, got: [] };
    t.ep = {
      post: (m) => {
        t.got.push(m);
        if (m.op === 'token_req') {
          asks.push({ tab: id, ...m });
          if (give) queueMicrotask(() => t.answer(m, ttl));
        }
      },
    };
    t.answer = (m, ttlMs = ttl) => hub.handle(t.ep, { op: 'token', tab: id, id: m.id, jwt: jwt(m.user || state.user, clock.now() + ttlMs) });
    t.send = (m) => hub.handle(t.ep, { tab: id, ...m });
    t.events = (k) => t.got.filter((m) => m.op === 'events').flatMap((m) => m.list).filter((e) => !k || e.k === k);
    t.hello = () => t.send({ op: 'hello', v: 1, state: { getToken: true, ...state } });
    return t;
  };
  const open = async () => {
    await clock.advance(0);
    sockets[sockets.length - 1].hello(auth ? { auth, token_expiring_ms: 1000 } : {});
    await settle();
  };
  return { clock, sockets, hub, tab, asks, open };
}

// reply answers every command the server would accept (attach with the
// token's sub and exp, join, refresh).
function reply(ws, { refuse = () => null } = {}) {
  const out = [];
  for (const f of ws.take()) {
    if (f.t !== 'cmd') continue;
    const no = refuse(f);
    if (no) { out.push({ t: 'reply', sid: f.sid, seq: f.seq, ...no }); continue; }
    let body = {};
    if (f.cmd === 'attach') { const d = decodeJwt(f.body.jwt); body = { sid: f.sid, user: d.sub, color: '#111111', expires: d.exp }; }
    if (f.cmd === 'refresh') body = { expires: decodeJwt(f.body.jwt).exp };
    if (f.cmd === 'join') body = { room: f.body.room, epoch: 'e1', top: 0, members: 1, messages: [] };
    out.push({ t: 'reply', sid: f.sid, seq: f.seq, code: 200, body });
  }
  if (out.length) ws.deliver(...out);
  return out;
}

const cmds = (frames, cmd) => frames.filter((f) => f.t === 'cmd' && f.cmd === cmd);

test('two tabs of one user: one getToken for both attaches; a third user apart', async () => {
  const { sockets, tab, asks, open } = setup();
  const a1 = tab('A1', { user: 'alice', rooms: [{ room: 'lobby' }] });
  const a2 = tab('A2', { user: 'alice', rooms: [{ room: 'lobby' }] });
  const b = tab('B', { user: 'bob' });
  a1.hello(); a2.hello(); b.hello();
  await open();
  await settle();
  assert.deepEqual(asks.map((q) => [q.tab, q.user, q.reason]), [['A1', 'alice', 'attach'], ['B', 'bob', 'attach']], 'one ask per user');
  const attaches = cmds(sockets[0].frames(), 'attach');
  assert.equal(attaches.length, 3);
  assert.equal(attaches[0].body.jwt, attaches[1].body.jwt, 'alice\'s tabs attach with one token');
  assert.equal(decodeJwt(attaches[2].body.jwt).sub, 'bob');
  assert.ok(attaches.every((f) => !('name' in f.body) && f.body.mode === 'shared_worker'), 'no name: the token says who');
  // the rooms follow each attach (a session waits for nobody else's token)
  assert.equal(cmds(sockets[0].frames(), 'join').length, 2);
  reply(sockets[0]);
  await settle();
  assert.equal(a2.events('attached')[0].user, 'alice');
  assert.equal(b.events('attached')[0].user, 'bob');
  // a tab of alice opened later uses the token kept: no ask
  const a3 = tab('A3', { user: 'alice' });
  a3.hello();
  await settle();
  assert.equal(asks.length, 2);
  assert.equal(cmds(sockets[0].frames(), 'attach')[0].body.jwt, attaches[0].body.jwt);
});

test('token_expiring: one ask per user, a refresh for each of its sessions with the new token', async () => {
  const { clock, sockets, tab, asks, open, hub } = setup();
  const a1 = tab('A1', { user: 'alice' });
  const a2 = tab('A2', { user: 'alice' });
  a1.hello(); a2.hello();
  await open();
  reply(sockets[0]);
  await settle();
  const exp = decodeJwt(cmds(sockets[0].frames(), 'attach')[0]?.body.jwt || hub.auth.book.valid('alice').jwt).exp;
  clock.t += 59_000;
  // the server warns each session by itself
  sockets[0].deliver({ t: 'push', sids: [1], ev: 'token_expiring', body: { expires: exp } });
  sockets[0].deliver({ t: 'push', sids: [2], ev: 'token_expiring', body: { expires: exp } });
  await settle();
  assert.equal(asks.length, 2, 'one more ask for both sessions');
  assert.equal(asks[1].reason, 'refresh');
  assert.equal(asks[1].after, exp);
  const refreshes = cmds(sockets[0].frames(), 'refresh');
  assert.deepEqual(refreshes.map((f) => f.sid), [1, 2]);
  assert.equal(refreshes[0].body.jwt, refreshes[1].body.jwt);
  assert.ok(decodeJwt(refreshes[0].body.jwt).exp > exp);
  reply(sockets[0]);
  await settle();
  assert.equal(hub.auth.stats.refreshes, 2);
  // a late warning for a session already refreshed asks nothing, sends nothing
  sockets[0].deliver({ t: 'push', sids: [2], ev: 'token_expiring', body: { expires: exp } });
  await settle();
  assert.equal(asks.length, 2);
  assert.equal(cmds(sockets[0].frames(), 'refresh').length, 0);
  assert.equal(a1.events('detached').length + a1.events('auth_error').length, 0);
});

test('refresh leaving rooms the new token does not allow: left events', async () => {
  const { clock, sockets, tab, open } = setup();
  const a = tab('A', { user: 'alice', rooms: [{ room: 'lobby' }, { room: 'team' }] });
  a.hello();
  await open();
  reply(sockets[0]);
  await settle();
  clock.t += 59_000;
  sockets[0].deliver({ t: 'push', sids: [1], ev: 'token_expiring', body: { expires: clock.now() + 1000 } });
  await settle();
  const f = cmds(sockets[0].take(), 'refresh')[0];
  sockets[0].deliver({ t: 'reply', sid: 1, seq: f.seq, code: 200, body: { expires: decodeJwt(f.body.jwt).exp, left: ['team'] } });
  await settle();
  assert.deepEqual(a.events('left').map((e) => [e.room, e.reason]), [['team', ERR.forbidden]]);
});

test('detached token_expired: a new token, attached again, rooms resumed from their offsets, no event to the tab', async () => {
  const { clock, sockets, tab, asks, open, hub } = setup();
  const a = tab('A', { user: 'alice', rooms: [{ room: 'lobby', epoch: 'e1', offset: 7 }] });
  a.hello();
  await open();
  reply(sockets[0]);
  await settle();
  clock.t += 61_000;
  sockets[0].deliver({ t: 'push', sids: [1], ev: 'detached', body: { code: 401, error: ERR.tokenExpired, msg: 'expired' } });
  await settle();
  assert.deepEqual(asks.map((q) => q.reason), ['attach', 'expired']);
  const f = sockets[0].frames().filter((x) => x.t === 'cmd');
  assert.deepEqual(f.map((x) => x.cmd), ['attach', 'join'], 'attach, then the room resumed behind it');
  assert.equal(decodeJwt(f[0].body.jwt).exp, clock.now() + 60_000, 'with the new token');
  assert.deepEqual([f[1].body.epoch, f[1].body.offset], ['e1', 7]);
  reply(sockets[0]);
  await settle();
  assert.equal(hub.auth.stats.reattached, 1);
  assert.equal(a.events('attached').at(-1).resumed, true);
  assert.equal(a.events('detached').length + a.events('auth_error').length, 0, 'transparent');
});

test('detached disconnected: the tab is told, nothing attached again (not even after a reconnect) until retryAuth', async () => {
  const { clock, sockets, tab, asks, open } = setup();
  const a = tab('A', { user: 'alice', rooms: [{ room: 'lobby' }] });
  const b = tab('B', { user: 'bob' });
  a.hello(); b.hello();
  await open();
  reply(sockets[0]);
  await settle();
  sockets[0].deliver({ t: 'push', sids: [1], ev: 'detached', body: { code: 403, error: ERR.disconnected, reason: 'banned', msg: 'm' } });
  await settle();
  assert.deepEqual(a.events('detached').map((e) => [e.code, e.error, e.reason]), [[403, ERR.disconnected, 'banned']]);
  assert.equal(sockets[0].frames().length, 0, 'no attach');
  // its commands get the reason at once
  a.send({ op: 'cmd', id: 9, cmd: 'who', body: { room: 'lobby' } });
  await settle();
  assert.equal(a.events('reply').find((e) => e.id === 9).error, ERR.disconnected);
  // a reconnect attaches bob only
  sockets[0].drop();
  await clock.advance(1000);
  sockets[1].hello({ auth: 'jwt', token_expiring_ms: 1000 });
  await settle();
  assert.deepEqual(cmds(sockets[1].frames(), 'attach').map((f) => f.sid), [2]);
  reply(sockets[1]);
  await settle();
  // retryAuth: a new token is asked for (the old one was forgotten), and the room joined
  const before = asks.length;
  a.send({ op: 'reauth' });
  await settle();
  assert.equal(asks.length, before + 1);
  assert.deepEqual(sockets[1].frames().filter((f) => f.t === 'cmd').map((f) => [f.sid, f.cmd]), [[1, 'attach'], [1, 'join']]);
});

test('getToken failing: auth_error to the tab, the session stays detached; a join meanwhile is deferred', async () => {
  const { sockets, tab, asks, open, hub } = setup();
  const a = tab('A', { user: 'alice' }, { give: false });
  a.hello();
  await open();
  assert.equal(asks.length, 1);
  // a join asked while the token is awaited is answered at once, and made with the attach
  a.send({ op: 'cmd', id: 1, cmd: 'join', body: { room: 'lobby' } });
  await settle();
  assert.equal(a.events('reply').find((e) => e.id === 1).body.deferred, true);
  hub.handle(a.ep, { op: 'token', tab: 'A', id: asks[0].id, jwt: '', error: 'backend down' });
  await settle();
  const err = a.events('auth_error')[0];
  assert.equal(err.error, CLIENT_ERR.noToken);
  assert.match(err.msg, /backend down/);
  assert.equal(sockets[0].frames().length, 0);
  // retryAuth: asked again; given this time: attach and the deferred join
  a.send({ op: 'reauth' });
  await settle();
  assert.equal(asks.length, 2);
  a.answer(asks[1]);
  await settle();
  assert.deepEqual(sockets[0].frames().filter((f) => f.t === 'cmd').map((f) => f.cmd), ['attach', 'join']);
});

test('the attach refused: token_invalid is an auth_error; an expired token is replaced once', async () => {
  const { sockets, tab, asks, open } = setup();
  const a = tab('A', { user: 'alice' });
  a.hello();
  await open();
  reply(sockets[0], { refuse: (f) => (f.cmd === 'attach' ? { code: 401, error: ERR.tokenExpired, msg: 'exp' } : null) });
  await settle();
  assert.equal(asks.length, 2, 'an expired token is forgotten and another asked for');
  reply(sockets[0], { refuse: (f) => (f.cmd === 'attach' ? { code: 401, error: ERR.tokenInvalid, msg: 'bad signature' } : null) });
  await settle();
  assert.deepEqual(a.events('auth_error').map((e) => [e.error, e.msg]), [[ERR.tokenInvalid, 'bad signature']]);
  assert.equal(sockets[0].frames().length, 0, 'not attached again by itself');
});

test('the attach refused for a while (503 unavailable): tried again later with the same token, then auth_error', async () => {
  const { clock, sockets, tab, asks, open } = setup();
  const a = tab('A', { user: 'alice' });
  a.hello();
  await open();
  const busy = (f) => (f.cmd === 'attach' ? { code: 503, error: ERR.unavailable, msg: 'waiting for the JWK Set' } : null);
  const first = cmds(sockets[0].frames(), 'attach')[0].body.jwt;
  for (let i = 1; i <= 3; i++) {
    reply(sockets[0], { refuse: busy });
    await settle();
    assert.equal(sockets[0].frames().length, 0, 'not at once');
    await clock.advance(2000 * i);
    assert.equal(cmds(sockets[0].frames(), 'attach')[0].body.jwt, first, `try ${i + 1}: the same token`);
  }
  reply(sockets[0], { refuse: busy });
  await clock.advance(10_000);
  assert.equal(sockets[0].frames().length, 0);
  assert.equal(a.events('auth_error')[0].error, ERR.unavailable);
  assert.equal(asks.length, 1, 'no new token asked for');
});

test('the asked tab goes: another tab of the user is asked; none: auth_error', async () => {
  const { sockets, tab, asks, open, hub } = setup();
  const a1 = tab('A1', { user: 'alice' }, { give: false });
  const a2 = tab('A2', { user: 'alice' }, { give: false });
  a1.hello(); a2.hello();
  await open();
  assert.deepEqual(asks.map((q) => q.tab), ['A1']);
  a1.send({ op: 'detach' });
  await settle();
  assert.deepEqual(asks.map((q) => q.tab), ['A1', 'A2']);
  a2.answer(asks[1], 60_000);
  await settle();
  assert.deepEqual(cmds(sockets[0].frames(), 'attach').map((f) => f.sid), [2]);
  // a tab without getToken, alone for its user
  const c = tab('C', { user: 'carol', getToken: false });
  c.hello();
  await settle();
  assert.equal(c.events('auth_error')[0].error, CLIENT_ERR.noToken);
  assert.match(c.events('auth_error')[0].msg, /getToken/);
  void hub;
});

test('a tab that does not say who it is: asked itself; then it is its token\'s user', async () => {
  const { sockets, tab, asks, open, hub } = setup();
  const t = tab('T', {}, { give: false });
  t.hello();
  await open();
  assert.equal(asks[0].user, '');
  hub.handle(t.ep, { op: 'token', tab: 'T', id: asks[0].id, jwt: jwt('dave', 1_000_000 + 60_000) });
  await settle();
  const f = cmds(sockets[0].frames(), 'attach')[0];
  assert.equal(decodeJwt(f.body.jwt).sub, 'dave');
  assert.equal(hub.sessions.get(1).login, 'dave');
});

test('--auth none: no token asked, names attach as before', async () => {
  const { sockets, tab, asks, open } = setup({ auth: '' });
  const a = tab('A', { name: 'alice', user: 'alice' });
  a.hello();
  await open();
  const f = cmds(sockets[0].frames(), 'attach')[0];
  assert.equal(asks.length, 0);
  assert.equal(f.body.name, 'alice');
  assert.equal(f.body.jwt, undefined);
});

// fakeBus: BroadcastChannels and Web Locks of one browser, in memory.
function fakeBrowser() {
  const chans = new Map();
  class BC {
    constructor(name) { this.name = name; this.onmessage = null; if (!chans.has(name)) chans.set(name, new Set()); chans.get(name).add(this); }
    postMessage(d) { for (const c of chans.get(this.name)) if (c !== this) queueMicrotask(() => c.onmessage && c.onmessage({ data: structuredClone(d) })); }
    close() { chans.get(this.name).delete(this); }
  }
  const held = new Map();
  const locks = {
    request(name, fn) {
      const prev = held.get(name) || Promise.resolve();
      const run = prev.then(() => fn());
      held.set(name, run.catch(() => {}));
      return run;
    },
  };
  return { BC, locks };
}

test('direct mode: hubs of one browser share a token through JwtShare: one getToken for two tabs, one per refresh', async () => {
  const { BC, locks } = fakeBrowser();
  const mk = () => setup({ mode: 'direct', share: new JwtShare({ BC, locks, waitMs: 50 }) });
  const h1 = mk();
  const h2 = mk();
  let calls = 0;
  const counting = (h, id) => {
    const t = h.tab(id, { user: 'alice' }, { give: false });
    const post = t.ep.post;
    t.ep.post = (m) => { post(m); if (m.op === 'token_req') { calls++; setTimeout(() => t.answer(m, 60_000), 5); } };
    return t;
  };
  const t1 = counting(h1, 'T1');
  t1.hello();
  await h1.open();
  await new Promise((r) => setTimeout(r, 100)); // the share's wait for answers is a real timer
  await settle();
  assert.equal(calls, 1);
  const t2 = counting(h2, 'T2');
  t2.hello();
  await h2.open();
  await new Promise((r) => setTimeout(r, 30));
  await settle();
  assert.equal(calls, 1, 'the second tab got the first one\'s token');
  const j1 = cmds(h1.sockets[0].frames(), 'attach')[0].body.jwt;
  const j2 = cmds(h2.sockets[0].frames(), 'attach')[0].body.jwt;
  assert.equal(j1, j2);
  reply(h1.sockets[0]); reply(h2.sockets[0]);
  await settle();
  // both warned at once: one getToken, both refreshed with its token
  const exp = decodeJwt(j1).exp;
  h1.clock.t += 59_000; h2.clock.t += 59_000;
  h1.sockets[0].deliver({ t: 'push', sids: [1], ev: 'token_expiring', body: { expires: exp } });
  h2.sockets[0].deliver({ t: 'push', sids: [1], ev: 'token_expiring', body: { expires: exp } });
  await new Promise((r) => setTimeout(r, 150));
  await settle();
  assert.equal(calls, 2);
  const r1 = cmds(h1.sockets[0].frames(), 'refresh')[0];
  const r2 = cmds(h2.sockets[0].frames(), 'refresh')[0];
  assert.ok(r1 && r2, 'both refreshed');
  assert.equal(r1.body.jwt, r2.body.jwt);
  h1.hub.stop(); h2.hub.stop();
});

// A getToken that never settles (a backend that hangs, a sign-in form
// nobody fills): after the tab's tokenTimeoutMs (10 s by default) the
// attach or refresh waiting for it fails with no_token, and a later
// request asks again: nothing stays stuck.
test('getToken that never answers: no_token after 10 s by default; the late answer ignored; retryAuth asks again', async () => {
  const { clock, sockets, tab, asks, open, hub } = setup();
  const a = tab('A', { user: 'alice', rooms: [{ room: 'lobby' }] }, { give: false });
  a.hello();
  await open();
  assert.equal(asks.length, 1);
  await clock.advance(9_999);
  assert.equal(a.events('auth_error').length, 0, 'not before the timeout');
  await clock.advance(1);
  const err = a.events('auth_error');
  assert.equal(err.length, 1);
  assert.equal(err[0].error, CLIENT_ERR.noToken);
  assert.match(err[0].msg, /getToken did not answer within 10000 ms/);
  assert.equal(hub.auth.asks.size, 0, 'the ask is dropped');
  assert.equal(hub.auth.stats.tokenTimeouts, 1);
  // the answer that comes too late is not used
  a.answer(asks[0]);
  await settle();
  assert.equal(cmds(sockets[0].frames(), 'attach').length, 0);
  // its commands get the reason until retryAuth, which asks again
  a.send({ op: 'cmd', id: 7, cmd: 'who', body: { room: 'lobby' } });
  await settle();
  assert.match(a.events('reply').find((e) => e.id === 7).msg, /did not answer/);
  a.send({ op: 'reauth' });
  await settle();
  assert.equal(asks.length, 2);
  assert.equal(asks[1].reason, 'attach');
  a.answer(asks[1]);
  await settle();
  assert.deepEqual(sockets[0].frames().filter((f) => f.t === 'cmd').map((f) => f.cmd), ['attach', 'join']);
});

test('tokenTimeoutMs is the tab\'s: a refresh that times out asks again at the expiry; 0 waits for ever', async () => {
  const { clock, sockets, tab, asks, open, hub } = setup();
  const a = tab('A', { user: 'alice', tokenTimeoutMs: 500 }, { give: false });
  const b = tab('B', { user: 'bob', tokenTimeoutMs: 0 }, { give: false });
  a.hello(); b.hello();
  await open();
  assert.deepEqual(asks.map((q) => q.tab), ['A', 'B']);
  a.answer(asks[0], 60_000);
  await settle();
  reply(sockets[0]);
  await settle();
  assert.equal(a.events('attached').length, 1);
  // bob's tab never answers, and said to wait for ever (the tabs ping,
  // as live tabs do: a silent one goes after tabTimeoutMs)
  for (let i = 0; i < 6; i++) { await clock.advance(5_000); a.send({ op: 'ping' }); b.send({ op: 'ping' }); }
  assert.equal(b.events('auth_error').length, 0);
  assert.ok([...hub.auth.asks.values()].some((q) => q.tabId === 'B'), 'still asked');
  // alice's refresh: her tab does not answer within 500 ms
  const exp = decodeJwt(hub.auth.book.valid('alice').jwt).exp;
  sockets[0].deliver({ t: 'push', sids: [1], ev: 'token_expiring', body: { expires: exp } });
  await settle();
  assert.equal(asks.at(-1).reason, 'refresh');
  await clock.advance(500);
  assert.equal(hub.auth.stats.refreshFailures, 1);
  assert.equal(hub.auth.stats.tokenTimeouts, 1);
  assert.equal(a.events('auth_error').length, 0, 'a refresh that fails is not an error yet');
  assert.equal(cmds(sockets[0].frames(), 'refresh').length, 0);
  // the token expires: the hub asks again (not stuck on the first ask)
  clock.t = exp + 1;
  sockets[0].deliver({ t: 'push', sids: [1], ev: 'detached', body: { code: 401, error: ERR.tokenExpired, msg: 'expired' } });
  await settle();
  assert.equal(asks.at(-1).reason, 'expired');
  a.answer(asks.at(-1), 60_000);
  await settle();
  assert.equal(cmds(sockets[0].frames(), 'attach').length, 1, 'attached again with the new token');
});

test('direct mode: a getToken that never answers releases the user\'s lock: another tab\'s hub asks its own', async () => {
  const { BC, locks } = fakeBrowser();
  const h1 = setup({ mode: 'direct', share: new JwtShare({ BC, locks, waitMs: 20 }) });
  const h2 = setup({ mode: 'direct', share: new JwtShare({ BC, locks, waitMs: 20 }) });
  const t1 = h1.tab('T1', { user: 'alice' }, { give: false });
  t1.hello();
  await h1.open();
  await new Promise((r) => setTimeout(r, 50)); // the share's wait for answers is a real timer
  await settle();
  assert.equal(h1.asks.length, 1);
  const t2 = h2.tab('T2', { user: 'alice' });
  t2.hello();
  await h2.open();
  await new Promise((r) => setTimeout(r, 50));
  await settle();
  assert.equal(h2.asks.length, 0, 'waits for the lock the first hub holds');
  await h1.clock.advance(10_000);
  assert.equal(t1.events('auth_error')[0].error, CLIENT_ERR.noToken);
  await new Promise((r) => setTimeout(r, 50));
  await settle();
  assert.equal(h2.asks.length, 1, 'the lock went with the timeout');
  await settle();
  assert.equal(cmds(h2.sockets[0].frames(), 'attach').length, 1);
  // the first tab, asked to try again, uses the token the second got
  t1.send({ op: 'reauth' });
  await settle();
  assert.equal(h1.asks.length, 1);
  assert.equal(cmds(h1.sockets[0].frames(), 'attach').length, 1);
  h1.hub.stop(); h2.hub.stop();
});

// A new hub (a new leader tab, a restarted SharedWorker) starts with no
// tokens: the tabs' hellos carry the token each knows (state.jwt).
test('a new hub: a hello carrying a valid token of the tab\'s user attaches without asking; other tabs of the user too', async () => {
  const { clock, sockets, tab, asks, open, hub } = setup();
  const known = jwt('Alice', clock.now() + 60_000);
  const a1 = tab('A1', { user: 'alice', jwt: known, rooms: [{ room: 'lobby', epoch: 'e1', offset: 3 }] });
  const a2 = tab('A2', { user: 'alice' });
  a1.hello(); a2.hello();
  await open();
  await settle();
  assert.equal(asks.length, 0, 'no token_req: the hello\'s token is used');
  assert.ok(!a1.got.concat(a2.got).some((m) => m.op === 'token_req'));
  const attaches = cmds(sockets[0].frames(), 'attach');
  assert.deepEqual(attaches.map((f) => f.body.jwt), [known, known]);
  reply(sockets[0]);
  await settle();
  assert.equal(a1.events('attached')[0].user, 'Alice');
  assert.equal(a2.events('attached')[0].user, 'Alice');
  // each tab is told the token its session attached with (its own user's)
  assert.deepEqual(a1.got.filter((m) => m.op === 'jwt').map((m) => m.jwt), [known]);
  assert.deepEqual(a2.got.filter((m) => m.op === 'jwt').map((m) => m.jwt), [known]);
  // a newer token in a later hello replaces it; an older one does not
  const newer = jwt('alice', clock.now() + 120_000);
  tab('A3', { user: 'alice', jwt: newer }).hello();
  tab('A4', { user: 'alice', jwt: known }).hello();
  await settle();
  assert.equal(hub.auth.book.valid('alice').jwt, newer);
  assert.equal(asks.length, 0);
  // a refresh tells every tab of the user the new token
  clock.t += 59_000;
  sockets[0].deliver({ t: 'push', sids: [1, 2], ev: 'token_expiring', body: { expires: clock.now() + 1000 } });
  await settle();
  reply(sockets[0]);
  await settle();
  assert.equal(asks.length, 0, 'the newer token from a hello is used for the refresh');
  assert.equal(a1.got.filter((m) => m.op === 'jwt').at(-1).jwt, newer);
  assert.equal(a2.got.filter((m) => m.op === 'jwt').at(-1).jwt, newer);
});

test('a hello\'s token that is expired, of another user or not a JWT is ignored: getToken is asked as before', async () => {
  for (const [what, bad] of [
    ['expired', (now) => jwt('alice', now - 1000)],
    ['another user', (now) => jwt('bob', now + 60_000)],
    ['garbage', () => 'not.a.jwt'],
    ['not a string', () => 42],
  ]) {
    const { clock, sockets, tab, asks, open, hub } = setup();
    const logs = [];
    hub.log = (...a) => logs.push(a.join(' '));
    const a = tab('A', { user: 'alice', jwt: bad(clock.now()) });
    a.hello();
    await open();
    await settle();
    assert.deepEqual(asks.map((q) => [q.tab, q.user, q.reason]), [['A', 'alice', 'attach']], what);
    const f = cmds(sockets[0].frames(), 'attach');
    assert.equal(f.length, 1, what);
    assert.equal(decodeJwt(f[0].body.jwt).sub, 'alice', what);
    assert.equal(hub.auth.book.valid('bob'), null, `${what}: nothing kept for another user`);
    reply(sockets[0]);
    await settle();
    assert.equal(a.events('attached')[0].user, 'alice', what);
    assert.equal(a.events('auth_error').length, 0, `${what}: no error for the tab`);
    assert.equal(hub.errors.length, 0, what);
    if (what !== 'not a string') assert.ok(logs.some((l) => /hello token ignored/.test(l)), `${what}: logged`);
  }
});

test('a hello\'s token of a tab that does not say who it is: it is its token\'s user, nothing asked', async () => {
  const { clock, sockets, tab, asks, open, hub } = setup();
  const t = tab('T', { jwt: jwt('dave', clock.now() + 60_000) });
  t.hello();
  await open();
  assert.equal(asks.length, 0);
  assert.equal(decodeJwt(cmds(sockets[0].frames(), 'attach')[0].body.jwt).sub, 'dave');
  assert.equal(hub.sessions.get(1).login, 'dave');
});

test('direct mode: a hello\'s token is used without asking and shared with the other direct hubs', async () => {
  const { BC, locks } = fakeBrowser();
  const mk = () => setup({ mode: 'direct', share: new JwtShare({ BC, locks, waitMs: 50 }) });
  const h1 = mk();
  const h2 = mk();
  const known = jwt('alice', h1.clock.now() + 60_000);
  h1.tab('T1', { user: 'alice', jwt: known }).hello();
  await h1.open();
  await settle();
  assert.equal(h1.asks.length, 0);
  assert.equal(cmds(h1.sockets[0].frames(), 'attach')[0].body.jwt, known);
  h2.tab('T2', { user: 'alice' }).hello();
  await h2.open();
  await new Promise((r) => setTimeout(r, 30)); // the share's wait for answers is a real timer
  await settle();
  assert.equal(h2.asks.length, 0, 'the other hub got it over the share');
  assert.equal(cmds(h2.sockets[0].frames(), 'attach')[0].body.jwt, known);
  h1.hub.stop(); h2.hub.stop();
});
