import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { JobName } from '../src/config';
import {
  JobRunner,
  lockKey,
  nextSlot,
  runIdOf,
  runKey,
  runMarkerTtlMs,
  serverOfOwner,
  slotOf,
  slotStartSeconds,
} from '../src/jobs';
import { formatLine } from '../src/log';
import { Metrics } from '../src/metrics';
import { MemoryLocks, memoryLogger, scrape, valueOf } from './helpers';

const JOB: JobName = 'recurring-messages';

function runner(
  serverId: string,
  locks: MemoryLocks,
  opts: { now?: () => number; work?: () => Promise<void>; bypassLock?: boolean } = {},
) {
  const { log, lines } = memoryLogger();
  const ran: string[] = [];
  const metrics = new Metrics();
  const r = new JobRunner({
    serverId,
    intervalMs: 2000,
    lockTtlMs: 2000,
    jobs: [JOB, 'phone-recovery'],
    backend: locks,
    log,
    metrics,
    now: opts.now,
    bypassLock: opts.bypassLock,
    work: async (_job, runId) => {
      ran.push(runId);
      if (opts.work) await opts.work();
    },
  });
  /** job_last_run_slot_seconds of this server, undefined while it has executed no run of the job. */
  const lastSlot = async (job: string = JOB) => valueOf(await scrape(metrics), 'job_last_run_slot_seconds', { job_name: job });
  return { r, lines, ran, lastSlot };
}

test('run ids are the same on every backend for the same slot', () => {
  assert.equal(slotOf(10_000, 2000), 5);
  assert.equal(slotOf(11_999, 2000), 5);
  assert.equal(runIdOf(JOB, 5), 'recurring-messages:5');
  assert.equal(lockKey(JOB), 'lock:job:recurring-messages');
  assert.equal(runKey(JOB, 5), 'jobrun:recurring-messages:5');
  assert.equal(serverOfOwner('backend-1:abcdef'), 'backend-1');
});

test('the scheduler never runs a slot twice, even when a timer fires early', () => {
  assert.equal(nextSlot(10_000, 2000, null), 6);
  // timer for slot 6 fired 1 ms early: the next one is 7, not 6 again
  assert.equal(nextSlot(11_999, 2000, 6), 7);
  assert.equal(nextSlot(20_000, 2000, 6), 11);
});

test('the slot marker outlives clock skew of a whole interval plus a full lock', () => {
  assert.equal(runMarkerTtlMs(2000, 2000), 6000);
});

test('two backends racing for one slot: exactly one runs it', async () => {
  const locks = new MemoryLocks();
  const a = runner('backend-1', locks);
  const b = runner('backend-2', locks);
  const [ra, rb] = await Promise.all([a.r.runSlot(JOB, 42), b.r.runSlot(JOB, 42)]);
  assert.deepEqual([ra, rb].sort(), ['held', 'ran']);
  assert.equal(a.ran.length + b.ran.length, 1);
  const winner = ra === 'ran' ? a : b;
  const loser = ra === 'ran' ? b : a;
  assert.ok(winner.lines.some((l) => l.message === 'Acquired lock for job: recurring-messages' && l.fields.run === 'recurring-messages:42'));
  const held = loser.lines.find((l) => l.message === 'Job lock held by another server: recurring-messages');
  assert.ok(held, JSON.stringify(loser.lines));
  assert.equal(held.fields.run, 'recurring-messages:42');
  assert.deepEqual(await locks.listLocks(), [], 'the lock is released after the run');
});

test('a backend whose clock is behind does not rerun a slot already done', async () => {
  let t = 84_000;
  const locks = new MemoryLocks(() => t);
  const a = runner('backend-1', locks, { now: () => t });
  const b = runner('backend-2', locks, { now: () => t });
  assert.equal(await a.r.runSlot(JOB, 42), 'ran');
  assert.deepEqual(await locks.listLocks(), [], 'lock released');
  t += 1500; // backend-2's clock is 1.5 s behind: it reaches slot 42 after backend-1 finished
  assert.equal(await b.r.runSlot(JOB, 42), 'held');
  assert.deepEqual(b.ran, []);
  assert.equal(b.lines.at(-1)?.fields.holder, 'backend-1');
  assert.deepEqual(await locks.listLocks(), [], 'the late backend released the lock it took');
  assert.equal(await b.r.runSlot(JOB, 43), 'ran', 'the next slot is free again');
});

