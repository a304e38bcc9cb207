// Unit tests of the server-side DM history in the browser: the store's
// merge of offsets and epochs (dms.js), and the hub's sync (dmsync.js)
// after an attach, on a gap and when a tab opens a conversation.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Hub } from '../static/core/hub.js';
import { MemoryBackend } from '../static/core/cache.js';
import { DmStore } from '../static/core/dms.js';
import { Clock, fakeWebSocket, settle } from './helpers.js';

const dm = (off, from, to, text, epoch = 'E1') => ({ from, to, text, ts: 100 + off, color: '#222222', epoch, offset: off });

test('DmStore: one copy per offset, gaps reported, top without a gap', async () => {
  const st = new DmStore(null);
  assert.deepEqual(await st.add('alice', { id: 1, ...dm(1, 'bob', 'alice', 'a') }), { peer: 'bob', gap: false, reset: false });
  assert.equal((await st.add('alice', { id: 9, ...dm(1, 'bob', 'alice', 'a') })).peer, '', 'the same offset again (another id: a copy) is a duplicate');
  const g = await st.add('alice', { id: 2, ...dm(3, 'bob', 'alice', 'c') });
  assert.equal(g.gap, true, 'offset 2 skipped');
  assert.equal((await st.get('alice', 'bob')).top, 1);
  await st.merge('alice', 'bob', { epoch: 'E1', top: 3, messages: [dm(2, 'alice', 'bob', 'b'), dm(3, 'bob', 'alice', 'c')] });
  const c = await st.get('alice', 'bob');
  assert.equal(c.top, 3);
  assert.deepEqual(c.msgs.map((m) => m.text), ['a', 'b', 'c']);
});

test('DmStore: a reset or another epoch replaces the old one; none (epoch "") empties it', async () => {
  const st = new DmStore(null);
  await st.merge('alice', 'bob', { epoch: 'E1', top: 2, messages: [dm(1, 'bob', 'alice', 'a'), dm(2, 'bob', 'alice', 'b')] });
  let r = await st.add('alice', { id: 5, ...dm(1, 'bob', 'alice', 'new holder', 'E2') });
  assert.equal(r.reset, true);
  let c = await st.get('alice', 'bob');
  assert.deepEqual([c.epoch, c.top, c.msgs.map((m) => m.text)], ['E2', 1, ['new holder']]);
  const m = await st.merge('alice', 'bob', { epoch: 'E2', top: 9, reset: true, messages: [dm(8, 'bob', 'alice', 'x', 'E2'), dm(9, 'bob', 'alice', 'y', 'E2')] });
  assert.equal(m.reset, true);
  c = await st.get('alice', 'bob');
  assert.deepEqual([c.top, c.msgs.map((x) => x.text)], [9, ['x', 'y']], 'the latest, and on after them');
  r = await st.merge('alice', 'bob', { epoch: '', top: 0, messages: [] });
  c = await st.get('alice', 'bob');
  assert.deepEqual([r.reset, c.epoch, c.msgs.length], [true, '', 0], 'the server has none for us: what we had of it goes');
});

test('DmStore: a conversation first learnt from the server is read; what follows counts as unread', async () => {
  const st = new DmStore(null);
  await st.merge('alice', 'bob', { epoch: 'E1', top: 2, messages: [dm(1, 'bob', 'alice', 'a'), dm(2, 'bob', 'alice', 'b')] });
  let [c] = await st.list('alice');
  assert.deepEqual([c.peer, c.unread, c.count, c.top, c.epoch], ['bob', 0, 2, 2, 'E1']);
  await st.merge('alice', 'bob', { epoch: 'E1', top: 3, messages: [dm(3, 'bob', 'alice', 'c')] });
  [c] = await st.list('alice');
  assert.equal(c.unread, 1);
});

function setup() {
  const clock = new Clock();
  const { FakeWS, sockets } = fakeWebSocket();
  const fetch = async () => ({ ok: true, json: async () => ({ addrs: ['ws://s1/ws'] }) });
  const hub = new Hub({
    mode: 'shared_worker', WebSocket: FakeWS, fetch, base: 'http://h/', cacheBackend: new MemoryBackend(),
    setTimer: clock.setTimer, clearTimer: clock.clearTimer, now: clock.now, random: () => 0.5,
    config: { flushMs: 0, tabTimeoutMs: 1e9, tabTimeoutLockMs: 1e9 },
  });
  const tab = (id, st = {}) => {
    const t = { id, got: [] };
    t.ep = { post: (m) => t.got.push(m) };
    t.send = (m) => hub.handle(t.ep, { tab: id, ...m });
    t.events = (k) => t.got.filter((m) => m.op === 'events').flatMap((m) => m.list).filter((e) => !k || e.k === k);
    return t;
  };
  return { clock, sockets, hub, tab };
}

// answer replies to the commands the hub sent, with what reply gives.
async function answer(ws, reply) {
  for (const f of ws.take()) {
    if (f.t !== 'cmd') continue;
    const r = reply(f);
    if (r) ws.deliver({ t: 'reply', sid: f.sid, seq: f.seq, ...r });
  }
  await settle(60);
}

