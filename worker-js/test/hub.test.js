import test from 'node:test';
import assert from 'node:assert/strict';
import { Hub } from '../static/core/hub.js';
import { MemoryBackend } from '../static/core/cache.js';
import { Clock, fakeWebSocket, settle } from './helpers.js';

const EPOCH = 'ep1';
const mk = (room, offset, text = `m${offset}`, epoch = EPOCH) => ({ room, offset, epoch, from: 'alice', color: '#123456', text, ts: offset });

function setup({ backend = new MemoryBackend(), config = {}, addrs = ['ws://s1/ws', 'ws://s2/ws'] } = {}) {
  const clock = new Clock();
  const { FakeWS, sockets } = fakeWebSocket();
  let lbsCalls = 0;
  const fetch = async () => { lbsCalls++; return { ok: true, json: async () => ({ addrs }) }; };
  const hub = new Hub({
    mode: 'shared_worker', WebSocket: FakeWS, fetch, base: 'http://h/', cacheBackend: backend,
    setTimer: clock.setTimer, clearTimer: clock.clearTimer, now: clock.now, random: () => 0.5,
    config: { flushMs: 50, baseMs: 100, maxMs: 1000, pongTimeoutMs: 5000, ...config },
  });
  const tabs = {};
  const tab = (id, state = {}) => {
    const t = { id, got: [], batches: 0, ep: null };
    t.ep = { post: (m) => { t.got.push(m); if (m.op === 'events') t.batches++; } };
    t.send = (m) => hub.handle(t.ep, { tab: id, ...m });
    t.events = (k) => t.got.filter((m) => m.op === 'events').flatMap((m) => m.list).filter((e) => !k || e.k === k);
    t.hello = () => t.send({ op: 'hello', v: 1, state });
    tabs[id] = t;
    return t;
  };
  return { clock, sockets, hub, tab, tabs, lbs: () => lbsCalls };
}

// serve answers the attach and join commands the way the server would.
function answer(ws, fn) {
  const out = [];
  for (const f of ws.take()) {
    if (f.t !== 'cmd') continue;
    const r = fn(f);
    if (r) out.push({ t: 'reply', sid: f.sid, seq: f.seq, code: 200, ...r });
  }
  if (out.length) ws.deliver(...out);
  return out;
}

test('one socket, a session per tab, pushes fanned out once per tab, buffered', async () => {
  const { clock, sockets, hub, tab, lbs } = setup();
  const a = tab('A', { name: 'alice' });
  const b = tab('B', { name: 'bob' });
  a.hello(); b.hello();
  await clock.advance(0);
  assert.equal(lbs(), 1, '/lbs fetched once');
  assert.equal(sockets.length, 1, 'one socket');
  assert.equal(sockets[0].url, 'ws://s1/ws');
  sockets[0].hello();
  await settle();
  assert.equal(sockets[0].sent.length, 1, 'both attaches merged into one WebSocket message');
  const attaches = sockets[0].frames().filter((f) => f.cmd === 'attach');
  assert.deepEqual(attaches.map((f) => [f.sid, f.body.name, f.body.mode]), [[1, 'alice', 'shared_worker'], [2, 'bob', 'shared_worker']]);
  answer(sockets[0], (f) => ({ body: { sid: f.sid, user: f.body.name, color: '#111111', token: `tok-${f.body.name}` } }));
  await settle();
  assert.equal(a.events('attached')[0].user, 'alice');
  // both join lobby
  a.send({ op: 'cmd', id: 1, cmd: 'join', body: { room: 'lobby' } });
  b.send({ op: 'cmd', id: 1, cmd: 'join', body: { room: 'lobby' } });
  await settle();
  const joins = sockets[0].frames().filter((f) => f.cmd === 'join');
  assert.deepEqual(joins.map((f) => f.body), [{ room: 'lobby', history: 50 }, { room: 'lobby', history: 50 }]);
  answer(sockets[0], (f) => ({ body: { room: 'lobby', epoch: EPOCH, top: 2, members: f.sid, messages: [mk('lobby', 1), mk('lobby', 2)] } }));
  await settle();
  const rep = a.events('reply').find((e) => e.id === 1);
  assert.equal(rep.code, 200);
  assert.equal(rep.body.fetched, 2);
  assert.equal(rep.body.messages, undefined, 'messages come as history events, not in the reply');
  assert.deepEqual(a.events('history')[0].messages.map((m) => m.offset), [1, 2]);
  // a burst of pushes for both sessions: one push frame each, delivered in one batch per tab
  const before = a.batches;
  for (let o = 3; o <= 7; o++) sockets[0].deliver({ t: 'push', sids: [1, 2], ev: 'msg', body: mk('lobby', o) });
  sockets[0].deliver({ t: 'push', sids: [1, 2], ev: 'msg', body: mk('lobby', 5) }); // duplicate
  await settle();
  assert.equal(a.batches, before, 'nothing posted before the flush timer');
  await clock.advance(50);
  assert.equal(a.batches, before + 1, 'one batch for the burst');
  assert.deepEqual(a.events('msg').map((m) => m.offset), [3, 4, 5, 6, 7]);
  assert.deepEqual(b.events('msg').map((m) => m.offset), [3, 4, 5, 6, 7]);
  assert.equal(hub.stats.dups, 2);
  // a private message only to its sessions
  sockets[0].deliver({ t: 'push', sids: [2], ev: 'dm', body: { id: 1, from: 'alice', to: 'bob', text: 'psst' } });
  await clock.advance(50);
  assert.equal(a.events('dm').length, 0);
  assert.equal(b.events('dm')[0].text, 'psst');
});

