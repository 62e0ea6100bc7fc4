import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, type Env } from '../src/config';

const defaults = { hostname: 'host-a', version: '1.2.3' };
const base: Env = {
  DATABASE_URL: 'postgresql://app:pw@127.0.0.1:6432/app',
  REDIS_URL: 'redis://127.0.0.1:6379/0',
  AUTH_SECRET: 'a-secret-of-enough-length',
};

function ok(env: Env) {
  const r = loadConfig(env, defaults);
  if (!r.ok) assert.fail(`unexpected errors: ${r.errors.join('; ')}`);
  return r.config;
}

test('defaults: port 3000, hostname as server id, package version as release, 5 min jobs', () => {
  const c = ok(base);
  assert.equal(c.port, 3000);
  assert.equal(c.serverId, 'host-a');
  assert.equal(c.release, '1.2.3');
  assert.equal(c.jobIntervalMs, 300000);
  assert.equal(c.jobLockTtlMs, 60000);
  assert.deepEqual(c.jobs, ['recurring-messages', 'phone-recovery']);
  assert.equal(c.shutdownTimeoutMs, 10000);
  assert.equal(c.seedUserEmail, 'test@church.com');
  assert.equal(c.seedUserPassword, 'password');
  assert.equal(c.migrateOnStart, true);
  assert.equal(c.host, undefined);
});

test('environment overrides every default', () => {
  const c = ok({
    ...base,
    PORT: '3001',
    HOST: '127.0.0.1',
    SERVER_ID: 'backend-2',
    RELEASE: 'v9',
    JOB_INTERVAL_MS: '2000',
    JOB_LOCK_TTL_MS: '5000',
    JOBS: 'phone-recovery',
    SHUTDOWN_TIMEOUT_MS: '3000',
    MIGRATE_ON_START: 'false',
    SEED_USER_EMAIL: 'Ops@Example.org',
  });
  assert.equal(c.port, 3001);
  assert.equal(c.host, '127.0.0.1');
  assert.equal(c.serverId, 'backend-2');
  assert.equal(c.release, 'v9');
  assert.equal(c.jobIntervalMs, 2000);
  assert.equal(c.jobLockTtlMs, 5000);
  assert.deepEqual(c.jobs, ['phone-recovery']);
  assert.equal(c.shutdownTimeoutMs, 3000);
  assert.equal(c.migrateOnStart, false);
  assert.equal(c.seedUserEmail, 'ops@example.org');
});

test('DB_CONNECT_TIMEOUT_MS: 3 s by default, 100 ms to 60 s when set', () => {
  assert.equal(ok(base).dbConnectTimeoutMs, 3000);
  assert.equal(ok({ ...base, DB_CONNECT_TIMEOUT_MS: '10000' }).dbConnectTimeoutMs, 10000);
  for (const bad of ['50', '60001']) {
    const r = loadConfig({ ...base, DB_CONNECT_TIMEOUT_MS: bad }, defaults);
    assert.ok(!r.ok && r.errors.some((e) => e.startsWith('DB_CONNECT_TIMEOUT_MS must be between 100 and 60000')), bad);
  }
});

test('JOB_LOCK_TEST_BYPASS: off by default, true/false parse, anything else is an error naming it', () => {
  assert.equal(ok(base).jobLockTestBypass, false);
  assert.equal(ok({ ...base, JOB_LOCK_TEST_BYPASS: 'true' }).jobLockTestBypass, true);
  assert.equal(ok({ ...base, JOB_LOCK_TEST_BYPASS: 'false' }).jobLockTestBypass, false);
  const r = loadConfig({ ...base, JOB_LOCK_TEST_BYPASS: 'sometimes' }, defaults);
  assert.ok(!r.ok, 'a bad value is rejected');
  assert.deepEqual(r.errors, ['JOB_LOCK_TEST_BYPASS must be true or false, got "sometimes"']);
});

test('a short job interval shortens the default lock TTL to the interval', () => {
  assert.equal(ok({ ...base, JOB_INTERVAL_MS: '2000' }).jobLockTtlMs, 2000);
});

test('JOB_INTERVAL_MS=0 or JOBS=none turns jobs off', () => {
  assert.deepEqual(ok({ ...base, JOB_INTERVAL_MS: '0' }).jobs, []);
  assert.deepEqual(ok({ ...base, JOBS: 'none' }).jobs, []);
});

test('every problem is reported at once', () => {
  const r = loadConfig(
    {
      DATABASE_URL: 'mysql://x@y/z',
      AUTH_SECRET: 'short',
      PORT: '70000',
      JOB_INTERVAL_MS: '500',
      SERVER_ID: 'has space',
      JOBS: 'recurring-messages,nope',
      MIGRATE_ON_START: 'maybe',
    },
    defaults,
  );
  assert.equal(r.ok, false);
  const text = !r.ok ? r.errors.join('\n') : '';
  for (const needle of [
    'DATABASE_URL must use postgres or postgresql',
    'REDIS_URL is required',
    'AUTH_SECRET must be at least 16',
    'PORT must be between 1 and 65535',
    'JOB_INTERVAL_MS must be 0',
    'SERVER_ID must be',
    'JOBS has unknown job "nope"',
    'MIGRATE_ON_START must be true or false',
  ]) {
    assert.ok(text.includes(needle), `missing "${needle}" in:\n${text}`);
  }
  assert.equal(!r.ok && r.errors.length, 8);
});

test('non-numeric numbers are rejected, not truncated', () => {
  const r = loadConfig({ ...base, PORT: '30x0' }, defaults);
  assert.ok(!r.ok && r.errors[0].includes('PORT must be a whole number'));
});

test('migrate mode needs only DATABASE_URL', () => {
  const r = loadConfig({ DATABASE_URL: base.DATABASE_URL }, defaults, 'migrate');
  assert.equal(r.ok, true);
  const s = loadConfig({ DATABASE_URL: base.DATABASE_URL }, defaults, 'server');
  assert.equal(s.ok, false);
});

test('the drain delay must fit inside the shutdown timeout', () => {
  assert.equal(ok({ ...base, SHUTDOWN_DRAIN_DELAY_MS: '2000' }).shutdownDrainDelayMs, 2000);
  const r = loadConfig({ ...base, SHUTDOWN_DRAIN_DELAY_MS: '10000' }, defaults);
  assert.ok(!r.ok && r.errors[0].includes('must be less than SHUTDOWN_TIMEOUT_MS'));
});
