import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Ladder, STEP } from '../static/core/backoff.js';

// The ladder both sides walk (loadgen's TestLadderFixture reads it too):
// steps, the index of the address each goes to, the bounds of its wait.
const fx = JSON.parse(readFileSync(new URL('../../loadgen/testdata/ladder.json', import.meta.url), 'utf8'));
const list = (n) => Array.from({ length: n }, (_, i) => `ws://s${i}/ws`);

test('the fixture has cases, each with a script', () => {
  assert.ok(fx.cases.length > 0, 'no case in ladder.json');
  for (const c of fx.cases) assert.ok(c.script.length > 0, `${c.name}: empty script`);
});

for (const c of fx.cases) {
  test(`ladder fixture: ${c.name}`, () => {
    const cfg = { triesPerAddr: c.config.tries_per_addr, baseMs: c.config.base_ms, maxMs: c.config.max_ms, jitter: c.config.jitter, refetches: c.config.refetches };
    let next = 0;
    const random = c.random ? () => c.random[next++ % c.random.length] : Math.random;
    for (let rep = 0; rep < Math.max(1, c.repeat || 0); rep++) {
      const l = new Ladder(cfg, random);
      assert.deepEqual({ ...l.o, factor: undefined }, { ...cfg, factor: undefined }, 'the config is used as given');
      l.setAddrs(list(c.addrs));
      c.script.forEach((want, i) => {
        if (want.success) { l.success(); return; }
        const s = l.next();
        const at = `failure ${i + 1}`;
        assert.equal(s.action, want.step, at);
        if (want.addr !== undefined) assert.equal(l.addrs.indexOf(s.addr), want.addr, `${at}: address`);
        if (want.delay_ms) {
          const [lo, hi] = want.delay_ms;
          assert.ok(s.delayMs >= lo && s.delayMs <= hi, `${at} (${s.action}): wait ${s.delayMs} ms, want ${lo}..${hi}`);
        }
        if (s.action === STEP.refetch && c.addrs_after_refetch) l.setAddrs(list(c.addrs_after_refetch));
      });
    }
  });
}
