// Unit tests of issue 16 in the hub and the connection: the grace after
// the last tab, the slow retry after the fast ladder and wake(), the outbox
// (kept in the backend, sent once per link with its cid, failed and retried),
// private conversations, joins asked offline.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Hub } from '../static/core/hub.js';
import { MemoryBackend } from '../static/core/cache.js';
import { DmStore } from '../static/core/dms.js';
import { ERR, transient } from '../static/core/errors.js';
import { checkRoom, validRoom } from '../static/core/names.js';
import { Clock, fakeWebSocket, settle } from './helpers.js';

const EPOCH = 'ep1';

function setup({ backend = new MemoryBackend(), config = {}, onIdle = null, random = () => 0.5 } = {}) {
  const clock = new Clock();
  const { FakeWS, sockets } = fakeWebSocket();
  const fetch = async () => ({ ok: true, json: async () => ({ addrs: ['ws://s1/ws'] }) });
  const hub = new Hub({
    mode: 'shared_worker', WebSocket: FakeWS, fetch, base: 'http://h/', cacheBackend: backend, onIdle,
    setTimer: clock.setTimer, clearTimer: clock.clearTimer, now: clock.now, random,
    config: { flushMs: 0, tabTimeoutMs: 1e9, tabTimeoutLockMs: 1e9, baseMs: 100, maxMs: 200, triesPerAddr: 1, refetches: 0, slowMs: 10000, ...config },
  });
  const tab = (id, st = {}) => {
    const t = { id, got: [] };
    t.ep = { post: (m) => t.got.push(m) };
    t.send = (m) => hub.handle(t.ep, { tab: id, ...m });
    t.events = (k) => t.got.filter((m) => m.op === 'events').flatMap((m) => m.list).filter((e) => !k || e.k === k);
    t.answers = () => t.got.filter((m) => m.op === 'a');
    t.hello = () => t.send({ op: 'hello', v: 1, state: st });
    return t;
  };
  return { clock, sockets, hub, tab, backend };
}

// serve answers attach, join and send the way the server would.
function serve(ws, { top = 0, sendCode = 200 } = {}) {
  const out = [];
  for (const f of ws.take()) {
    if (f.t !== 'cmd') continue;
    let r = null;
    if (f.cmd === 'attach') r = { code: 200, body: { sid: f.sid, user: f.body.name, color: '#111111', token: 'T' } };
    if (f.cmd === 'join') r = { code: 200, body: { room: f.body.room, epoch: EPOCH, top, members: 1, messages: [] } };
    if (f.cmd === 'send') r = sendCode === 200 ? { code: 200, body: { room: f.body.room, epoch: EPOCH, offset: ++top, ts: 5 } } : { code: sendCode, error: sendCode === 413 ? ERR.tooLarge : ERR.rateLimited, msg: 'no' };
    if (f.cmd === 'dm') r = { code: 200, body: { id: 7, ts: 9, sessions: 1 } };
    if (r) out.push({ t: 'reply', sid: f.sid, seq: f.seq, ...r });
  }
  if (out.length) ws.deliver(...out);
  return out;
}

async function online(s, t) {
  t.hello();
  await s.clock.advance(0);
  s.sockets.at(-1).hello();
  await settle();
  serve(s.sockets.at(-1));
  await settle();
  t.send({ op: 'cmd', id: 'j', cmd: 'join', body: { room: 'lobby' } });
  await settle();
  serve(s.sockets.at(-1));
  await settle();
}

test('the socket closes graceMs after the last tab; a tab within the grace keeps it', async () => {
  let idle = 0;
  const s = setup({ config: { graceMs: 3000 }, onIdle: () => idle++ });
  const a = s.tab('A', { name: 'alice' });
  await online(s, a);
  a.send({ op: 'detach' });
  await s.clock.advance(2000);
  const b = s.tab('B', { name: 'alice' });
  b.hello(); // a reload, within the grace
  await s.clock.advance(5000);
  assert.equal(s.sockets[0].closed, null, 'the socket stays');
  assert.equal(idle, 0);
  b.send({ op: 'detach' });
  await s.clock.advance(2999);
  assert.equal(s.sockets[0].closed, null);
  await s.clock.advance(1);
  assert.deepEqual(s.sockets[0].closed, { code: 1000, reason: 'bye' }, 'closed after the grace');
  assert.equal(idle, 1);
  assert.equal(s.hub.conn.state, 'closed');
});