test('reconnect re-attaches every tab with name, token and offsets, and resends sends once', async () => {
  const { clock, sockets, hub, tab } = setup();
  const a = tab('A', { name: 'alice' });
  a.hello();
  await clock.advance(0);
  sockets[0].hello();
  await settle();
  answer(sockets[0], () => ({ body: { sid: 1, user: 'alice', color: '#111111', token: 'T1' } }));
  a.send({ op: 'cmd', id: 1, cmd: 'join', body: { room: 'lobby' } });
  await settle();
  answer(sockets[0], () => ({ body: { room: 'lobby', epoch: EPOCH, top: 3, members: 1, messages: [mk('lobby', 1), mk('lobby', 2), mk('lobby', 3)] } }));
  sockets[0].deliver({ t: 'push', sids: [1], ev: 'msg', body: mk('lobby', 4) });
  a.send({ op: 'cmd', id: 2, cmd: 'send', body: { room: 'lobby', text: 'hello', cid: 'c-1' } });
  await settle();
  const sent = sockets[0].take().find((f) => f.cmd === 'send');
  assert.equal(sent.body.cid, 'c-1');
  // the link dies before the reply
  sockets[0].drop(1006);
  await settle();
  assert.equal(a.events('status').at(-1).state, 'waiting');
  assert.equal(a.events('status').at(-1).action, 'retry');
  await clock.advance(100);
  assert.equal(sockets.length, 2, 'reconnected after the backoff');
  assert.equal(sockets[1].url, 'ws://s1/ws', 'same address first');
  sockets[1].hello();
  await settle();
  assert.equal(sockets[1].sent.length, 1, 'the attach and the resuming join travel in one WebSocket message');
  const fr = sockets[1].take();
  assert.deepEqual(fr.map((f) => [f.sid, f.cmd]), [[1, 'attach'], [1, 'join']], 'the join right behind the attach; the send waits for the attach');
  assert.ok(fr[1].seq > fr[0].seq);
  assert.deepEqual(fr[0].body, { mode: 'shared_worker', name: 'alice', token: 'T1' }, 'attach: name and token, no rooms');
  assert.deepEqual(fr[1].body, { room: 'lobby', history: 50, epoch: EPOCH, offset: 4 }, 'resumed from the last offset seen');
  sockets[1].deliver(
    { t: 'reply', sid: 1, seq: fr[0].seq, code: 200, body: { sid: 1, user: 'alice', color: '#111111', token: 'T1' } },
    { t: 'reply', sid: 1, seq: fr[1].seq, code: 200, body: { room: 'lobby', epoch: EPOCH, top: 6, members: 1, messages: [mk('lobby', 4), mk('lobby', 5), mk('lobby', 6)] } },
  );
  await settle();
  const resend = sockets[1].take();
  assert.deepEqual(resend.map((f) => [f.cmd, f.body.cid]), [['send', 'c-1']], 'the send is retried with its cid');
  await clock.advance(50);
  assert.deepEqual(a.events('history').at(-1).messages.map((m) => m.offset), [5, 6], 'the missed messages, shown once');
  assert.equal(a.events('history').at(-1).source, 'resume');
  assert.equal(hub.stats.resumed, 3);
  const offsets = a.events().filter((e) => e.k === 'msg' || e.k === 'history').flatMap((e) => (e.k === 'msg' ? [e.offset] : e.messages.map((m) => m.offset)));
  assert.deepEqual(offsets, [1, 2, 3, 4, 5, 6], 'every offset once, in order');
  assert.equal(hub.stats.reconnects, 1);
  assert.equal(a.events('attached').at(-1).resumed, true);
});

