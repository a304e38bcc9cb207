// Display names (--auth jwt: a token's name claim) through the browser
// side: the wire's optional `display` of room messages, DMs, presence and
// who, and the attach reply's `name`, reach the tab whatever way they come
// (live, the room cache, the DM store, a new hub on the same storage),
// and nothing keys on them: the user name stays the identity.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Hub } from '../static/core/hub.js';
import { MemoryBackend } from '../static/core/cache.js';
import { DmStore } from '../static/core/dms.js';
import { Client } from '../static/client.js';
import { decodeJwt } from '../static/core/auth.js';
import { Clock, fakeWebSocket, settle } from './helpers.js';

const b64url = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
const jwt = (sub, expMs, extra = {}) => `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ sub, exp: Math.floor(expMs / 1000), ...extra })}.c2ln`;
const NAMES = { alice: 'Alice Smith', bob: 'Bob B' };
const msg = (offset, from, text) => ({ room: 'lobby', offset, epoch: 'E1', from, color: '#123456', ...(NAMES[from] ? { display: NAMES[from] } : {}), text, ts: offset });

// setup: a hub on a fake socket of a server with --auth jwt, on backend;
// its tabs answer token requests at once.
function setup(backend = new MemoryBackend()) {
  const clock = new Clock();
  const { FakeWS, sockets } = fakeWebSocket();
  const fetch = async () => ({ ok: true, json: async () => ({ addrs: ['ws://s1/ws'] }) });
  const hub = new Hub({
    mode: 'shared_worker', WebSocket: FakeWS, fetch, base: 'http://h/', cacheBackend: backend,
    setTimer: clock.setTimer, clearTimer: clock.clearTimer, now: clock.now, random: () => 0.5,
    config: { flushMs: 0, tabTimeoutMs: 1e9, tabTimeoutLockMs: 1e9 },
  });
  const tab = (id, user) => {
    const t = { id, got: [] };
    t.ep = {
      post: (m) => {
        t.got.push(m);
        if (m.op === 'token_req') queueMicrotask(() => hub.handle(t.ep, { op: 'token', tab: id, id: m.id, jwt: jwt(user, clock.now() + 3_600_000) }));
      },
    };
    t.send = (m) => hub.handle(t.ep, { tab: id, ...m });
    t.events = (k) => t.got.filter((m) => m.op === 'events').flatMap((m) => m.list).filter((e) => !k || e.k === k);
    t.hello = (rooms = []) => t.send({ op: 'hello', v: 1, state: { user, getToken: true, rooms } });
    t.answer = (id) => t.got.find((m) => m.op === 'a' && m.id === id);
    return t;
  };
  return { clock, sockets, hub, tab };
}

// server answers what a server with display names would.
function server(ws, room = []) {
  const out = [];
  for (const f of ws.take()) {
    if (f.t !== 'cmd') continue;
    let body = {};
    if (f.cmd === 'attach') {
      const d = decodeJwt(f.body.jwt);
      body = { sid: f.sid, user: d.sub, color: '#111111', expires: d.exp, ...(NAMES[d.sub] ? { name: NAMES[d.sub] } : {}) };
    }
    if (f.cmd === 'join') body = { room: f.body.room, epoch: 'E1', top: room.length, members: 2, messages: room.filter((m) => m.offset > (f.body.offset || 0)) };
    if (f.cmd === 'who') body = { room: f.body.room, users: [{ name: 'alice', color: '#111111', display: 'Alice Smith' }, { name: 'carol', color: '#222222' }], anonymous: 0 };
    if (f.cmd === 'dm') body = { id: 9, ts: 500, sessions: 1, epoch: 'D1', offset: 2 };
    out.push({ t: 'reply', sid: f.sid, seq: f.seq, code: 200, body });
  }
  if (out.length) ws.deliver(...out);
}