test('after the fast ladder: offline, then a slow jittered retry for ever; wake tries at once', async () => {
  const rnd = [0, 1, 0.5];
  let i = 0;
  const s = setup({ random: () => rnd[i++ % rnd.length] });
  const a = s.tab('A', { name: 'alice' });
  await online(s, a);
  s.sockets[0].drop(1006);
  await s.clock.advance(0);
  let st = a.events('status').at(-1);
  assert.equal(st.state, 'offline', 'one try per address, no refetch: the fast ladder is over at once');
  assert.equal(st.slow, true);
  assert.ok(st.delayMs >= 5000 && st.delayMs <= 15000, `jittered around slowMs: ${st.delayMs}`);
  const n = s.sockets.length;
  await s.clock.advance(st.delayMs);
  assert.equal(s.sockets.length, n + 1, 'retried by itself');
  s.sockets.at(-1).drop(1006);
  await s.clock.advance(0);
  st = a.events('status').at(-1);
  assert.equal(st.state, 'offline', 'a failed slow attempt waits again, without the fast ladder');
  await s.clock.advance(st.delayMs);
  assert.equal(s.sockets.length, n + 2, 'and again');
  s.sockets.at(-1).drop(1006);
  await s.clock.advance(0);
  a.send({ op: 'wake', why: 'focus' });
  await s.clock.advance(0);
  assert.equal(s.sockets.length, n + 3, 'a wake tries at once');
  assert.equal(s.hub.conn.stats.wakes, 1);
  s.sockets.at(-1).hello();
  await settle();
  serve(s.sockets.at(-1));
  await settle();
  assert.equal(a.events('status').at(-1).state, 'open', JSON.stringify(a.events('status').slice(-4)));
  a.send({ op: 'wake' });
  assert.equal(s.hub.conn.stats.wakes, 1, 'no wake while open');
});

test('a kicked connection does not retry slowly, nor on wake', async () => {
  const s = setup();
  const a = s.tab('A', { name: 'alice' });
  await online(s, a);
  s.sockets[0].deliver({ t: 'goaway', body: { reason: 'too_many_connections', retry_ms: 1000 } });
  s.sockets[0].drop(4003);
  await s.clock.advance(60000);
  a.send({ op: 'wake' });
  await s.clock.advance(0);
  assert.equal(s.sockets.length, 1);
  assert.equal(a.events('status').at(-1).kicked, true);
});

test('the outbox: a send typed offline is stored, survives a new hub, and is sent once per link with its cid', async () => {
  const backend = new MemoryBackend();
  const s = setup({ backend });
  const a = s.tab('A', { name: 'alice' });
  await online(s, a);
  s.sockets[0].drop(1006);
  await s.clock.advance(0);
  a.send({ op: 'cmd', id: 's1', cmd: 'send', body: { room: 'lobby', text: 'hi', cid: 'c1' } });
  await settle();
  const ob = a.events('outbox');
  assert.equal(ob.at(-1).state, 'sending');
  assert.equal(ob.at(-1).cid, 'c1');
  assert.equal((await backend.getAll('outbox')).length, 1, 'kept in the backend');
  // the worker ends; a new hub on the same storage sends it
  s.hub.stop();
  const s2 = setup({ backend });
  const b = s2.tab('B', { name: 'alice' });
  await settle();
  b.hello();
  await s2.clock.advance(0);
  assert.equal(b.events('outbox').at(-1).text, 'hi', 'the new tab sees what waits');
  s2.sockets[0].hello();
  await settle();
  serve(s2.sockets[0]);
  await settle();
  b.send({ op: 'cmd', id: 'j', cmd: 'join', body: { room: 'lobby' } });
  await settle();
  serve(s2.sockets[0], { top: 3 });
  await settle();
  const sends = s2.sockets[0].frames().filter((f) => f.cmd === 'send');
  assert.deepEqual(sends.map((f) => f.body), [{ room: 'lobby', text: 'hi', cid: 'c1' }], 'sent once, after the join');
  // the link drops before the reply: sent again on the next link, same cid
  s2.sockets[0].drop(1006);
  await s2.clock.advance(0);
  b.send({ op: 'wake' });
  await s2.clock.advance(0);
  s2.sockets[1].hello();
  await settle();
  serve(s2.sockets[1], { top: 3 }); // attach + resume join
  await settle();
  const again = s2.sockets[1].take().filter((f) => f.cmd === 'send');
  assert.deepEqual(again.map((f) => f.body.cid), ['c1']);
  s2.sockets[1].deliver({ t: 'reply', sid: again[0].sid, seq: again[0].seq, code: 200, body: { room: 'lobby', epoch: EPOCH, offset: 4, ts: 5, dup: true } });
  await settle();
  assert.equal(b.events('outbox').at(-1).state, 'sent');
  assert.equal(b.events('outbox').at(-1).offset, 4);
  assert.equal((await backend.getAll('outbox')).length, 0, 'gone from the backend once published');
});