test('the server\'s go-away hint sets the wait', async () => {
  const { clock, sockets, tab } = setup();
  tab('A').hello();
  await clock.advance(0);
  sockets[0].hello();
  await settle();
  sockets[0].deliver({ t: 'goaway', body: { reason: 'shutdown', retry_ms: 3210 } });
  sockets[0].drop(1001);
  await clock.advance(3209);
  assert.equal(sockets.length, 1, 'waits the hinted time');
  await clock.advance(1);
  assert.equal(sockets.length, 2);
});

test('a kick (goaway too_many_connections, close 4003) is not reconnected', async () => {
  for (const withGoaway of [true, false]) {
    const { clock, sockets, tab, hub } = setup();
    const a = tab('A');
    a.hello();
    await clock.advance(0);
    sockets[0].hello();
    await settle();
    if (withGoaway) sockets[0].deliver({ t: 'goaway', body: { reason: 'too_many_connections', retry_ms: 1500 } });
    sockets[0].drop(4003);
    await clock.advance(60000);
    assert.equal(sockets.length, 1, 'no reconnect after a kick');
    assert.equal(hub.conn.state, 'offline');
    const st = a.events('status').at(-1);
    assert.equal(st.state, 'offline', 'tabs are told');
    assert.equal(st.kicked, true);
    a.send({ op: 'retry' });
    await settle();
    assert.equal(sockets.length, 2, 'the user\'s retry reconnects');
  }
});

test('a missing pong kills the link; the ladder switches address, refetches /lbs, gives up', async () => {
  const { clock, sockets, tab, hub, lbs } = setup({ config: { triesPerAddr: 2, refetches: 1, pingMs: 1000, pongTimeoutMs: 500 } });
  const a = tab('A');
  a.hello();
  await clock.advance(0);
  sockets[0].hello();
  await settle();
  await clock.advance(1000);
  assert.ok(sockets[0].frames().some((f) => f.t === 'ping'), 'pings at the configured interval');
  await clock.advance(500);
  assert.ok(sockets[0].closed, 'no pong: closed');
  // now every attempt fails
  const urls = [];
  for (let i = 0; i < 20 && hub.conn.state !== 'offline'; i++) {
    await clock.advance(2000);
    const ws = sockets.at(-1);
    if (!ws.closed) { urls.push(ws.url); ws.drop(1006); }
  }
  assert.deepEqual(urls, ['ws://s1/ws', 'ws://s2/ws', 'ws://s2/ws', 'ws://s1/ws', 'ws://s1/ws', 'ws://s2/ws', 'ws://s2/ws']);
  assert.equal(lbs(), 2, '/lbs fetched again once');
  assert.equal(a.events('status').at(-1).state, 'offline', 'tabs are told');
  a.send({ op: 'retry' });
  await settle();
  assert.equal(sockets.at(-1).closed, null, 'retry reconnects at once');
});

