import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp, type Readiness } from '../src/app';
import { Metrics } from '../src/metrics';
import { hashPassword } from '../src/password';
import { signToken, verifyToken } from '../src/token';
import { call, MemoryLocks, MemoryStore, memoryLogger } from './helpers';

const SECRET = 'http-test-secret-0123456789';

describe('HTTP API with fake database and Redis', () => {
  let server: Server;
  let port: number;
  const store = new MemoryStore();
  const locks = new MemoryLocks();
  const { log, lines } = memoryLogger();
  let readiness: Readiness = { ready: true };
  let shuttingDown = false;
  let token = '';

  before(async () => {
    store.users.push({ id: 1, email: 'test@church.com', password_hash: await hashPassword('password') });
    server = createServer(
      createApp({
        config: { serverId: 'backend-7', release: '1.1.0', authSecret: SECRET, authTokenTtlS: 600, healthCheckTimeoutMs: 200 },
        store,
        redis: locks,
        readiness: () => readiness,
        shuttingDown: () => shuttingDown,
        startedAt: Date.now() - 5000,
        log,
        metrics: new Metrics(),
      }),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
    token = signToken({ id: 1, email: 'test@church.com' }, SECRET, 600);
  });
  after(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => {
    store.failing = null;
    store.hang = false;
    locks.failing = null;
    readiness = { ready: true };
    shuttingDown = false;
  });

  test('GET /health: 200 ok with timestamp and X-Server-Id', async () => {
    const r = await call(port, 'GET', '/health');
    assert.equal(r.status, 200);
    assert.equal(r.json.status, 'ok');
    assert.ok(!Number.isNaN(Date.parse(r.json.timestamp)));
    assert.equal(r.headers['x-server-id'], 'backend-7');
  });

  test('GET /health/live: alive with uptime in seconds', async () => {
    const r = await call(port, 'GET', '/health/live');
    assert.equal(r.status, 200);
    assert.equal(r.json.alive, true);
    assert.ok(r.json.uptime >= 5 && r.json.uptime < 60, String(r.json.uptime));
  });

  test('GET /health/detailed: healthy when both checks pass', async () => {
    const r = await call(port, 'GET', '/health/detailed');
    assert.equal(r.status, 200);
    assert.equal(r.json.status, 'healthy');
    assert.deepEqual(r.json.checks, { database: 'ok', redis: 'ok' });
    assert.equal(r.json.release, '1.1.0');
    assert.equal(r.json.server, 'backend-7');
  });

  test('GET /health/detailed: 503 naming the failed database', async () => {
    store.failing = new Error('connect ECONNREFUSED 127.0.0.1:6432');
    const r = await call(port, 'GET', '/health/detailed');
    assert.equal(r.status, 503);
    assert.equal(r.json.status, 'unhealthy');
    assert.equal(r.json.checks.database, 'error: connect ECONNREFUSED 127.0.0.1:6432');
    assert.equal(r.json.checks.redis, 'ok');
  });

  test('GET /health/detailed: a hanging database times out instead of hanging the check', async () => {
    store.hang = true;
    const started = Date.now();
    const r = await call(port, 'GET', '/health/detailed');
    assert.equal(r.status, 503);
    assert.equal(r.json.checks.database, 'error: timed out after 200ms');
    assert.ok(Date.now() - started < 2000);
  });

  test('GET /health/detailed: 503 naming the failed Redis', async () => {
    locks.failing = new Error("Stream isn't writeable");
    const r = await call(port, 'GET', '/health/detailed');
    assert.equal(r.status, 503);
    assert.equal(r.json.checks.database, 'ok');
    assert.match(r.json.checks.redis, /^error: /);
  });

  test('GET /health/ready: 200 when ready, 503 with a reason otherwise', async () => {
    assert.equal((await call(port, 'GET', '/health/ready')).json.ready, true);
    readiness = { ready: false, reason: 'database not reached yet: ECONNREFUSED' };
    const r = await call(port, 'GET', '/health/ready');
    assert.equal(r.status, 503);
    assert.deepEqual([r.json.ready, r.json.reason], [false, 'database not reached yet: ECONNREFUSED']);
  });

  test('while shutting down, responses close the keep-alive connection', async () => {
    shuttingDown = true;
    readiness = { ready: false, reason: 'shutting down' };
    const r = await call(port, 'GET', '/health/ready');
    assert.equal(r.status, 503);
    assert.equal(r.headers.connection, 'close');
  });

  test('POST /api/auth/login: the seeded user gets a valid token', async () => {
    const r = await call(port, 'POST', '/api/auth/login', { body: { email: 'TEST@church.com', password: 'password' } });
    assert.equal(r.status, 200);
    const v = verifyToken(r.json.token, SECRET);
    assert.ok(v.ok && v.claims.email === 'test@church.com');
  });

  test('POST /api/auth/login: wrong password or unknown user is 401', async () => {
    assert.equal((await call(port, 'POST', '/api/auth/login', { body: { email: 'test@church.com', password: 'nope' } })).status, 401);
    assert.equal((await call(port, 'POST', '/api/auth/login', { body: { email: 'who@x.org', password: 'password' } })).status, 401);
  });

  test('POST /api/auth/login: bad input is 400, never 5xx', async () => {
    for (const body of ['', 'not json', '{"email":', '[]', '{}', '{"email":"x","password":"y"}', 'null']) {
      const r = await call(port, 'POST', '/api/auth/login', { body });
      assert.equal(r.status, 400, `${body} -> ${r.status} ${r.text}`);
      assert.equal(r.headers['x-server-id'], 'backend-7');
    }
  });

  test('POST /api/auth/login: an oversized body is 413', async () => {
    const r = await call(port, 'POST', '/api/auth/login', { body: JSON.stringify({ email: 'a@b.c', password: 'x'.repeat(70000) }) });
    assert.equal(r.status, 413);
  });

  test('POST /api/auth/login: database down is 503, not a crash', async () => {
    store.failing = new Error('connection terminated');
    const r = await call(port, 'POST', '/api/auth/login', { body: { email: 'test@church.com', password: 'password' } });
    assert.equal(r.status, 503);
    assert.match(r.json.error, /database unavailable: connection terminated/);
    assert.ok(lines.some((l) => l.level === 'ERROR' && l.fields.status === 503));
  });

  test('POST /api/messages: 201 with the inserted row', async () => {
    const r = await call(port, 'POST', '/api/messages', {
      headers: { Authorization: `Bearer ${token}` },
      body: { content: 'test', targetType: 'group', targetIds: ['group-id'] },
    });
    assert.equal(r.status, 201, r.text);
    assert.equal(typeof r.json.id, 'number');
    assert.equal(r.json.server, 'backend-7');
    assert.equal(r.json.release, '1.1.0');
    assert.equal(r.json.user_id, 1);
    assert.deepEqual(r.json.target_ids, ['group-id']);
    assert.ok(r.json.created_at);
  });

  test('POST /api/messages: 401 without, with a bad, or with a foreign token', async () => {
    const body = { content: 'test', targetType: 'group', targetIds: ['g'] };
    const foreign = signToken({ id: 1, email: 'x@y.z' }, 'some-other-secret-123456', 600);
    const variants: Record<string, string>[] = [{}, { Authorization: 'Bearer token' }, { Authorization: `Bearer ${foreign}` }, { Authorization: 'Basic abc' }];
    for (const headers of variants) {
      const r = await call(port, 'POST', '/api/messages', { headers, body });
      assert.equal(r.status, 401, JSON.stringify(headers));
    }
  });

  test('POST /api/messages: 400 listing what is wrong', async () => {
    const r = await call(port, 'POST', '/api/messages', {
      headers: { Authorization: `Bearer ${token}` },
      body: { content: '', targetIds: 'x' },
    });
    assert.equal(r.status, 400);
    assert.equal(r.json.details.length, 3);
  });

  test('GET /api/messages: recent rows, newest first, limit bounded', async () => {
    const auth = { Authorization: `Bearer ${token}` };
    await call(port, 'POST', '/api/messages', { headers: auth, body: { content: 'second', targetType: 'group', targetIds: ['g'] } });
    const r = await call(port, 'GET', '/api/messages?limit=1', { headers: auth });
    assert.equal(r.status, 200);
    assert.equal(r.json.messages.length, 1);
    assert.equal(r.json.messages[0].content, 'second');
    assert.equal((await call(port, 'GET', '/api/messages?limit=1000', { headers: auth })).status, 400);
    assert.equal((await call(port, 'GET', '/api/messages')).status, 401);
  });

  test('GET /admin/locks: [] when none, the held locks otherwise', async () => {
    const r = await call(port, 'GET', '/admin/locks');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, []);
    await locks.setNxPx('lock:job:phone-recovery', 'backend-3:abc', 30000);
    await locks.setNxPx('jobrun:phone-recovery:1', 'backend-3', 30000);
    const held = (await call(port, 'GET', '/admin/locks')).json;
    assert.equal(held.length, 1, 'slot markers are not locks');
    assert.equal(held[0].key, 'lock:job:phone-recovery');
    assert.equal(held[0].owner, 'backend-3:abc');
    assert.equal(held[0].server, 'backend-3');
    assert.ok(held[0].ttl_ms > 0 && held[0].ttl_ms <= 30000);
    locks.keys.clear();
  });

  test('GET /admin/locks: Redis down is 503', async () => {
    locks.failing = new Error('Connection is closed.');
    assert.equal((await call(port, 'GET', '/admin/locks')).status, 503);
  });

  test('GET /api/slow: waits the requested time, bounded', async () => {
    const started = Date.now();
    const r = await call(port, 'GET', '/api/slow?ms=300');
    assert.equal(r.status, 200);
    assert.ok(Date.now() - started >= 290);
    assert.equal((await call(port, 'GET', '/api/slow?ms=10001')).status, 400);
    assert.equal((await call(port, 'GET', '/api/slow?ms=abc')).status, 400);
  });

  test('unknown paths are 404, wrong methods 405 with Allow', async () => {
    const nf = await call(port, 'GET', '/nope');
    assert.equal(nf.status, 404);
    assert.equal(nf.headers['x-server-id'], 'backend-7');
    const na = await call(port, 'DELETE', '/health');
    assert.equal(na.status, 405);
    assert.equal(na.headers.allow, 'GET');
  });

  test('HEAD /health works for load balancer probes', async () => {
    const r = await call(port, 'HEAD', '/health');
    assert.equal(r.status, 200);
    assert.equal(r.text, '');
  });
});
