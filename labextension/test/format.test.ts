import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import { compareValues, differingKeys, flatten, fmtSpan, fmtValue, forLog, matchesFilter, mergeSeries, minmax, MAX_HELD, smooth, statusClass } from '../src/format';

test('fmtValue: integers whole, floats to 4 significant digits, tiny and huge in exponent form', () => {
  assert.equal(fmtValue(3), '3');
  assert.equal(fmtValue(0.123456), '0.1235');
  assert.equal(fmtValue(12345.678), "12350");
  assert.equal(fmtValue(1e-5 / 3), '3.333e-6');
  assert.equal(fmtValue(2.5e9 + 0.5), '2.5e+9');
  assert.equal(fmtValue(2.5e9), '2500000000');
  assert.equal(fmtValue(null), '–');
  assert.equal(fmtValue('NaN'), 'NaN');
  assert.equal(fmtValue(true), 'true');
  assert.equal(fmtValue({ a: 1 }), '{"a":1}');
  assert.equal(fmtValue('<script>'), '<script>'); // text; the views set it as textContent
});

test('fmtSpan picks a readable unit', () => {
  assert.equal(fmtSpan(5.4), '5 s');
  assert.equal(fmtSpan(125), '2 min');
  assert.equal(fmtSpan(3 * 3600 + 60), '3.0 h');
  assert.equal(fmtSpan(3 * 86400), '3 d');
  assert.equal(fmtSpan(null), '–');
  assert.equal(fmtSpan(-4), '0 s');
});

test('statusClass: the five statuses, anything else reads as crashed', () => {
  assert.equal(statusClass('running'), 'nbt-status-running');
  assert.equal(statusClass('interrupted'), 'nbt-status-interrupted');
  assert.equal(statusClass('bogus" onclick="x'), 'nbt-status-crashed');
  assert.equal(statusClass(undefined), 'nbt-status-crashed');
});

test('smooth: debiased EMA, gaps stay gaps, weight 0 is the identity', () => {
  assert.deepEqual(smooth([1, 2, 3], 0), [1, 2, 3]);
  const s = smooth([1, null, 1, 1], 0.9);
  assert.equal(s[1], null);
  assert.ok(Math.abs((s[0] as number) - 1) < 1e-12 && Math.abs((s[3] as number) - 1) < 1e-12); // constant stays constant
  const step = smooth([0, 0, 0, 10, 10, 10], 0.5) as number[];
  assert.ok(step[3] > 0 && step[3] < 10 && step[5] > step[4]);
});

test('minmax keeps every bucket extreme, the first and last point, in order', () => {
  const n = 100000;
  const x = Array.from({ length: n }, (_, i) => i);
  const y = x.map(i => (i === 54321 ? 1000 : i === 777 ? -1000 : Math.sin(i / 1000)));
  const [dx, dy] = minmax(x, y, 500);
  assert.ok(dx.length <= 1002);
  assert.equal(dx[0], 0);
  assert.equal(dx[dx.length - 1], n - 1);
  assert.ok(dx.every((v, i) => i === 0 || v > dx[i - 1]));
  assert.equal(dy[dx.indexOf(54321)], 1000);
  assert.equal(dy[dx.indexOf(777)], -1000);
  const [sx] = minmax([1, 2, 3], [1, 2, 3], 500);
  assert.deepEqual(sx, [1, 2, 3]); // short series untouched
});

test('mergeSeries: replace, append where the held data ends, refuse a gap', () => {
  const first = mergeSeries(undefined, { n: 3, from: 0, replace: true, x: [0, 1, 2], t: [0, 0, 0], y: [1, 2, 3] })!;
  assert.deepEqual(first.x, [0, 1, 2]);
  const more = mergeSeries(first, { n: 5, from: 3, replace: false, x: [3, 4], t: [1, 1], y: [4, 5] })!;
  assert.deepEqual(more.x, [0, 1, 2, 3, 4]);
  assert.equal(more.n, 5);
  assert.equal(mergeSeries(more, { n: 9, from: 7, replace: false, x: [7, 8], t: [1, 1], y: [1, 1] }), null);
  const replaced = mergeSeries(more, { n: 100, from: 0, replace: true, x: [0, 99], t: [0, 1], y: [1, 2] })!;
  assert.deepEqual(replaced.x, [0, 99]);
  // appending forever stays bounded
  let held = first;
  for (let i = 0; i < 40; i++) {
    const from = held.n;
    const xs = Array.from({ length: 1000 }, (_, k) => from + k);
    held = mergeSeries(held, { n: from + 1000, from, replace: false, x: xs, t: xs.map(() => 0), y: xs.map(v => v % 7) })!;
  }
  assert.ok(held.x.length <= MAX_HELD && held.n === 40003);
  assert.equal(held.x[held.x.length - 1], 40002);
});

test('flatten and differingKeys: dotted config keys, missing counts as different', () => {
  assert.deepEqual(flatten({ a: { b: 1, c: { d: 'x' } }, e: [1, 2] }), { 'a.b': 1, 'a.c.d': 'x', e: [1, 2] });
  const records = [{ lr: 0.1, opt: 'adam', seed: 1 }, { lr: 0.2, opt: 'adam', seed: 1, extra: true }];
  assert.deepEqual(differingKeys(records), ['extra', 'lr']);
});

test('compareValues and matchesFilter: numbers as numbers, words anywhere, comparisons on columns', () => {
  const vals = [10, 9, null, 100].sort(compareValues);
  assert.deepEqual(vals, [9, 10, 100, null]);
  assert.ok(compareValues('run-10', 'run-9') > 0);
  const row = { name: 'brave-fox-1', status: 'finished', lr: 0.01, note: 'Adam' };
  assert.ok(matchesFilter(row, ''));
  assert.ok(matchesFilter(row, 'fox adam'));
  assert.ok(matchesFilter(row, 'lr<0.1 status=finished'));
  assert.ok(!matchesFilter(row, 'lr>0.1'));
  assert.ok(!matchesFilter(row, 'wolf'));
  assert.ok(matchesFilter(row, 'lr>=0.01') && matchesFilter(row, 'lr!=0.5'));
});

test('forLog hides values a log axis cannot draw and counts them', () => {
  assert.deepEqual(forLog([1, 0, -2, null, 3]), [[1, null, null, null, 3], 2]);
});