test('many slots, three backends in random order: each run id runs exactly once', async () => {
  const locks = new MemoryLocks();
  const rs = ['b1', 'b2', 'b3'].map((s) => runner(s, locks));
  for (let slot = 0; slot < 50; slot++) {
    const order = [...rs].sort(() => Math.random() - 0.5);
    await Promise.all(order.map((x) => x.r.runSlot(JOB, slot)));
  }
  const all = rs.flatMap((x) => x.ran);
  assert.equal(all.length, 50);
  assert.equal(new Set(all).size, 50);
});

test('release is compare-and-delete: an expired lock now held by another server is left alone', async () => {
  let t = 0;
  const locks = new MemoryLocks(() => t);
  const a = runner('backend-1', locks, {
    now: () => t,
    work: async () => {
      t += 2500; // the job outlives its 2 s lock ...
      assert.equal(await locks.setNxPx(lockKey(JOB), 'backend-2:other', 5000), true); // ... and backend-2 takes it
    },
  });
  assert.equal(await a.r.runSlot(JOB, 1), 'ran');
  assert.ok(a.lines.some((l) => l.level === 'WARN' && l.message === 'Job lock expired before release: recurring-messages'));
  assert.equal(await locks.get(lockKey(JOB)), 'backend-2:other', "backend-2's lock survived backend-1's release");
});

test('a lock held by a still-running job blocks the next slot on the other backend', async () => {
  const locks = new MemoryLocks();
  let finish!: () => void;
  const a = runner('backend-1', locks, { work: () => new Promise<void>((r) => (finish = r)) });
  const b = runner('backend-2', locks);
  const running = a.r.runSlot(JOB, 1);
  await new Promise((r) => setImmediate(r));
  const listed = await locks.listLocks();
  assert.equal(listed.length, 1);
  assert.equal(listed[0].key, 'lock:job:recurring-messages');
  assert.equal(listed[0].server, 'backend-1');
  assert.equal(await b.r.runSlot(JOB, 2), 'held');
  assert.equal(await a.r.runSlot(JOB, 2), 'busy', 'the same server does not overlap itself');
  finish();
  assert.equal(await running, 'ran');
  assert.deepEqual(await locks.listLocks(), []);
});

test('a failing job still releases its lock', async () => {
  const locks = new MemoryLocks();
  const a = runner('backend-1', locks, { work: async () => Promise.reject(new Error('db down')) });
  assert.equal(await a.r.runSlot(JOB, 1), 'failed');
  assert.ok(a.lines.some((l) => l.level === 'ERROR' && l.message === 'Job failed: recurring-messages' && l.fields.error === 'db down'));
  assert.deepEqual(await locks.listLocks(), []);
});

test('Redis down: nothing runs and the error is logged', async () => {
  const locks = new MemoryLocks();
  locks.failing = new Error('Connection is closed.');
  const a = runner('backend-1', locks);
  assert.equal(await a.r.runSlot(JOB, 1), 'error');
  assert.deepEqual(a.ran, []);
  assert.ok(a.lines.some((l) => l.message === 'Job lock error: recurring-messages'));
});

test('the log lines are greppable in the documented form', () => {
  const line = formatLine(new Date(0), 'INFO', 'Acquired lock for job: recurring-messages', 'backend-1', {
    run: 'recurring-messages:42',
  });
  assert.equal(
    line,
    '1970-01-01T00:00:00.000Z INFO Acquired lock for job: recurring-messages server=backend-1 run=recurring-messages:42',
  );
});