test('joining a room shows the cache at once and asks only for what came after', async () => {
  const backend = new MemoryBackend();
  {
    const { clock, sockets, tab, hub } = setup({ backend });
    const a = tab('A');
    a.hello();
    await clock.advance(0);
    sockets[0].hello();
    await settle();
    answer(sockets[0], () => ({ body: { sid: 1 } }));
    a.send({ op: 'cmd', id: 1, cmd: 'join', body: { room: 'r' } });
    await settle();
    answer(sockets[0], () => ({ body: { room: 'r', epoch: EPOCH, top: 10, members: 1, messages: Array.from({ length: 10 }, (_, i) => mk('r', i + 1)) } }));
    await hub.cache.idle();
    hub.stop();
  }
  const { clock, sockets, tab, hub } = setup({ backend });
  const a = tab('A');
  a.hello();
  await clock.advance(0);
  sockets[0].hello();
  await settle();
  answer(sockets[0], () => ({ body: { sid: 1 } }));
  a.send({ op: 'cmd', id: 1, cmd: 'join', body: { room: 'r' } });
  await settle(50);
  const h = a.events('history');
  assert.equal(h[0].source, 'cache');
  assert.equal(h[0].messages.length, 10, 'shown before the server answers');
  const join = sockets[0].take().find((f) => f.cmd === 'join');
  assert.deepEqual(join.body, { room: 'r', history: 50, epoch: EPOCH, offset: 10 });
  answer({ take: () => [join], deliver: (...f) => sockets[0].deliver(...f) }, () => ({ body: { room: 'r', epoch: EPOCH, top: 11, members: 1, messages: [mk('r', 11)] } }));
  await settle();
  const rep = a.events('reply')[0];
  assert.deepEqual([rep.body.cached, rep.body.fetched], [10, 1]);
  assert.equal(hub.stats.lastJoinFetched, 1);
  // epoch changed on the server: the cache for that room is replaced
  a.send({ op: 'cmd', id: 2, cmd: 'leave', body: { room: 'r' } });
  await settle();
  answer(sockets[0], () => ({ body: {} }));
  const b = tab('B');
  b.hello();
  await settle();
  answer(sockets[0], () => ({ body: { sid: 2 } }));
  b.send({ op: 'cmd', id: 1, cmd: 'join', body: { room: 'r' } });
  await settle(50);
  answer(sockets[0], () => ({ body: { room: 'r', epoch: 'ep2', top: 2, members: 1, reset: true, messages: [mk('r', 1, 'x', 'ep2'), mk('r', 2, 'y', 'ep2')] } }));
  await hub.cache.idle();
  const c = await hub.cache.load('r');
  assert.equal(c.epoch, 'ep2');
  assert.deepEqual(c.messages.map((m) => m.text), ['x', 'y']);
  const last = b.events('history').at(-1);
  assert.equal(last.reset, true);
});

test('a tab that detaches or goes silent loses its session', async () => {
  const { clock, sockets, tab, hub } = setup({ config: { tabPingMs: 1000, tabTimeoutMs: 3000 } });
  const a = tab('A');
  const b = tab('B');
  a.hello(); b.hello();
  await clock.advance(0);
  sockets[0].hello();
  await settle();
  answer(sockets[0], (f) => ({ body: { sid: f.sid } }));
  a.send({ op: 'detach' });
  await settle();
  assert.deepEqual(sockets[0].take().map((f) => [f.sid, f.cmd]), [[1, 'detach']]);
  assert.equal(hub.tabs.size, 1);
  // B pings for a while, then stops
  for (let i = 0; i < 3; i++) { await clock.advance(1000); b.send({ op: 'ping' }); }
  assert.equal(hub.tabs.size, 1);
  assert.equal(b.got.filter((m) => m.op === 'pong').at(-1).known, true);
  await clock.advance(4000);
  assert.equal(hub.tabs.size, 0, 'silent tab dropped');
  assert.deepEqual(sockets[0].take().map((f) => [f.sid, f.cmd]), [[2, 'detach']]);
  b.send({ op: 'ping' });
  assert.equal(b.got.at(-1).known, false, 'the tab learns it must say hello again');
});

