import test from 'node:test';
import assert from 'node:assert/strict';
import { RoomCache, MemoryBackend } from '../static/core/cache.js';

const msg = (offset, epoch = 'e1', room = 'r') => ({ room, offset, epoch, from: 'a', text: `m${offset}`, ts: offset });

// SlowBackend finishes writes in random order of timing; RoomCache must still
// apply them in order.
class SlowBackend extends MemoryBackend {
  constructor() { super(); this.log = []; }
  async write(room, op) {
    await new Promise((r) => setTimeout(r, Math.random() * 5));
    this.log.push(op.add.map((m) => m.offset));
    return super.write(room, op);
  }
  async read(room, limit) {
    await new Promise((r) => setTimeout(r, Math.random() * 5));
    return super.read(room, limit);
  }
}

test('cache keeps writes in order and merges consecutive appends', async () => {
  const be = new SlowBackend();
  const c = new RoomCache(be, { keep: 100 });
  const ps = [];
  for (let i = 1; i <= 30; i++) ps.push(c.append('r', [msg(i)]));
  await Promise.all(ps);
  const got = await c.load('r');
  assert.deepEqual(got.messages.map((m) => m.offset), Array.from({ length: 30 }, (_, i) => i + 1));
  assert.equal(got.top, 30);
  assert.deepEqual(be.log.flat(), Array.from({ length: 30 }, (_, i) => i + 1), 'backend saw the writes in order');
  assert.ok(be.writes < 30, `appends merged (${be.writes} writes)`);
});

test('cache skips duplicates, restarts on a gap or a new epoch, trims to keep', async () => {
  const be = new MemoryBackend();
  const c = new RoomCache(be, { keep: 5 });
  await c.append('r', [msg(1), msg(2), msg(2), msg(1), msg(3)]);
  assert.deepEqual((await c.load('r')).messages.map((m) => m.offset), [1, 2, 3]);
  await c.append('r', [msg(7)]);
  assert.deepEqual((await c.load('r')).messages.map((m) => m.offset), [7], 'a gap restarts the run');
  await c.append('r', [msg(8), msg(9), msg(10), msg(11), msg(12), msg(13)]);
  assert.deepEqual((await c.load('r')).messages.map((m) => m.offset), [9, 10, 11, 12, 13]);
  assert.deepEqual((await be.read('r', 100)).messages.map((m) => m.offset), [9, 10, 11, 12, 13], 'stored copy trimmed too');
  await c.append('r', [msg(1, 'e2')]);
  const e2 = await c.load('r');
  assert.equal(e2.epoch, 'e2');
  assert.deepEqual(e2.messages.map((m) => m.offset), [1]);
  assert.deepEqual((await be.read('r', 100)).messages.map((m) => m.offset), [1]);
});

test('cache replace drops the room and a fresh cache reads it back', async () => {
  const be = new MemoryBackend();
  const c = new RoomCache(be);
  await c.append('r', [msg(1), msg(2)]);
  await c.append('other', [msg(1, 'x', 'other')]);
  c.replace('r', 'e9', [msg(41, 'e9'), msg(40, 'e9'), msg(42, 'e9')]);
  const c2 = new RoomCache(be);
  const r = await c2.load('r');
  assert.equal(r.epoch, 'e9');
  assert.deepEqual(r.messages.map((m) => m.offset), [40, 41, 42]);
  assert.equal((await c2.load('other')).messages.length, 1);
  assert.equal(await c2.load('nothing'), null);
});

test('a load queued after appends sees them', async () => {
  const c = new RoomCache(new SlowBackend());
  c.append('r', [msg(1)]);
  c.append('r', [msg(2)]);
  const r = await c.load('r');
  assert.equal(r.top, 2);
});

test('operations that finish without waiting do not stall the queue', async () => {
  const c = new RoomCache(new MemoryBackend());
  await c.append('r', []);
  await c.idle();
  await c.append('r', [msg(1)]);
  const r = await Promise.race([c.load('r'), new Promise((res) => setTimeout(() => res('stalled'), 500))]);
  assert.notEqual(r, 'stalled');
  assert.equal(r.top, 1);
});