test('hub: display names of attach, messages (live and cached), presence, who and DMs reach the tabs', async () => {
  const backend = new MemoryBackend();
  const { clock, sockets, tab } = setup(backend);
  const a = tab('A', 'alice');
  a.hello([{ room: 'lobby' }]);
  await clock.advance(0);
  const ws = sockets[0];
  ws.hello({ auth: 'jwt' });
  await settle();
  const room = [msg(1, 'bob', 'hi'), msg(2, 'carol', 'no display name')];
  server(ws, room);
  await settle();
  assert.equal(a.events('attached')[0].display, 'Alice Smith', 'the attach reply\'s name');
  assert.deepEqual(a.events('history').flatMap((h) => h.messages).map((m) => [m.from, m.display]), [['bob', 'Bob B'], ['carol', undefined]]);
  // live
  ws.deliver({ t: 'push', sids: [1], ev: 'msg', body: msg(3, 'bob', 'live') });
  ws.deliver({ t: 'push', sids: [1], ev: 'join', body: { room: 'lobby', user: 'bob', color: '#333333', display: 'Bob B' } });
  await settle();
  assert.equal(a.events('msg')[0].display, 'Bob B');
  assert.deepEqual(a.events('presence').map((p) => [p.kind, p.user, p.display]), [['join', 'bob', 'Bob B']]);
  // who: the reply as the server gave it
  a.send({ op: 'cmd', id: 5, cmd: 'who', body: { room: 'lobby' } });
  await settle();
  server(ws);
  await settle();
  assert.deepEqual(a.events('reply').find((e) => e.id === 5).body.users.map((u) => [u.name, u.display]), [['alice', 'Alice Smith'], ['carol', undefined]]);
  // a DM from bob, and one alice sends (its display is hers)
  ws.deliver({ t: 'push', sids: [1], ev: 'dm', body: { id: 8, from: 'bob', to: 'alice', color: '#333333', display: 'Bob B', text: 'psst', ts: 400, epoch: 'D1', offset: 1 } });
  await settle(60);
  a.send({ op: 'cmd', id: 6, cmd: 'dm', body: { to: 'bob', text: 'yes?', cid: 'c1' } });
  await settle();
  server(ws);
  await settle(60);
  assert.deepEqual(a.events('dm').map((d) => [d.from, d.display, d.peer]), [['bob', 'Bob B', 'bob'], ['alice', 'Alice Smith', 'bob']]);
  const conv = a.events('dm_conv').at(-1).list;
  assert.deepEqual(conv.map((c) => [c.peer, c.display]), [['bob', 'Bob B']], 'the conversation shows the peer\'s display name');
  a.send({ op: 'q', id: 'q1', q: 'dm_messages', args: { peer: 'bob' } });
  await settle(60);
  assert.deepEqual(a.answer('q1').result.map((d) => [d.from, d.display]), [['bob', 'Bob B'], ['alice', 'Alice Smith']]);

  // a new hub on the same storage (a new SharedWorker, a reload in direct
  // mode): the room's cache and the DM store still have the display names
  await clock.advance(100);
  const h2 = setup(backend);
  const b = h2.tab('B', 'alice');
  b.hello();
  await h2.clock.advance(0);
  b.send({ op: 'cmd', id: 1, cmd: 'join', body: { room: 'lobby' } });
  await settle(60);
  const cached = b.events('history').find((h) => h.source === 'cache');
  assert.ok(cached, 'the cache shown offline');
  assert.deepEqual(cached.messages.map((m) => [m.offset, m.display]), [[1, 'Bob B'], [2, undefined], [3, 'Bob B']]);
  // (the store is the user's: once attached)
  h2.sockets[0].hello({ auth: 'jwt' });
  await settle();
  server(h2.sockets[0], room);
  await settle(60);
  b.send({ op: 'q', id: 'q2', q: 'dm_list' });
  b.send({ op: 'q', id: 'q3', q: 'dm_messages', args: { peer: 'bob' } });
  await settle(60);
  assert.deepEqual(b.answer('q2').result.map((c) => [c.peer, c.display]), [['bob', 'Bob B']]);
  assert.deepEqual(b.answer('q3').result.map((d) => d.display), ['Bob B', 'Alice Smith']);
});

test('DmStore: the conversation\'s display name is the peer\'s newest; history entries keep theirs', async () => {
  const st = new DmStore(null);
  const d = (offset, from, to, display) => ({ id: offset, from, to, text: `t${offset}`, ts: 100 + offset, color: '#222222', epoch: 'E', offset, ...(display ? { display } : {}) });
  await st.merge('alice', 'bob', { epoch: 'E', top: 3, messages: [d(1, 'bob', 'alice', 'Bobby'), d(2, 'alice', 'bob', 'Alice Smith'), d(3, 'bob', 'alice', 'Bob B')] });
  assert.deepEqual((await st.list('alice')).map((c) => [c.peer, c.display]), [['bob', 'Bob B']], 'the peer\'s, not mine');
  assert.deepEqual((await st.messages('alice', 'bob')).map((m) => m.display), ['Bobby', 'Alice Smith', 'Bob B']);
  // an older message learnt later does not win over the newest
  await st.add('alice', d(0, 'bob', 'alice', 'Old Bob'));
  assert.equal((await st.list('alice'))[0].display, 'Bob B');
  // the peer's newest has none (a token without a name): none shown
  await st.add('alice', d(4, 'bob', 'alice'));
  assert.equal((await st.list('alice'))[0].display, '');
  assert.equal((await st.messages('alice', 'bob')).at(-1).display, undefined);
});

test('client: the session and the events carry display; the user name stays the name', () => {
  const c = new Client({ tokens: { get: () => '', set: () => {} } });
  const seen = [];
  c.on('session', (s) => seen.push(['session', s.user, s.display]));
  c.on('message', (m) => seen.push(['message', m.from, m.display]));
  c.on('presence', (p) => seen.push(['presence', p.user, p.display]));
  c.onEvent({ k: 'attached', sid: 1, user: 'alice', color: '#111111', expires: 5, display: 'Alice Smith', resumed: false });
  assert.equal(c.session.display, 'Alice Smith');
  assert.equal(c.name, 'alice');
  c.joined.add('lobby');
  c.onEvent({ k: 'msg', ...msg(1, 'bob', 'hi') });
  c.onEvent({ k: 'presence', kind: 'join', room: 'lobby', user: 'bob', color: '#333333', display: 'Bob B' });
  assert.deepEqual(seen, [['session', 'alice', 'Alice Smith'], ['message', 'bob', 'Bob B'], ['presence', 'bob', 'Bob B']]);
  c.onEvent({ k: 'attached', sid: 1, user: 'carol', color: '#111111', resumed: true });
  assert.equal(c.session.display, undefined, 'none when the token has no name');
});