test('real timers: two schedulers on a 100 ms interval share every slot without duplicates', async () => {
  const locks = new MemoryLocks();
  const ran: string[] = [];
  const mk = (serverId: string) =>
    new JobRunner({
      serverId,
      intervalMs: 100,
      lockTtlMs: 100,
      jobs: [JOB],
      backend: locks,
      log: () => undefined,
      work: async (_j, runId) => {
        ran.push(runId);
      },
    });
  const a = mk('b1');
  const b = mk('b2');
  a.start();
  b.start();
  await new Promise((r) => setTimeout(r, 1050));
  await Promise.all([a.stop(), b.stop()]);
  assert.ok(ran.length >= 8, `ran ${ran.length} slots`);
  assert.equal(new Set(ran).size, ran.length, `duplicates in ${ran.join(' ')}`);
  const slots = ran.map((r) => Number(r.split(':')[1])).sort((x, y) => x - y);
  assert.equal(slots.at(-1)! - slots[0] + 1, slots.length, `a slot was skipped: ${slots.join(',')}`);
});

test('a run is identified by the Unix time of its slot start', () => {
  const interval = 300_000; // the default JOB_INTERVAL_MS
  const slot = slotOf(Date.parse('2026-01-01T00:07:31Z'), interval);
  assert.equal(runIdOf(JOB, slot), 'recurring-messages:5890753');
  assert.equal(slotStartSeconds(slot, interval), Date.parse('2026-01-01T00:05:00Z') / 1000);
  assert.equal(slotStartSeconds(42, 2000), 84);
});

test('job_last_run_slot_seconds: set to the slot by the server that ran it, never by the one that lost the lock', async () => {
  const locks = new MemoryLocks();
  const a = runner('backend-1', locks);
  const b = runner('backend-2', locks);
  const [ra] = await Promise.all([a.r.runSlot(JOB, 42), b.r.runSlot(JOB, 42)]);
  const [winner, loser] = ra === 'ran' ? [a, b] : [b, a];
  assert.equal(await winner.lastSlot(), 84, 'slot 42 of a 2 s interval starts at Unix time 84');
  assert.equal(await loser.lastSlot(), undefined, 'the server that lost the lock reports nothing');
  assert.equal(await winner.lastSlot('phone-recovery'), undefined, 'only the job that ran');
  assert.equal(await loser.r.runSlot(JOB, 43), 'ran');
  assert.equal(await loser.lastSlot(), 86);
  assert.equal(await winner.lastSlot(), 84, 'unchanged until this server runs the job again');
});

test('job_last_run_slot_seconds: a late backend that took the lock but found the slot done does not set it', async () => {
  let t = 84_000;
  const locks = new MemoryLocks(() => t);
  const a = runner('backend-1', locks, { now: () => t });
  const b = runner('backend-2', locks, { now: () => t });
  assert.equal(await a.r.runSlot(JOB, 42), 'ran');
  t += 1500;
  assert.equal(await b.r.runSlot(JOB, 42), 'held');
  assert.equal(await b.lastSlot(), undefined);
  assert.equal(await a.lastSlot(), 84);
});

test('job_last_run_slot_seconds: a failed run was still executed; one that never got the lock (Redis down) was not', async () => {
  const locks = new MemoryLocks();
  const a = runner('backend-1', locks, { work: async () => Promise.reject(new Error('db down')) });
  assert.equal(await a.r.runSlot(JOB, 7), 'failed');
  assert.equal(await a.lastSlot(), 14);
  locks.failing = new Error('Connection is closed.');
  assert.equal(await a.r.runSlot(JOB, 8), 'error');
  assert.equal(await a.lastSlot(), 14);
});

test('many slots, three backends in random order: no two ever report the same slot (ScheduledJobRanTwice)', async () => {
  const locks = new MemoryLocks();
  const rs = ['b1', 'b2', 'b3'].map((s) => runner(s, locks));
  for (let slot = 0; slot < 30; slot++) {
    const order = [...rs].sort(() => Math.random() - 0.5);
    await Promise.all(order.map((x) => x.r.runSlot(JOB, slot)));
    const reported = (await Promise.all(rs.map((x) => x.lastSlot()))).filter((v) => v !== undefined);
    assert.equal(new Set(reported).size, reported.length, `slot ${slot}: ${reported.join(' ')}`);
    assert.ok(reported.includes(slot * 2), `slot ${slot} is reported by the server that ran it`);
  }
});