test('a tab watched by a Web Lock is dropped when the lock is granted', async () => {
  const { clock, sockets, hub } = setup();
  let grant;
  hub.locks = { request: (name, fn) => new Promise((res) => { grant = () => res(fn()); }) };
  const ep = { post: () => {} };
  hub.handle(ep, { op: 'hello', tab: 'A', v: 1, state: {}, lock: 'lock-A' });
  await clock.advance(0);
  sockets[0].hello();
  await settle();
  answer(sockets[0], () => ({ body: { sid: 1 } }));
  assert.equal(hub.tabs.size, 1);
  grant();
  await settle();
  assert.equal(hub.tabs.size, 0);
});

test('name taken: the session stays, anonymous, and the tab is told', async () => {
  const { clock, sockets, tab } = setup();
  const a = tab('A', { name: 'bob' });
  a.hello();
  await clock.advance(0);
  sockets[0].hello();
  await settle();
  const f = sockets[0].take()[0];
  sockets[0].deliver({ t: 'reply', sid: 1, seq: f.seq, code: 409, error: 'name_taken', msg: 'taken' });
  await settle();
  const again = sockets[0].take()[0];
  assert.equal(again.cmd, 'attach');
  assert.equal(again.body.name, undefined);
  sockets[0].deliver({ t: 'reply', sid: 1, seq: again.seq, code: 200, body: { sid: 1 } });
  await settle();
  assert.equal(a.events('name_refused')[0].name, 'bob');
  assert.equal(a.events('attached').at(-1).user, '');
});

test('wrong protocol version is refused', () => {
  const { hub } = setup();
  const got = [];
  hub.handle({ post: (m) => got.push(m) }, { op: 'hello', tab: 'X', v: 99 });
  assert.equal(got[0].op, 'bye');
  assert.equal(hub.tabs.size, 0);
});

test('a partial resume (more) is completed page by page before later pushes reach the tab', async () => {
  const { clock, sockets, tab } = setup();
  const a = tab('A', { rooms: [{ room: 'r', epoch: EPOCH, offset: 2 }] });
  a.hello();
  await clock.advance(0);
  sockets[0].hello();
  await settle();
  const [att, join] = sockets[0].take();
  assert.equal(att.cmd, 'attach');
  assert.equal(att.body.rooms, undefined);
  assert.deepEqual([join.cmd, join.body], ['join', { room: 'r', history: 50, epoch: EPOCH, offset: 2 }], 'the tab\'s own offsets are resumed');
  sockets[0].deliver(
    { t: 'reply', sid: 1, seq: att.seq, code: 200, body: { sid: 1 } },
    { t: 'reply', sid: 1, seq: join.seq, code: 200, body: { room: 'r', epoch: EPOCH, top: 9, members: 1, more: true, messages: [mk('r', 3), mk('r', 4)] } },
  );
  await settle();
  const h1 = sockets[0].take()[0];
  assert.equal(h1.cmd, 'history');
  assert.deepEqual([h1.body.epoch, h1.body.after], [EPOCH, 4]);
  // a live push arrives while catching up: it must wait
  sockets[0].deliver({ t: 'push', sids: [1], ev: 'msg', body: mk('r', 10) });
  sockets[0].deliver({ t: 'reply', sid: 1, seq: h1.seq, code: 200, body: { room: 'r', epoch: EPOCH, top: 10, first: 1, more: true, messages: [mk('r', 5), mk('r', 6), mk('r', 7)] } });
  await settle();
  const h2 = sockets[0].take()[0];
  assert.equal(h2.body.after, 7);
  sockets[0].deliver({ t: 'reply', sid: 1, seq: h2.seq, code: 200, body: { room: 'r', epoch: EPOCH, top: 10, first: 1, messages: [mk('r', 8), mk('r', 9), mk('r', 10)] } });
  await clock.advance(50);
  const offsets = a.events().filter((e) => e.k === 'msg' || e.k === 'history').flatMap((e) => (e.k === 'msg' ? [e.offset] : e.messages.map((m) => m.offset)));
  assert.deepEqual(offsets, [3, 4, 5, 6, 7, 8, 9, 10]);
});

