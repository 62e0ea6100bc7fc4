// Recurring jobs that run on exactly one backend per scheduled slot.
//
// Every backend wakes at each multiple of the interval (by its own clock) and computes the same
// run id, `<job>:<floor(t / interval)>`. Two Redis keys decide who runs it:
//   lock:job:<job>          SET NX PX <lock ttl>, value "<server>:<random>", deleted by its owner only
//                           (compare-and-delete in Lua) when the run ends: /admin/locks lists these.
//   jobrun:<job>:<slot>     SET NX PX (2 x interval + lock ttl), never deleted: marks the slot as taken.
// The lock stops two runs of one job overlapping; the slot marker stops a backend whose clock is
// behind from running a slot again after the first backend already finished and released the lock.
// Test only: with bypassLock (JOB_LOCK_TEST_BYPASS) a backend takes neither key and runs every slot,
// so it runs the same slot as another backend: the lab's duplicate-run alert drill.
import { randomBytes } from 'node:crypto';
import type { JobName } from './config';
import { errorMessage, type Logger } from './log';

export interface LockInfo {
  key: string;
  owner: string;
  server: string;
  ttl_ms: number;
}

/** What the job system needs from Redis; the real one is in redis.ts, tests use a fake. */
export interface LockBackend {
  /** SET key value NX PX ttl: true when this call took the key. */
  setNxPx(key: string, value: string, ttlMs: number): Promise<boolean>;
  get(key: string): Promise<string | null>;
  /** Delete key only while it still holds value: true when deleted. */
  compareAndDelete(key: string, value: string): Promise<boolean>;
  /** The job locks currently held. */
  listLocks(): Promise<LockInfo[]>;
}

export const LOCK_PREFIX = 'lock:job:';
export const RUN_PREFIX = 'jobrun:';

export function lockKey(job: string): string {
  return `${LOCK_PREFIX}${job}`;
}

export function runKey(job: string, slot: number): string {
  return `${RUN_PREFIX}${job}:${slot}`;
}

export function slotOf(nowMs: number, intervalMs: number): number {
  return Math.floor(nowMs / intervalMs);
}

export function runIdOf(job: string, slot: number): string {
  return `${job}:${slot}`;
}

/** Unix time in seconds of the start of a slot: the run's identity as a number (job_last_run_slot_seconds). */
export function slotStartSeconds(slot: number, intervalMs: number): number {
  return (slot * intervalMs) / 1000;
}

/** The next slot to run: the next boundary after now, and never one already scheduled. */
export function nextSlot(nowMs: number, intervalMs: number, lastSlot: number | null): number {
  const s = slotOf(nowMs, intervalMs) + 1;
  return lastSlot === null ? s : Math.max(s, lastSlot + 1);
}

/** How long a slot stays marked as taken: covers clock skew of up to one interval plus a full lock. */
export function runMarkerTtlMs(intervalMs: number, lockTtlMs: number): number {
  return 2 * intervalMs + lockTtlMs;
}

export function ownerValue(serverId: string, token: string): string {
  return `${serverId}:${token}`;
}

export function serverOfOwner(owner: string): string {
  const i = owner.lastIndexOf(':');
  return i > 0 ? owner.slice(0, i) : owner;
}

export type Outcome = 'ran' | 'failed' | 'held' | 'busy' | 'error';

export interface JobRunnerOptions {
  serverId: string;
  intervalMs: number;
  lockTtlMs: number;
  jobs: JobName[];
  backend: LockBackend;
  work: (job: JobName, runId: string) => Promise<void>;
  log: Logger;
  /** Told of each run this server executes (metrics.ts sets job_last_run_slot_seconds). */
  metrics?: { jobRunStarted(jobName: string, slotSeconds: number): void };
  /** Test only (JOB_LOCK_TEST_BYPASS): run every slot without the lock or the slot marker. */
  bypassLock?: boolean;
  now?: () => number;
  token?: () => string;
}

export class JobRunner {
  private timer: NodeJS.Timeout | null = null;
  private lastSlot: number | null = null;
  private stopped = true;
  private readonly running = new Set<JobName>();
  private readonly inFlight = new Set<Promise<Outcome>>();
  private readonly now: () => number;
  private readonly token: () => string;

  constructor(private readonly o: JobRunnerOptions) {
    this.now = o.now ?? Date.now;
    this.token = o.token ?? (() => randomBytes(8).toString('hex'));
  }

