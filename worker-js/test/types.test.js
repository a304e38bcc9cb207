// The hand-written types/client.d.ts against the module it describes:
// every value it declares is exported by static/client.js (and back), and
// every event client.js emits is in ClientEvents (and back). tsc checks the
// JSDoc and the .d.ts themselves (TestTypeCheck).
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const dts = readFileSync(new URL('../types/client.d.ts', import.meta.url), 'utf8');
const src = readFileSync(new URL('../static/client.js', import.meta.url), 'utf8');
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const version = readFileSync(new URL('../static/core/version.js', import.meta.url), 'utf8');

test('client.d.ts declares exactly the values client.js exports', async () => {
  const mod = await import('../static/client.js');
  const declared = new Set([...dts.matchAll(/^export declare (?:const|class|function) (\w+)/gm)].map((m) => m[1]));
  for (const m of dts.matchAll(/^export \{ ([^}]+) \} from/gm)) for (const n of m[1].split(',')) declared.add(n.trim());
  assert.deepEqual([...declared].sort(), Object.keys(mod).sort());
});

test('ClientEvents names every event client.js emits', () => {
  const block = dts.slice(dts.indexOf('export interface ClientEvents'), dts.indexOf('export interface ModeInfo'));
  const declared = new Set([...block.matchAll(/^ {2}(\w+): /gm)].map((m) => m[1]));
  const emitted = new Set([...src.matchAll(/this\.emit\('(\w+)'/g)].map((m) => m[1]));
  // the hub's events passed through as they come (onEvent's default)
  for (const k of ['presence', 'notice', 'dm', 'dm_reset', 'dm_conv', 'outbox']) emitted.add(k);
  assert.deepEqual([...declared].sort(), [...emitted].sort());
});

test('the package is versioned with the protocol and the build', () => {
  const proto = Number(version.match(/PROTOCOL_VERSION = (\d+)/)[1]);
  const build = version.match(/BUILD = '(\w+)'/)[1];
  assert.equal(pkg.imload.protocol, proto);
  assert.equal(pkg.imload.build, build);
  assert.ok(pkg.version.startsWith(`${proto}.${build}.`), `package.json version ${pkg.version} is PROTOCOL.BUILD.patch`);
  assert.match(dts, new RegExp(`PROTOCOL_VERSION ${proto}, BUILD "${build}"`));
  assert.equal(pkg.exports['.'].default, './static/client.js');
});