test('a resume reset without messages (offsets gone, none sent) fetches the latest', async () => {
  const { clock, sockets, tab } = setup();
  const a = tab('A', { rooms: [{ room: 'r', epoch: 'old', offset: 2 }] });
  a.hello();
  await clock.advance(0);
  sockets[0].hello();
  await settle();
  const [att, join] = sockets[0].take();
  assert.deepEqual(join.body, { room: 'r', history: 50, epoch: 'old', offset: 2 });
  sockets[0].deliver(
    { t: 'reply', sid: 1, seq: att.seq, code: 200, body: { sid: 1 } },
    { t: 'reply', sid: 1, seq: join.seq, code: 200, body: { room: 'r', epoch: 'new', top: 70, members: 1, reset: true } },
  );
  await settle();
  const h = sockets[0].take()[0];
  assert.deepEqual(h.body, { room: 'r', limit: 50 });
  sockets[0].deliver({ t: 'reply', sid: 1, seq: h.seq, code: 200, body: { room: 'r', epoch: 'new', top: 70, first: 1, more: true, messages: [mk('r', 69, 'a', 'new'), mk('r', 70, 'b', 'new')] } });
  await clock.advance(50);
  const hist = a.events('history');
  assert.equal(hist[0].reset, true);
  assert.deepEqual(hist.at(-1).messages.map((m) => m.offset), [69, 70]);
  assert.equal(hist.at(-1).reset, true);
});

test('resume: attach then one join per room in the same message, before the attach reply', async () => {
  const backend = new MemoryBackend();
  const { clock, sockets, tab, hub } = setup({ backend });
  await hub.cache.append('p', [mk('p', 1, 'stale', 'old'), mk('p', 2, 'stale', 'old')]);
  const a = tab('A', { name: 'ann', token: 'TA', rooms: [{ room: 'r', epoch: EPOCH, offset: 5 }, { room: 'q' }, { room: 'p', epoch: 'old', offset: 2 }] });
  a.hello();
  await clock.advance(0);
  sockets[0].hello();
  await settle();
  assert.equal(sockets[0].sent.length, 1, 'one WebSocket message');
  const fr = sockets[0].take();
  assert.deepEqual(fr.map((f) => f.cmd), ['attach', 'join', 'join', 'join']);
  assert.deepEqual(fr[0].body, { mode: 'shared_worker', name: 'ann', token: 'TA' });
  assert.deepEqual(fr.slice(1).map((f) => f.body), [
    { room: 'r', history: 50, epoch: EPOCH, offset: 5 }, { room: 'q', history: 50 }, { room: 'p', history: 50, epoch: 'old', offset: 2 }]);
  sockets[0].deliver(
    { t: 'reply', sid: 1, seq: fr[0].seq, code: 200, body: { sid: 1, user: 'ann', color: '#222222', token: 'TA' } },
    { t: 'reply', sid: 1, seq: fr[1].seq, code: 200, body: { room: 'r', epoch: EPOCH, top: 6, members: 1, messages: [mk('r', 6)] } },
    { t: 'reply', sid: 1, seq: fr[2].seq, code: 200, body: { room: 'q', epoch: 'eq', top: 0, members: 1 } },
    // p's epoch changed: a reset with the latest messages replaces the room
    { t: 'reply', sid: 1, seq: fr[3].seq, code: 200, body: { room: 'p', epoch: 'ep', top: 2, members: 1, reset: true, messages: [mk('p', 1, 'x', 'ep'), mk('p', 2, 'y', 'ep')] } },
  );
  await clock.advance(50);
  assert.deepEqual(sockets[0].take(), [], 'nothing more to ask');
  assert.deepEqual(a.events('history').flatMap((h) => h.messages.map((m) => `${m.room}${m.offset}`)), ['r6', 'p1', 'p2']);
  assert.deepEqual(a.events('history').map((h) => [h.room, h.reset, h.source]), [['r', false, 'resume'], ['q', false, 'resume'], ['p', true, 'resume']]);
  await hub.cache.idle();
  const c = await hub.cache.load('p');
  assert.deepEqual([c.epoch, c.messages.map((m) => m.text)], ['ep', ['x', 'y']], 'the cache of the reset room is replaced');
  assert.equal(a.events('attached').at(-1).user, 'ann');
  assert.equal(a.events('left').length, 0);
});