  /**
   * Try to run one job for one slot. Logs exactly one of the two lock lines unless Redis failed,
   * or with bypassLock the bypass line instead (and never touches Redis).
   */
  async runSlot(job: JobName, slot: number): Promise<Outcome> {
    const { serverId, backend, log } = this.o;
    const run = runIdOf(job, slot);
    if (this.running.has(job)) {
      log('WARN', `Job still running on this server, skipping: ${job}`, { run });
      return 'busy';
    }
    this.running.add(job);
    try {
      if (this.o.bypassLock) {
        log('WARN', `Job lock bypassed (JOB_LOCK_TEST_BYPASS): ${job}`, { run });
        return await this.execute(job, slot); // await: the job stays in `running` until the run ends
      }
      const key = lockKey(job);
      const owner = ownerValue(serverId, this.token());
      let holder: string | null = null;
      let took: boolean;
      try {
        took = await backend.setNxPx(key, owner, this.o.lockTtlMs);
        if (!took) {
          // The holder, or if it finished meanwhile, whoever took this slot.
          holder =
            (await backend.get(key).catch(() => null)) ?? (await backend.get(runKey(job, slot)).catch(() => null));
        } else if (!(await backend.setNxPx(runKey(job, slot), serverId, runMarkerTtlMs(this.o.intervalMs, this.o.lockTtlMs)))) {
          // Another backend already ran this slot (its clock is ahead of ours) and released the lock.
          holder = await backend.get(runKey(job, slot)).catch(() => null);
          await backend.compareAndDelete(key, owner).catch(() => false);
          took = false;
        }
      } catch (e) {
        log('ERROR', `Job lock error: ${job}`, { run, error: errorMessage(e) });
        return 'error';
      }
      if (!took) {
        log('INFO', `Job lock held by another server: ${job}`, { run, holder: holder ? serverOfOwner(holder) : 'unknown' });
        return 'held';
      }

      log('INFO', `Acquired lock for job: ${job}`, { run });
      const outcome = await this.execute(job, slot);
      try {
        if (!(await backend.compareAndDelete(key, owner))) {
          log('WARN', `Job lock expired before release: ${job}`, { run, lock_ttl_ms: this.o.lockTtlMs });
        }
      } catch (e) {
        log('WARN', `Job lock release failed (it expires by itself): ${job}`, { run, error: errorMessage(e) });
      }
      return outcome;
    } finally {
      this.running.delete(job);
    }
  }

  /** Execute one run: called holding both the lock and the slot marker, or with the lock bypassed. */
  private async execute(job: JobName, slot: number): Promise<Outcome> {
    const { log } = this.o;
    const run = runIdOf(job, slot);
    // Only here: a server that lost the lock or the slot never reports the slot, so two servers
    // reporting the same one means the run really executed twice. Set before the work, so a
    // duplicate shows while both runs are still going (and failed runs count too).
    this.o.metrics?.jobRunStarted(job, slotStartSeconds(slot, this.o.intervalMs));
    const started = this.now();
    try {
      await this.o.work(job, run);
      log('INFO', `Job completed: ${job}`, { run, duration_ms: this.now() - started });
      return 'ran';
    } catch (e) {
      log('ERROR', `Job failed: ${job}`, { run, duration_ms: this.now() - started, error: errorMessage(e) });
      return 'failed';
    }
  }

  /** Run every job for one slot, concurrently. */
  runAll(slot: number): Promise<Outcome[]> {
    return Promise.all(
      this.o.jobs.map((job) => {
        const p = this.runSlot(job, slot);
        this.inFlight.add(p);
        void p.finally(() => this.inFlight.delete(p));
        return p;
      }),
    );
  }

  start(): void {
    if (this.o.jobs.length === 0 || this.o.intervalMs <= 0 || !this.stopped) return;
    this.stopped = false;
    this.o.log('INFO', 'Job scheduler started', {
      jobs: this.o.jobs.join(','),
      interval_ms: this.o.intervalMs,
      lock_ttl_ms: this.o.lockTtlMs,
    });
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    const now = this.now();
    const slot = nextSlot(now, this.o.intervalMs, this.lastSlot);
    this.lastSlot = slot;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.runAll(slot);
      this.schedule();
    }, Math.max(0, slot * this.o.intervalMs - now));
  }

  /** Stop scheduling and wait for runs in progress (their locks are released as usual). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await Promise.allSettled([...this.inFlight]);
  }
}
