// The address list with several nodes: refetch asks the page's server for
// /lbs, then each node it knows; none answering, it keeps the list it has.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Connection, lbsOf } from '../static/core/conn.js';
import { Clock, fakeWebSocket } from './helpers.js';

function answering(lists) {
  const asked = [];
  const fetch = async (url) => {
    asked.push(url);
    const addrs = lists[url];
    if (!addrs) throw new TypeError('Failed to fetch');
    return { ok: true, json: async () => ({ addrs }) };
  };
  return { fetch, asked };
}

function conn(fetch) {
  const clock = new Clock();
  const { FakeWS } = fakeWebSocket();
  return new Connection({
    WebSocket: FakeWS, fetch, lbsUrl: 'http://a:1/lbs', defaultAddr: 'ws://a:1/ws',
    setTimer: clock.setTimer, clearTimer: clock.clearTimer, now: clock.now,
  });
}

test('lbsOf: the /lbs of the node a ws:// address names', () => {
  assert.equal(lbsOf('ws://127.0.0.1:8080/ws'), 'http://127.0.0.1:8080/lbs');
  assert.equal(lbsOf('wss://chat.example/im/ws?x=1'), 'https://chat.example/im/lbs');
  assert.equal(lbsOf('http://a/ws'), '');
  assert.equal(lbsOf('not a url'), '');
});

test('refetch: the page server first', async () => {
  const { fetch, asked } = answering({ 'http://a:1/lbs': ['ws://b:2/ws', 'ws://a:1/ws'] });
  const c = conn(fetch);
  await c.refetch();
  assert.deepEqual(c.ladder.addrs, ['ws://b:2/ws', 'ws://a:1/ws']);
  assert.deepEqual(asked, ['http://a:1/lbs']);
});

test('refetch: the page server dead, another node answers', async () => {
  const lists = { 'http://a:1/lbs': ['ws://a:1/ws', 'ws://b:2/ws', 'ws://c:3/ws'] };
  const { fetch, asked } = answering(lists);
  const c = conn(fetch);
  await c.refetch();
  delete lists['http://a:1/lbs']; // node a dies: its list now comes from b
  lists['http://b:2/lbs'] = ['ws://c:3/ws', 'ws://b:2/ws'];
  await c.refetch();
  assert.deepEqual(c.ladder.addrs, ['ws://c:3/ws', 'ws://b:2/ws']);
  assert.deepEqual(asked.slice(1), ['http://a:1/lbs', 'http://b:2/lbs']);
});

test('refetch: nobody answers, the list it had stays', async () => {
  const lists = { 'http://a:1/lbs': ['ws://b:2/ws', 'ws://a:1/ws'] };
  const { fetch } = answering(lists);
  const c = conn(fetch);
  await c.refetch();
  delete lists['http://a:1/lbs'];
  await c.refetch();
  assert.deepEqual(c.ladder.addrs, ['ws://b:2/ws', 'ws://a:1/ws'], 'not shrunk to the page server alone');
});

test('refetch: nothing known and nobody answers: the page server', async () => {
  const { fetch } = answering({});
  const c = conn(fetch);
  await c.refetch();
  assert.deepEqual(c.ladder.addrs, ['ws://a:1/ws']);
});
