import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp } from '../src/app';
import { drain, packageVersion, trackRequests } from '../src/lifecycle';
import { Metrics } from '../src/metrics';
import { call, MemoryLocks, MemoryStore, memoryLogger } from './helpers';

test('drain: the request in progress finishes, new connections are refused, idle keep-alive closes', async () => {
  let shuttingDown = false;
  const server = createServer(
    createApp({
      config: { serverId: 'b1', release: 'x', authSecret: 'x'.repeat(16), authTokenTtlS: 60, healthCheckTimeoutMs: 100 },
      store: new MemoryStore(),
      redis: new MemoryLocks(),
      readiness: () => (shuttingDown ? { ready: false, reason: 'shutting down' } : { ready: true }),
      shuttingDown: () => shuttingDown,
      startedAt: Date.now(),
      log: memoryLogger().log,
      metrics: new Metrics(),
    }),
  );
  const inFlight = trackRequests(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;

  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  // an idle keep-alive connection that would otherwise keep the server open
  const idle = new Agent({ keepAlive: true });
  assert.equal((await call(port, 'GET', '/health', { agent: idle })).status, 200);

  const slow = call(port, 'GET', '/api/slow?ms=800', { agent });
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(inFlight(), 1);

  shuttingDown = true;
  const started = Date.now();
  const drained = drain(server);

  await assert.rejects(call(port, 'GET', '/health'), /ECONNREFUSED/);
  const r = await slow;
  assert.equal(r.status, 200, 'the slow request completed');
  assert.equal(r.headers.connection, 'close', 'its keep-alive connection is closed after it');
  await drained;
  assert.ok(Date.now() - started >= 500, 'drain waited for the slow request');
  assert.ok(Date.now() - started < 3000, 'drain did not wait for idle keep-alive connections to time out');
  agent.destroy();
  idle.destroy();
});

test('packageVersion reads package.json, and says unknown without one', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pkgv-'));
  assert.equal(packageVersion(dir), 'unknown');
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ version: '1.0.0' }));
  assert.equal(packageVersion(dir), '1.0.0');
  assert.match(packageVersion(), /^\d+\.\d+\.\d+/, 'the app finds its own package.json from dist/');
});
