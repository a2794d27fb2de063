import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import { RunSummary } from '../src/format';
import { ListingReply, MetricsReply, POLL, RunsModel, SeriesModel } from '../src/model';

function run(key: string, status = 'finished', start = 1): RunSummary {
  const [project, id] = key.split('/');
  return { key, id, project, name: id, status, group: null, tags: [], start_time: start, end_time: null, updated_time: null, rows: 0, primary: null };
}

test('RunsModel pages through the first listing, then asks only for changes', async () => {
  const all = Array.from({ length: 5 }, (_, i) => run(`p/r${i}`, 'finished', i));
  const calls: any[] = [];
  let next: ListingReply | null = null;
  const model = new RunsModel(async params => {
    calls.push(params);
    if (params.since !== undefined) {
      return next!;
    }
    const offset = params.offset || 0;
    return { root: '/runs', generation: 7, total: all.length, projects: ['p'], unreadable: 0, runs: all.slice(offset, offset + 2), offset };
  }, 2);
  let emitted = 0;
  model.changed.connect(() => emitted++);
  await model.poll();
  assert.deepEqual(calls.map(c => c.offset), [0, 2, 4]);
  assert.equal(model.runs.size, 5);
  assert.equal(emitted, 1);
  // a run starts: only it comes back; the poll stays fast while it runs
  next = { root: '/runs', generation: 9, total: 6, projects: ['p'], unreadable: 0, changed: [run('p/new', 'running', 9)], removed: ['p/r0'], complete: true };
  const delay = await model.poll();
  assert.equal(calls[calls.length - 1].since, 7);
  assert.ok(model.runs.has('p/new') && !model.runs.has('p/r0'));
  assert.equal(delay, POLL.active);
  assert.equal(model.byProject()[0][1][0].key, 'p/new'); // newest first
  // nothing changes and nothing runs: the delay grows to the idle interval
  next = { root: '/runs', generation: 9, total: 6, projects: ['p'], unreadable: 0, changed: [run('p/new', 'finished', 9)], removed: [], complete: true };
  await model.poll();
  next = { ...next, changed: [] };
  const delays = [];
  for (let i = 0; i < 5; i++) {
    delays.push(await model.poll());
  }
  assert.deepEqual(delays, [2000, 4000, POLL.idle, POLL.idle, POLL.idle]);
  assert.equal(emitted, 3);
});

test('RunsModel backs off on errors and recovers', async () => {
  let fail = true;
  const model = new RunsModel(async () => {
    if (fail) {
      throw new Error('502 Bad Gateway');
    }
    return { root: '/r', generation: 1, total: 0, projects: [], unreadable: 0, runs: [] };
  });
  const delays = [await model.poll(), await model.poll(), await model.poll()];
  assert.deepEqual(delays, [2000, 4000, 8000]);
  assert.match(model.error!, /502/);
  for (let i = 0; i < 10; i++) {
    await model.poll();
  }
  assert.equal(model.delay, POLL.max);
  fail = false;
  await model.poll();
  assert.equal(model.error, null);
});

test('RunsModel re-reads the whole listing when too much changed', async () => {
  let full = 0;
  const model = new RunsModel(async params => {
    if (params.since !== undefined) {
      return { root: '/r', generation: 50, total: 1, projects: [], unreadable: 0, changed: [], removed: [], complete: false };
    }
    full++;
    return { root: '/r', generation: 50, total: 1, projects: ['p'], unreadable: 0, runs: [run('p/a')] };
  });
  await model.poll();
  await model.poll();
  assert.equal(full, 2);
});

test('SeriesModel sends what it holds and folds increments in', async () => {
  const sent: Record<string, number>[] = [];
  const replies: MetricsReply[] = [
    { rows: 3, keys: ['loss'], series: { loss: { n: 3, from: 0, replace: true, x: [0, 1, 2], t: [0, 1, 2], y: [3, 2, 1] } } },
    { rows: 4, keys: ['loss'], series: { loss: { n: 4, from: 3, replace: false, x: [3], t: [3], y: [0.5] } } },
    { rows: 4, keys: ['loss'], series: { loss: { n: 4, from: 4, replace: false, x: [], t: [], y: [] } } },
    // an increment that does not fit (the file was rewritten): asked again whole
    { rows: 10, keys: ['loss'], series: { loss: { n: 10, from: 8, replace: false, x: [8, 9], t: [8, 9], y: [1, 1] } } },
    { rows: 10, keys: ['loss'], series: { loss: { n: 10, from: 0, replace: true, x: [0, 9], t: [0, 9], y: [3, 1] } } }
  ];
  const model = new SeriesModel(async (_keys, have) => {
    sent.push(have);
    return replies.shift()!;
  });
  assert.ok(await model.update());
  assert.ok(await model.update());
  assert.deepEqual(model.series.get('loss')!.x, [0, 1, 2, 3]);
  assert.ok(!(await model.update()));
  assert.ok(await model.update());
  assert.deepEqual(model.series.get('loss')!.x, [0, 9]);
  assert.deepEqual(sent, [{}, { loss: 3 }, { loss: 4 }, { loss: 4 }, {}]);
});

test('SeriesModel: a partial reply (long history still being read) is shown, then replaced', async () => {
  const replies: MetricsReply[] = [
    { rows: 5, keys: ['loss'], series: { loss: { n: 0, from: 0, replace: true, x: [995, 999], t: [0, 0], y: [1, 1] } }, partial: { bytes: 1e8, tail_rows: 5 } },
    { rows: 1000, keys: ['loss'], series: { loss: { n: 1000, from: 0, replace: true, x: [0, 500, 999], t: [0, 0, 0], y: [3, 2, 1] } } }
  ];
  const sent: Record<string, number>[] = [];
  const model = new SeriesModel(async (_k, have) => {
    sent.push(have);
    return replies.shift()!;
  });
  await model.update();
  assert.ok(model.partial);
  assert.deepEqual(model.series.get('loss')!.x, [995, 999]);
  await model.update();
  assert.ok(!model.partial);
  assert.deepEqual(model.series.get('loss')!.x, [0, 500, 999]);
  assert.deepEqual(sent, [{}, { loss: 0 }]);
});