test('name taken on re-attach: the pipelined joins get 401 and go again behind the anonymous attach', async () => {
  const { clock, sockets, tab } = setup();
  const a = tab('A', { name: 'bob', rooms: [{ room: 'r', epoch: EPOCH, offset: 3 }] });
  a.hello();
  await clock.advance(0);
  sockets[0].hello();
  await settle();
  const [att, join] = sockets[0].take();
  assert.deepEqual([att.cmd, att.body.name, join.cmd], ['attach', 'bob', 'join']);
  sockets[0].deliver(
    { t: 'reply', sid: 1, seq: att.seq, code: 409, error: 'name_taken', msg: 'taken' },
    { t: 'reply', sid: 1, seq: join.seq, code: 401, error: 'not_attached', msg: 'send attach first' },
  );
  await settle();
  assert.equal(sockets[0].sent.length, 1, 'the anonymous attach and its join in one message');
  const [att2, join2] = sockets[0].take();
  assert.deepEqual([att2.cmd, att2.body], ['attach', { mode: 'shared_worker' }]);
  assert.deepEqual([join2.cmd, join2.body], ['join', { room: 'r', history: 50, epoch: EPOCH, offset: 3 }], 'same offsets');
  sockets[0].deliver(
    { t: 'reply', sid: 1, seq: att2.seq, code: 200, body: { sid: 1 } },
    { t: 'reply', sid: 1, seq: join2.seq, code: 200, body: { room: 'r', epoch: EPOCH, top: 4, members: 1, messages: [mk('r', 4)] } },
  );
  await clock.advance(50);
  assert.equal(a.events('name_refused')[0].name, 'bob');
  assert.equal(a.events('attached').at(-1).user, '');
  assert.equal(a.events('left').length, 0, 'the 401 did not drop the room');
  assert.deepEqual(a.events('history').flatMap((h) => h.messages.map((m) => m.offset)), [4]);
  // a push of the room still reaches the tab
  sockets[0].deliver({ t: 'push', sids: [1], ev: 'msg', body: mk('r', 5) });
  await clock.advance(50);
  assert.deepEqual(a.events('msg').map((m) => m.offset), [5]);
});

test('a resuming join refused for another reason drops the room and tells the tab', async () => {
  const { clock, sockets, tab } = setup();
  const a = tab('A', { rooms: [{ room: 'r', epoch: EPOCH, offset: 3 }] });
  a.hello();
  await clock.advance(0);
  sockets[0].hello();
  await settle();
  const [att, join] = sockets[0].take();
  sockets[0].deliver(
    { t: 'reply', sid: 1, seq: att.seq, code: 200, body: { sid: 1 } },
    { t: 'reply', sid: 1, seq: join.seq, code: 400, error: 'bad_request', msg: 'too many rooms' },
  );
  await clock.advance(50);
  assert.deepEqual(a.events('left').map((e) => [e.room, e.reason]), [['r', 'bad_request']]);
  sockets[0].deliver({ t: 'push', sids: [1], ev: 'msg', body: mk('r', 4) });
  await clock.advance(50);
  assert.equal(a.events('msg').length, 0);
});