/** A MemoryLocks that records every call made to it. */
class RecordingLocks extends MemoryLocks {
  readonly calls: string[] = [];
  override async setNxPx(key: string, value: string, ttlMs: number) {
    this.calls.push(`setNxPx ${key}`);
    return super.setNxPx(key, value, ttlMs);
  }
  override async get(key: string) {
    this.calls.push(`get ${key}`);
    return super.get(key);
  }
  override async compareAndDelete(key: string, value: string) {
    this.calls.push(`compareAndDelete ${key}`);
    return super.compareAndDelete(key, value);
  }
}

test('JOB_LOCK_TEST_BYPASS: runs the slot while another server holds the lock, without touching Redis', async () => {
  const locks = new RecordingLocks();
  locks.keys.set(lockKey(JOB), { value: 'backend-1:other', expiresAt: Date.now() + 60_000 });
  const b = runner('backend-2', locks, { bypassLock: true });
  assert.equal(await b.r.runSlot(JOB, 42), 'ran');
  assert.deepEqual(b.ran, ['recurring-messages:42']);
  assert.equal(await b.lastSlot(), 84, 'jobRunStarted with the slot start: 42 x 2 s');
  assert.deepEqual(locks.calls, [], 'no setNxPx, get or compareAndDelete');
  const bypassed = b.lines.filter((l) => l.message === 'Job lock bypassed (JOB_LOCK_TEST_BYPASS): recurring-messages');
  assert.equal(bypassed.length, 1, JSON.stringify(b.lines));
  assert.equal(bypassed[0].level, 'WARN');
  assert.equal(bypassed[0].fields.run, 'recurring-messages:42');
  assert.ok(!b.lines.some((l) => l.message.startsWith('Acquired lock for job')), 'a bypass is not a lock acquisition');
  assert.ok(b.lines.some((l) => l.message === 'Job completed: recurring-messages'));
  assert.equal(await locks.get(lockKey(JOB)), 'backend-1:other', "the other server's lock is left alone");
  assert.equal(locks.keys.has(runKey(JOB, 42)), false, 'no slot marker');
});

test('JOB_LOCK_TEST_BYPASS: next to a normal server both run the same slot and report it (ScheduledJobRanTwice)', async () => {
  const locks = new MemoryLocks();
  let finish!: () => void;
  const a = runner('backend-1', locks, { work: () => new Promise<void>((r) => (finish = r)) });
  const b = runner('backend-2', locks, { bypassLock: true });
  const running = a.r.runSlot(JOB, 42);
  await new Promise((r) => setImmediate(r));
  assert.equal((await locks.listLocks())[0]?.server, 'backend-1', 'backend-1 holds the lock');
  assert.equal(await b.r.runSlot(JOB, 42), 'ran');
  finish();
  assert.equal(await running, 'ran');
  assert.deepEqual([...a.ran, ...b.ran], ['recurring-messages:42', 'recurring-messages:42']);
  assert.equal(await a.lastSlot(), 84);
  assert.equal(await b.lastSlot(), 84, 'both servers report slot 42');
});

test('JOB_LOCK_TEST_BYPASS: a job still running on this server is skipped, and a failed run is reported as failed', async () => {
  const locks = new RecordingLocks();
  let finish!: () => void;
  const b = runner('backend-2', locks, { bypassLock: true, work: () => new Promise<void>((r) => (finish = r)) });
  const running = b.r.runSlot(JOB, 1);
  await new Promise((r) => setImmediate(r));
  assert.equal(await b.r.runSlot(JOB, 2), 'busy', 'the same server does not overlap itself');
  finish();
  assert.equal(await running, 'ran');

  const c = runner('backend-3', locks, { bypassLock: true, work: async () => Promise.reject(new Error('db down')) });
  assert.equal(await c.r.runSlot(JOB, 7), 'failed');
  assert.ok(c.lines.some((l) => l.level === 'ERROR' && l.message === 'Job failed: recurring-messages' && l.fields.error === 'db down'));
  assert.equal(await c.lastSlot(), 14, 'a failed run was still executed');
  assert.deepEqual(locks.calls, []);
});
