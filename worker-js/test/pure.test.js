import test from 'node:test';
import assert from 'node:assert/strict';
import { Ladder, backoffDelay, DEFAULT_LADDER } from '../static/core/backoff.js';
import { FlushBuffer } from '../static/core/flush.js';
import { Offsets } from '../static/core/offsets.js';
import { decodeMessage, encodeBatches } from '../static/core/frames.js';
import { modeFromParam, WORKER_NAME, PROTOCOL_VERSION } from '../static/core/version.js';
import { Clock } from './helpers.js';

test('backoff grows exponentially, is capped, and jitters within bounds', () => {
  const o = { ...DEFAULT_LADDER, baseMs: 100, maxMs: 1000, jitter: 0.5 };
  assert.equal(backoffDelay(1, o, () => 0.5), 100);
  assert.equal(backoffDelay(2, o, () => 0.5), 200);
  assert.equal(backoffDelay(3, o, () => 0.5), 400);
  assert.equal(backoffDelay(10, o, () => 0.5), 1000);
  assert.equal(backoffDelay(1, o, () => 0), 50);
  assert.equal(backoffDelay(1, o, () => 0.999999), 150);
  assert.equal(backoffDelay(10, o, () => 1), 1000, 'capped after jitter too');
  for (let i = 0; i < 100; i++) {
    const d = backoffDelay(3, o);
    assert.ok(d >= 200 && d <= 600, `delay ${d}`);
  }
});

test('ladder: retry same address, switch, refetch /lbs, then give up', () => {
  const l = new Ladder({ triesPerAddr: 3, refetches: 1, baseMs: 10, maxMs: 100, jitter: 0 });
  l.setAddrs(['ws://a/ws', 'ws://b/ws']);
  const steps = [];
  for (let i = 0; i < 12; i++) {
    const s = l.next();
    steps.push(`${s.action}:${s.addr || ''}`);
    if (s.action === 'refetch') l.setAddrs(['ws://a/ws', 'ws://b/ws']);
    if (s.action === 'give_up') break;
  }
  assert.deepEqual(steps, [
    'retry:ws://a/ws', 'retry:ws://a/ws', 'switch:ws://b/ws',
    'retry:ws://b/ws', 'retry:ws://b/ws', 'refetch:ws://a/ws',
    'retry:ws://a/ws', 'retry:ws://a/ws', 'switch:ws://b/ws',
    'retry:ws://b/ws', 'retry:ws://b/ws', 'give_up:',
  ]);
  l.success();
  assert.equal(l.next().action, 'retry');
  assert.equal(l.current(), 'ws://a/ws');
});

test('ladder delays follow the attempt count and reset on success', () => {
  const l = new Ladder({ triesPerAddr: 10, baseMs: 100, maxMs: 800, jitter: 0 });
  l.setAddrs(['ws://a/ws']);
  assert.deepEqual([1, 2, 3, 4, 5].map(() => l.next().delayMs), [100, 200, 400, 800, 800]);
  l.success();
  assert.equal(l.next().delayMs, 100);
  l.configure({ baseMs: 5, bogus: 7, maxMs: -1 });
  assert.equal(l.o.baseMs, 5);
  assert.equal(l.o.maxMs, 800, 'invalid values are ignored');
});

test('flush buffer merges on a timer or at N items, keeping order', async () => {
  const clock = new Clock();
  const out = [];
  const b = new FlushBuffer({ intervalMs: 50, maxItems: 3, onFlush: (l) => out.push(l), setTimer: clock.setTimer, clearTimer: clock.clearTimer });
  b.push(1); b.push(2);
  assert.deepEqual(out, []);
  await clock.advance(49);
  assert.deepEqual(out, []);
  await clock.advance(1);
  assert.deepEqual(out, [[1, 2]]);
  b.push(3); b.push(4); b.push(5);
  assert.deepEqual(out, [[1, 2], [3, 4, 5]], 'full buffer flushes at once');
  b.push(6);
  b.pushNow('reply');
  assert.deepEqual(out.at(-1), [6, 'reply'], 'urgent items flush with what waits, after it');
  await clock.advance(100);
  assert.equal(out.length, 3, 'no empty flushes');
  b.close();
  b.push(7);
  await clock.advance(100);
  assert.equal(out.length, 3);
});

test('offsets: dedupe, gaps, epochs, what a resuming join sends', () => {
  const o = new Offsets();
  const m = (offset, epoch = 'e1') => ({ room: 'r', offset, epoch });
  assert.equal(o.accept(m(1)), 'new');
  assert.equal(o.accept(m(2)), 'new');
  assert.equal(o.accept(m(2)), 'dup');
  assert.equal(o.accept(m(1)), 'dup');
  assert.equal(o.accept(m(5)), 'gap');
  assert.equal(o.get('r').offset, 5);
  assert.equal(o.accept(m(1, 'e2')), 'epoch');
  assert.deepEqual(o.get('r'), { epoch: 'e2', offset: 1 });
  const f = o.filter('r', 'e2', [m(1, 'e2'), m(2, 'e2'), m(3, 'e2'), m(3, 'e2')]);
  assert.deepEqual(f.messages.map((x) => x.offset), [2, 3]);
  assert.equal(f.reset, false);
  const g = o.filter('r', 'e3', [m(7, 'e3')]);
  assert.equal(g.reset, true);
  assert.deepEqual(g.messages.map((x) => x.offset), [7]);
  o.advance('r', 'e3', 9);
  o.advance('r', 'e3', 4);
  assert.equal(o.get('r').offset, 9, 'advance never lowers');
  o.set('q', '', 0);
  assert.deepEqual(o.get('r'), { epoch: 'e3', offset: 9 }, 'a join resumes r from e3/9');
  assert.deepEqual(o.get('q'), { epoch: '', offset: 0 }, 'no epoch: a plain join');
  assert.equal(o.get('none'), undefined);
  o.delete('q');
  assert.deepEqual(o.rooms(), ['r']);
  assert.deepEqual(new Offsets(o.toJSON()).get('r'), { epoch: 'e3', offset: 9 });
});

test('frames: decode several per message, skip junk; encode within limits', () => {
  const { frames, errors } = decodeMessage('{"t":"pong","seq":1}\r\n\n{"t":"push","sids":[1]}\nnot json\n[1]\n');
  assert.deepEqual(frames.map((f) => f.t), ['pong', 'push']);
  assert.equal(errors.length, 2);
  const fs = [1, 2, 3, 4, 5].map((seq) => ({ t: 'ping', seq }));
  assert.deepEqual(encodeBatches(fs, 2, 0).map((m) => m.split('\n').length), [2, 2, 1]);
  const one = JSON.stringify(fs[0]).length;
  assert.deepEqual(encodeBatches(fs, 0, one * 2 + 1).map((m) => m.split('\n').length), [2, 2, 1]);
  assert.equal(encodeBatches([{ t: 'x', s: 'y'.repeat(100) }], 0, 10).length, 1, 'an oversize frame still goes alone');
  assert.deepEqual(encodeBatches([], 2, 10), []);
});

test('version: worker name carries the protocol version; mode params', () => {
  assert.match(WORKER_NAME, new RegExp(`p${PROTOCOL_VERSION}`));
  assert.equal(modeFromParam('shared'), 'shared_worker');
  assert.equal(modeFromParam('leader'), 'leader_tab');
  assert.equal(modeFromParam('DIRECT'), 'direct');
  assert.equal(modeFromParam('bogus'), '');
  assert.equal(modeFromParam(null), '');
});
