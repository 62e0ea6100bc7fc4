// The metric contract of roles/monitoring/README.md, as a scrape of /metrics shows it.
// (job_last_run_slot_seconds is tested with the job races in jobs.test.ts.)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Pool } from 'pg';
import { createApp } from '../src/app';
import { PgStore } from '../src/db';
import { DB_BUCKETS, Metrics, UNMATCHED_ROUTE } from '../src/metrics';
import { call, MemoryLocks, MemoryStore, memoryLogger, parseExposition, scrape, valueOf } from './helpers';

const REQUESTS = 'http_requests_total';

describe('http_requests_total and GET /metrics', () => {
  let server: Server;
  let port: number;
  const store = new MemoryStore();
  const metrics = new Metrics();

  before(async () => {
    server = createServer(
      createApp({
        config: { serverId: 'backend-9', release: '1', authSecret: 'metrics-test-secret', authTokenTtlS: 60, healthCheckTimeoutMs: 200 },
        store,
        redis: new MemoryLocks(),
        readiness: () => ({ ready: true }),
        shuttingDown: () => false,
        startedAt: Date.now(),
        log: memoryLogger().log,
        metrics,
      }),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  /** How much each series grew while `requests` ran (the tests share one app). */
  async function growth(requests: () => Promise<void>) {
    const before = await scrape(metrics);
    await requests();
    const now = await scrape(metrics);
    return (labels: Record<string, string>) => (valueOf(now, REQUESTS, labels) ?? 0) - (valueOf(before, REQUESTS, labels) ?? 0);
  }

  test('one count per response, labelled with the route pattern, method and status', async () => {
    const grew = await growth(async () => {
      assert.equal((await call(port, 'GET', '/health')).status, 200);
      assert.equal((await call(port, 'GET', '/health/')).status, 200);
      assert.equal((await call(port, 'HEAD', '/health')).status, 200);
      assert.equal((await call(port, 'DELETE', '/health')).status, 405);
      assert.equal((await call(port, 'POST', '/api/auth/login', { body: '{}' })).status, 400);
    });
    assert.equal(grew({ method: 'GET', route: '/health', status: '200' }), 2, 'a trailing slash is the same route');
    assert.equal(grew({ method: 'HEAD', route: '/health', status: '200' }), 1);
    assert.equal(grew({ method: 'DELETE', route: '/health', status: '405' }), 1);
    assert.equal(grew({ method: 'POST', route: '/api/auth/login', status: '400' }), 1);
  });

  test('5xx responses are counted with their status (Backend5xxRateHigh reads them)', async () => {
    store.failing = new Error('connection terminated');
    try {
      const grew = await growth(async () => {
        assert.equal((await call(port, 'GET', '/health/detailed')).status, 503);
        assert.equal((await call(port, 'GET', '/admin/jobs')).status, 503);
      });
      assert.equal(grew({ method: 'GET', route: '/health/detailed', status: '503' }), 1);
      assert.equal(grew({ method: 'GET', route: '/admin/jobs', status: '503' }), 1);
    } finally {
      store.failing = null;
    }
  });

  test('query strings, ids and unknown paths create no new label values', async () => {
    const grew = await growth(async () => {
      for (const path of ['/api/messages?limit=1', '/api/messages?limit=2&x=secret-q', '/api/messages/']) {
        assert.equal((await call(port, 'GET', path)).status, 401, path);
      }
      for (const path of ['/nope', '/api/messages/12345', '/api/messages/12345?token=secret-t', '/user/a@b.c']) {
        assert.equal((await call(port, 'GET', path)).status, 404, path);
      }
    });
    assert.equal(grew({ method: 'GET', route: '/api/messages', status: '401' }), 3);
    assert.equal(grew({ method: 'GET', route: UNMATCHED_ROUTE, status: '404' }), 4);
    assert.equal(UNMATCHED_ROUTE, 'unmatched');
    const routes = new Set((await scrape(metrics)).filter((s) => s.name === REQUESTS).map((s) => s.labels.route));
    for (const route of routes) {
      assert.ok(route === UNMATCHED_ROUTE || /^\/[a-z/]*$/.test(route), `route label ${route}`);
      assert.doesNotMatch(route, /nope|12345|secret|limit|@|\/$/);
    }
    const text = (await metrics.render()).text;
    assert.doesNotMatch(text, /secret-q|secret-t|12345|a@b\.c/, 'nothing from the request reaches the metrics');
  });

  test('GET /metrics: 200 in the Prometheus text format, not cached, with the three families', async () => {
    const r = await call(port, 'GET', '/metrics');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal(r.headers['cache-control'], 'no-store');
    assert.equal(r.headers['x-server-id'], 'backend-9');
    assert.match(r.text, /^# TYPE http_requests_total counter$/m);
    assert.match(r.text, /^# TYPE db_query_duration_seconds histogram$/m);
    assert.match(r.text, /^# TYPE job_last_run_slot_seconds gauge$/m);
    assert.match(r.text, /^process_cpu_seconds_total \d/m, 'default metrics');
    assert.match(r.text, /^nodejs_eventloop_lag_seconds \d/m, 'default metrics');
    assert.match(r.text, /^http_requests_total\{method="GET",route="\/health",status="200"\} \d+$/m);
    // The scrape itself is counted once it is sent: the next scrape shows it.
    const next = parseExposition((await call(port, 'GET', '/metrics')).text);
    assert.ok((valueOf(next, REQUESTS, { method: 'GET', route: '/metrics', status: '200' }) ?? 0) >= 1);
    assert.equal((await call(port, 'HEAD', '/metrics')).text, '');
  });
});

test('each Metrics has its own registry: two apps in one process do not share counts', async () => {
  const a = new Metrics();
  const b = new Metrics();
  a.countResponse('GET', '/health', 200);
  assert.equal(valueOf(await scrape(a), REQUESTS, { method: 'GET', route: '/health', status: '200' }), 1);
  assert.equal(valueOf(await scrape(b), REQUESTS, { method: 'GET', route: '/health', status: '200' }), undefined);
});

/** A pg Pool that answers each query after `delayMs`, or fails queries matching `fail`. */
function fakePool(opts: { delayMs?: number; fail?: RegExp } = {}): { pool: Pool; texts: string[] } {
  const texts: string[] = [];
  const pool = {
    async query(text: string) {
      texts.push(text);
      await new Promise((r) => setTimeout(r, opts.delayMs ?? 0));
      if (opts.fail?.test(text)) throw new Error('Connection terminated unexpectedly');
      // one row that every PgStore method can read
      return { rows: [{ id: 1, created_at: '2026-01-01T00:00:00Z', ran_at: '2026-01-01T00:00:00Z' }], rowCount: 1 };
    },
  };
  return { pool: pool as unknown as Pool, texts };
}

test('db_query_duration_seconds: PgStore times every query under its operation', async () => {
  const metrics = new Metrics();
  const { pool, texts } = fakePool();
  const store = new PgStore(pool, metrics.timeQuery);
  await store.ping();
  await store.findUser('test@church.com');
  await store.findUser('other@church.com');
  await store.insertMessage({ content: 'c', targetType: 'group', targetIds: ['g'], userId: 1, server: 'b1', release: '1' });
  await store.listMessages(5);
  await store.recordJobRun('recurring-messages:1', 'recurring-messages', 'b1');
  await store.listJobRuns(5);
  assert.equal(texts.length, 7);
  const s = await scrape(metrics);
  const count = (operation: string) => valueOf(s, 'db_query_duration_seconds_count', { operation });
  assert.deepEqual(
    ['ping', 'find_user', 'insert_message', 'list_messages', 'record_job_run', 'list_job_runs'].map(count),
    [1, 2, 1, 1, 1, 1],
  );
  const les = s
    .filter((x) => x.name === 'db_query_duration_seconds_bucket' && x.labels.operation === 'ping')
    .map((x) => x.labels.le);
  // The contract's buckets, written out: 0.1 is DatabaseLatencyHigh's threshold.
  const contract = ['0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '+Inf'];
  assert.deepEqual(les, contract);
  assert.deepEqual([...DB_BUCKETS.map(String), '+Inf'], contract);
  assert.ok(JSON.stringify(s).indexOf('church.com') < 0, 'query parameters never reach a label');
});

test('db_query_duration_seconds: the time is observed in seconds, and failed queries are observed too', async () => {
  const metrics = new Metrics();
  const store = new PgStore(fakePool({ delayMs: 60, fail: /^SELECT 1$/ }).pool, metrics.timeQuery);
  await assert.rejects(store.ping(), /Connection terminated unexpectedly/);
  const s = await scrape(metrics);
  const bucket = (le: string) => valueOf(s, 'db_query_duration_seconds_bucket', { operation: 'ping', le });
  assert.equal(valueOf(s, 'db_query_duration_seconds_count', { operation: 'ping' }), 1, 'the failure was observed');
  assert.equal(bucket('0.05'), 0, 'a 60 ms query is not under 50 ms: seconds, not milliseconds');
  assert.equal(bucket('+Inf'), 1);
  assert.ok(valueOf(s, 'db_query_duration_seconds_sum', { operation: 'ping' })! >= 0.05);
});