test('tabs resuming a room from the same offset share one join (sids); its reply is applied to each', async () => {
  const { clock, sockets, tab, hub } = setup();
  const at = (offset) => ({ name: 'alice', token: 'T', rooms: [{ room: 'lobby', epoch: EPOCH, offset }] });
  const tabs = [tab('A', at(4)), tab('B', at(4)), tab('C', at(4)), tab('D', at(2))];
  for (const t of tabs) t.hello();
  await clock.advance(0);
  sockets[0].hello();
  await settle();
  assert.equal(sockets[0].sent.length, 1, 'attaches and joins in one WebSocket message');
  const fr = sockets[0].take();
  assert.deepEqual(fr.map((f) => [f.sid, f.cmd]), [[1, 'attach'], [2, 'attach'], [3, 'attach'], [4, 'attach'], [1, 'join'], [4, 'join']],
    'every attach first, then one join per (room, epoch, offset)');
  assert.deepEqual(fr[4].body, { room: 'lobby', history: 50, epoch: EPOCH, offset: 4, sids: [2, 3] });
  assert.deepEqual(fr[5].body, { room: 'lobby', history: 50, epoch: EPOCH, offset: 2 }, 'a tab at another offset joins alone');
  sockets[0].deliver(
    ...fr.slice(0, 4).map((f) => ({ t: 'reply', sid: f.sid, seq: f.seq, code: 200, body: { sid: f.sid, user: 'alice', color: '#111111', token: 'T' } })),
    { t: 'reply', sid: 1, seq: fr[4].seq, code: 200, body: { room: 'lobby', epoch: EPOCH, top: 6, members: 4, sids: [1, 2, 3], messages: [mk('lobby', 5), mk('lobby', 6)] } },
    { t: 'reply', sid: 4, seq: fr[5].seq, code: 200, body: { room: 'lobby', epoch: EPOCH, top: 6, members: 4, messages: [3, 4, 5, 6].map((o) => mk('lobby', o)) } },
  );
  await settle();
  assert.deepEqual(sockets[0].take(), [], 'nothing more to ask');
  sockets[0].deliver({ t: 'push', sids: [1, 2, 3, 4], ev: 'msg', body: mk('lobby', 7) });
  await clock.advance(50);
  const seen = (t) => t.events().filter((e) => e.k === 'msg' || e.k === 'history').flatMap((e) => (e.k === 'msg' ? [e.offset] : e.messages.map((m) => m.offset)));
  for (const t of tabs.slice(0, 3)) assert.deepEqual(seen(t), [5, 6, 7], `tab ${t.id}: the shared catch-up once, then the push`);
  assert.deepEqual(seen(tabs[3]), [3, 4, 5, 6, 7]);
  assert.equal(hub.stats.msgsFromServer, 2 + 4 + 1, 'the shared reply counted once');
  assert.equal(hub.stats.delivered, 3 * 3 + 5, 'delivered to every tab');
});

test('a server that ignores sids: the tabs it did not list resume by themselves', async () => {
  const { clock, sockets, tab } = setup();
  const st = { name: 'alice', token: 'T', rooms: [{ room: 'r', epoch: EPOCH, offset: 1 }] };
  const a = tab('A', st);
  const b = tab('B', st);
  a.hello(); b.hello();
  await clock.advance(0);
  sockets[0].hello();
  await settle();
  const fr = sockets[0].take();
  assert.deepEqual(fr.map((f) => [f.sid, f.cmd, f.body.sids]), [[1, 'attach', undefined], [2, 'attach', undefined], [1, 'join', [2]]]);
  sockets[0].deliver(
    ...fr.slice(0, 2).map((f) => ({ t: 'reply', sid: f.sid, seq: f.seq, code: 200, body: { sid: f.sid, user: 'alice', color: '#111111', token: 'T' } })),
    { t: 'reply', sid: 1, seq: fr[2].seq, code: 200, body: { room: 'r', epoch: EPOCH, top: 2, members: 1, messages: [mk('r', 2)] } },
  );
  await settle();
  const again = sockets[0].take();
  assert.deepEqual(again.map((f) => [f.sid, f.cmd, f.body]), [[2, 'join', { room: 'r', history: 50, epoch: EPOCH, offset: 1 }]]);
  sockets[0].deliver({ t: 'reply', sid: 2, seq: again[0].seq, code: 200, body: { room: 'r', epoch: EPOCH, top: 2, members: 2, messages: [mk('r', 2)] } });
  await clock.advance(50);
  for (const t of [a, b]) assert.deepEqual(t.events('history').flatMap((h) => h.messages.map((m) => m.offset)), [2], `tab ${t.id}`);
});
