// Against real services, when the lab provides them:
//   TEST_REDIS_URL=redis://127.0.0.1:6380/0 TEST_DATABASE_URL=postgresql://... npm test
// Without these variables the tests are reported as skipped.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPool, migrate, PgStore } from '../src/db';
import { JobRunner, lockKey, runKey } from '../src/jobs';
import { Metrics } from '../src/metrics';
import { verifyPassword } from '../src/password';
import { createRedis, RedisLocks } from '../src/redis';
import { memoryLogger, scrape, valueOf } from './helpers';

const REDIS = process.env.TEST_REDIS_URL;
const DB = process.env.TEST_DATABASE_URL;

async function connected(url: string) {
  const client = createRedis(url, memoryLogger().log);
  await new Promise<void>((resolve, reject) => {
    client.once('ready', () => resolve());
    setTimeout(() => reject(new Error(`Redis at ${url} not ready`)), 3000);
  });
  return client;
}

describe('real Redis', { skip: REDIS ? false : 'TEST_REDIS_URL not set' }, () => {
  test('SET NX PX, compare-and-delete and the lock listing', async () => {
    const client = await connected(REDIS!);
    const locks = new RedisLocks(client);
    const key = lockKey('phone-recovery');
    try {
      await client.del(key);
      assert.equal(await locks.setNxPx(key, 'it-1:aaa', 5000), true);
      assert.equal(await locks.setNxPx(key, 'it-2:bbb', 5000), false);
      const listed = (await locks.listLocks()).find((l) => l.key === key);
      assert.equal(listed?.server, 'it-1');
      assert.ok(listed!.ttl_ms > 0 && listed!.ttl_ms <= 5000);
      assert.equal(await locks.compareAndDelete(key, 'it-2:bbb'), false, 'not the owner: kept');
      assert.equal(await locks.get(key), 'it-1:aaa');
      assert.equal(await locks.compareAndDelete(key, 'it-1:aaa'), true);
      assert.equal(await locks.get(key), null);
    } finally {
      await client.del(key);
      await client.quit();
    }
  });

  test('three runners racing over 20 slots: each slot runs once', async () => {
    const clients = await Promise.all([1, 2, 3].map(() => connected(REDIS!)));
    const ran: string[] = [];
    const runners = clients.map(
      (c, i) =>
        new JobRunner({
          serverId: `it-${i}`,
          intervalMs: 1000,
          lockTtlMs: 1000,
          jobs: ['recurring-messages'],
          backend: new RedisLocks(c),
          log: () => undefined,
          work: async (_j, runId) => {
            ran.push(runId);
          },
        }),
    );
    // far-future slots so a running lab backend never collides with these
    const base = 9e12 + Math.floor(Math.random() * 1e6) * 100;
    try {
      for (let s = base; s < base + 20; s++) await Promise.all(runners.map((r) => r.runSlot('recurring-messages', s)));
      assert.equal(ran.length, 20);
      assert.equal(new Set(ran).size, 20);
    } finally {
      for (let s = base; s < base + 20; s++) await clients[0].del(runKey('recurring-messages', s));
      await Promise.all(clients.map((c) => c.quit()));
    }
  });
});

describe('real PostgreSQL', { skip: DB ? false : 'TEST_DATABASE_URL not set' }, () => {
  test('concurrent migrations are serialised and idempotent; the seed user can log in', async () => {
    const log = memoryLogger().log;
    const pools = [createPool(DB!, 1, log), createPool(DB!, 1, log), createPool(DB!, 1, log)];
    try {
      await migrate(pools[0], { email: 'it-user@example.org', password: 'pw-0' }); // tables exist from here on
      await pools[0].query('DELETE FROM users WHERE email = $1', ['it-user@example.org']);
      const results = await Promise.all(pools.map((p) => migrate(p, { email: 'it-user@example.org', password: 'pw-1' })));
      assert.deepEqual(results.map((r) => r.seedUser).sort(), ['created', 'unchanged', 'unchanged']);
      const again = await migrate(pools[0], { email: 'it-user@example.org', password: 'pw-1' });
      assert.deepEqual(again, { applied: [], seedUser: 'unchanged' });
      const changed = await migrate(pools[0], { email: 'it-user@example.org', password: 'pw-2' });
      assert.equal(changed.seedUser, 'updated', 'a new SEED_USER_PASSWORD takes effect');
      const metrics = new Metrics();
      const store = new PgStore(pools[0], metrics.timeQuery);
      const user = await store.findUser('it-user@example.org');
      assert.ok(user && (await verifyPassword('pw-2', user.password_hash)));
      const row = await store.insertMessage({
        content: 'integration',
        targetType: 'group',
        targetIds: ['a', 'b'],
        userId: user.id,
        server: 'it',
        release: 'test',
      });
      assert.deepEqual(row.target_ids, ['a', 'b']);
      assert.ok((await store.listMessages(5)).some((m) => m.id === row.id));
      const s = await scrape(metrics);
      for (const operation of ['find_user', 'insert_message', 'list_messages']) {
        assert.equal(valueOf(s, 'db_query_duration_seconds_count', { operation }), 1, operation);
        assert.ok(valueOf(s, 'db_query_duration_seconds_sum', { operation })! > 0, operation);
      }
      await pools[0].query('DELETE FROM messages WHERE id = $1', [row.id]);
      await pools[0].query('DELETE FROM users WHERE email = $1', ['it-user@example.org']);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
  });
});