test('the outbox: refused for good is failed (kept, retry or discard); refused for now is tried again', async () => {
  const s = setup({ config: { outboxRetryMs: 1000 } });
  const a = s.tab('A', { name: 'alice' });
  await online(s, a);
  a.send({ op: 'cmd', id: 's1', cmd: 'send', body: { room: 'lobby', text: 'x', cid: 'c1' } });
  await settle();
  serve(s.sockets[0], { sendCode: 429 });
  await settle();
  assert.equal(a.events('outbox').at(-1).state, 'sending', 'rate limited: still sending');
  assert.equal(a.events('outbox').at(-1).error, ERR.rateLimited);
  await s.clock.advance(1000);
  serve(s.sockets[0], { sendCode: 413 });
  await settle();
  assert.equal(a.events('outbox').at(-1).state, 'failed');
  assert.equal(a.events('reply').find((r) => r.id === 's1').error, ERR.tooLarge, 'the tab that sent it hears why');
  a.send({ op: 'q', id: 'q1', q: 'outbox_retry', args: { cid: 'c1' } });
  await settle();
  assert.equal(a.events('outbox').at(-1).state, 'sending');
  serve(s.sockets[0]);
  await settle();
  assert.equal(a.events('outbox').at(-1).state, 'sent');
  assert.ok(transient(ERR.unavailable) && !transient(ERR.notMember));
});

test('a join asked offline is deferred to the resume, and answered at once', async () => {
  const s = setup();
  const a = s.tab('A', { name: 'alice' });
  a.hello();
  await s.clock.advance(0);
  a.send({ op: 'cmd', id: 'j', cmd: 'join', body: { room: 'lobby' } });
  await settle();
  const r = a.events('reply').find((e) => e.id === 'j');
  assert.equal(r.code, 200);
  assert.equal(r.body.deferred, true);
  s.sockets[0].hello();
  await settle();
  const fr = s.sockets[0].take();
  assert.deepEqual(fr.map((f) => f.cmd), ['attach', 'join'], 'joined with the attach');
});

test('DMs: a conversation per peer, unread counted, read, own messages read; in the backend', async () => {
  const backend = new MemoryBackend();
  const s = setup({ backend });
  const a = s.tab('A', { name: 'alice' });
  await online(s, a);
  s.sockets[0].deliver({ t: 'push', sids: [1], ev: 'dm', body: { id: 1, from: 'Bob', to: 'alice', color: '#222222', text: 'psst', ts: 1 } });
  await settle();
  await settle();
  assert.equal(a.events('dm').at(-1).peer, 'Bob');
  let conv = a.events('dm_conv').at(-1).list;
  assert.deepEqual(conv.map((c) => [c.peer, c.unread, c.count]), [['Bob', 1, 1]]);
  a.send({ op: 'cmd', id: 'd', cmd: 'dm', body: { to: 'bob', text: 'hi', cid: 'x' } });
  await settle();
  serve(s.sockets[0]);
  await settle();
  await settle();
  conv = a.events('dm_conv').at(-1).list;
  assert.deepEqual(conv.map((c) => [c.peer, c.unread, c.count]), [['Bob', 0, 2]], 'one conversation whatever the case; writing reads it');
  s.sockets[0].deliver({ t: 'push', sids: [1], ev: 'dm', body: { id: 8, from: 'Bob', to: 'alice', text: 'again', ts: 10 } });
  s.sockets[0].deliver({ t: 'push', sids: [1], ev: 'dm', body: { id: 8, from: 'Bob', to: 'alice', text: 'again', ts: 10 } });
  await settle();
  await settle();
  assert.deepEqual(a.events('dm_conv').at(-1).list.map((c) => [c.unread, c.count]), [[1, 3]], 'the same DM twice is stored once');
  a.send({ op: 'q', id: 'q', q: 'dm_read', args: { peer: 'bob' } });
  await settle();
  await settle();
  assert.equal(a.events('dm_conv').at(-1).list[0].unread, 0);
  // a new store on the same backend has it all
  await s.hub.dms.writes;
  const again = new DmStore(backend);
  const list = await again.list('alice');
  assert.deepEqual(list.map((c) => [c.peer, c.unread, c.count, c.top]), [['Bob', 0, 3, 0]], 'no offsets: a server without DM history');
  assert.deepEqual((await again.messages('alice', 'BOB')).map((m) => m.text), ['psst', 'hi', 'again']);
});

test('room names as the server checks them', () => {
  for (const r of ['lobby', 'Jay', 'кухня', 'a.b-c_d', '部屋1']) assert.equal(checkRoom(r), '', r);
  for (const r of ['', 'a b', 'x'.repeat(65), '<b>', 'a/b']) assert.equal(validRoom(r), false, r);
});