test('hub: after the attach it lists the conversations and syncs those it lacks; a gap syncs after its offset', async () => {
  const s = setup();
  const a = s.tab('A');
  a.send({ op: 'hello', v: 1, state: { name: 'alice', token: 'T' } });
  await s.clock.advance(0);
  const ws = s.sockets[0];
  ws.hello({ dm_history_max: 500, max_history: 500 });
  await settle();
  const sent = [];
  const server = (f) => {
    sent.push(f);
    if (f.cmd === 'attach') return { code: 200, body: { sid: f.sid, user: 'alice', color: '#111111', token: 'T' } };
    if (f.cmd === 'dm_list') return { code: 200, body: { conversations: [{ peer: 'Bob', epoch: 'E1', top: 2, ts: 102 }] } };
    if (f.cmd === 'dm_history' && !f.body.epoch) return { code: 200, body: { peer: 'Bob', epoch: 'E1', top: 2, first: 1, messages: [dm(1, 'Bob', 'alice', 'hi'), dm(2, 'alice', 'Bob', 'hello')] } };
    if (f.cmd === 'dm_history') return { code: 200, body: { peer: 'Bob', epoch: 'E1', top: 4, first: 1, messages: [dm(3, 'Bob', 'alice', 'three'), dm(4, 'Bob', 'alice', 'four')] } };
    return null;
  };
  for (let i = 0; i < 4; i++) await answer(ws, server);
  assert.deepEqual(sent.map((f) => f.cmd), ['attach', 'dm_list', 'dm_history']);
  assert.deepEqual(sent[2].body, { peer: 'Bob', limit: 50 }, 'a conversation this browser does not have: the latest');
  let conv = a.events('dm_conv').at(-1).list;
  assert.deepEqual(conv.map((c) => [c.peer, c.count, c.unread, c.top]), [['Bob', 2, 0, 2]]);
  assert.deepEqual(a.events('dm').map((e) => [e.text, e.offset, e.source]), [['hi', 1, 'history'], ['hello', 2, 'history']]);

  // a push that skips offset 3: the hub asks for what follows 2
  ws.deliver({ t: 'push', sids: [1], ev: 'dm', body: { id: 3, ...dm(4, 'Bob', 'alice', 'four') } });
  await settle(60);
  for (let i = 0; i < 2; i++) await answer(ws, server);
  assert.deepEqual(sent.at(-1).body, { peer: 'Bob', epoch: 'E1', after: 2, limit: 500 });
  conv = a.events('dm_conv').at(-1).list;
  assert.deepEqual(conv.map((c) => [c.count, c.unread, c.top]), [[4, 2, 4]]);
  assert.deepEqual(a.events('dm').filter((e) => e.offset >= 3).map((e) => [e.offset, e.source]), [[4, undefined], [3, 'history']], 'the push, then what the page added');

  // a reconnect lists again; nothing changed: no dm_history
  ws.drop();
  await s.clock.advance(1000);
  const ws2 = s.sockets.at(-1);
  assert.notEqual(ws2, ws);
  ws2.hello({ dm_history_max: 500 });
  await settle();
  const before = sent.length;
  const up = (f) => {
    if (f.cmd !== 'dm_list') return server(f);
    sent.push(f);
    return { code: 200, body: { conversations: [{ peer: 'Bob', epoch: 'E1', top: 4, ts: 104 }] } };
  };
  for (let i = 0; i < 3; i++) await answer(ws2, up);
  assert.deepEqual(sent.slice(before).map((f) => f.cmd), ['attach', 'dm_list']);
});

test('hub: opening a conversation waits for its sync; a server without DM history is not asked', async () => {
  for (const history of [true, false]) {
    const s = setup();
    const a = s.tab('A');
    a.send({ op: 'hello', v: 1, state: { name: 'alice', token: 'T' } });
    await s.clock.advance(0);
    const ws = s.sockets[0];
    ws.hello(history ? { dm_history_max: 500 } : {});
    await settle();
    const sent = [];
    const server = (f) => {
      sent.push(f);
      if (f.cmd === 'attach') return { code: 200, body: { sid: f.sid, user: 'alice', color: '#111111', token: 'T' } };
      if (f.cmd === 'dm_list') return { code: 200, body: { conversations: [] } };
      if (f.cmd === 'dm_history') return { code: 200, body: { peer: 'carol', epoch: 'E7', top: 1, first: 1, messages: [dm(1, 'carol', 'alice', 'from before', 'E7')] } };
      return null;
    };
    await answer(ws, server);
    await answer(ws, server);
    a.send({ op: 'q', id: 'q1', q: 'dm_messages', args: { peer: 'carol' } });
    await settle(60);
    await answer(ws, server);
    await s.clock.advance(3000);
    const got = a.got.find((m) => m.op === 'a' && m.id === 'q1');
    assert.deepEqual(got.result.map((m) => m.text), history ? ['from before'] : [], `history ${history}`);
    assert.equal(sent.some((f) => f.cmd === 'dm_history' || f.cmd === 'dm_list'), history);
  }
});
