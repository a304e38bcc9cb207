import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { checkName, validName } from '../static/core/names.js';

// The same vectors as mux's TestNames: the JS rule mirrors the server's.
const vec = JSON.parse(readFileSync(new URL('../../mux/testdata/names.json', import.meta.url), 'utf8'));

test('names valid on the server are valid here', () => {
  assert.ok(vec.good.length > 0, 'no valid names in names.json');
  for (const n of vec.good) assert.equal(checkName(n), '', n);
});

test('names the server refuses are refused here', () => {
  assert.ok(vec.bad.length > 0, 'no refused names in names.json');
  for (const n of vec.bad) assert.equal(validName(n), false, JSON.stringify(n));
});

test('a mixed-script name is refused with the scripts named', () => {
  assert.match(checkName('аlice'), /Cyrillic and Latin/);
  assert.match(checkName('al ice'), /not allowed/);
  assert.equal(validName(42), false);
});
