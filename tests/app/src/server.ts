// Entry point of `npm start`.
import { createServer } from 'node:http';
import { hostname } from 'node:os';
import { createApp, withTimeout, type Readiness } from './app';
import { loadConfig } from './config';
import { createPool, migrate, PgStore } from './db';
import { JobRunner } from './jobs';
import { drain, listen, packageVersion, trackRequests } from './lifecycle';
import { createLogger, errorMessage } from './log';
import { Metrics } from './metrics';
import { createRedis, RedisLocks } from './redis';

async function main(): Promise<void> {
  const loaded = loadConfig(process.env, { hostname: hostname(), version: packageVersion() });
  if (!loaded.ok) {
    process.stderr.write(`Invalid configuration: ${loaded.errors.join('; ')}\n`);
    process.exit(2);
  }
  const config = loaded.config;
  const log = createLogger(config.serverId);
  const startedAt = Date.now();
  // One registry for the process: the HTTP handler, the store and the job runner all report into it.
  const metrics = new Metrics();

  const pool = createPool(config.databaseUrl, config.dbPoolMax, log, config.dbConnectTimeoutMs);
  const store = new PgStore(pool, metrics.timeQuery);
  const redisClient = createRedis(config.redisUrl, log);
  const locks = new RedisLocks(redisClient);

  let shuttingDown = false;
  let dbSeen = false;
  let migrated = !config.migrateOnStart;
  let lastError = 'starting';
  const readiness = (): Readiness => {
    if (shuttingDown) return { ready: false, reason: 'shutting down' };
    if (!dbSeen) return { ready: false, reason: `database not reached yet: ${lastError}` };
    if (!migrated) return { ready: false, reason: `migrations pending: ${lastError}` };
    return { ready: true };
  };

  const jobs = new JobRunner({
    serverId: config.serverId,
    intervalMs: config.jobIntervalMs,
    lockTtlMs: config.jobLockTtlMs,
    jobs: config.jobs,
    backend: locks,
    log,
    metrics,
    bypassLock: config.jobLockTestBypass,
    work: async (job, runId) => {
      if (config.jobWorkMs > 0) await new Promise((r) => setTimeout(r, config.jobWorkMs));
      await store.recordJobRun(runId, job, config.serverId);
    },
  });
  if (config.jobLockTestBypass) {
    // Test only: this server runs slots other servers run too (the duplicate-run alert drill).
    log('WARN', 'Job lock bypassed for testing (JOB_LOCK_TEST_BYPASS): never set it in production', {
      jobs: config.jobs.join(',') || 'none',
    });
  }

  const server = createServer(
    createApp({ config, store, redis: locks, readiness, shuttingDown: () => shuttingDown, startedAt, log, metrics }),
  );
  server.keepAliveTimeout = config.keepAliveTimeoutMs;
  server.headersTimeout = config.keepAliveTimeoutMs + 1000;
  const inFlight = trackRequests(server);

  await listen(server, config.port, config.host);
  log('INFO', 'Listening', {
    port: config.port,
    host: config.host ?? '*',
    release: config.release,
    node: process.version,
    pid: process.pid,
  });

  // Keep trying the database in the background until it answered once (and migrations ran).
  void (async () => {
    let delay = 500;
    while (!shuttingDown) {
      try {
        if (!dbSeen) {
          await withTimeout(store.ping(), config.healthCheckTimeoutMs);
          dbSeen = true;
          log('INFO', 'Database reachable');
        }
        if (!migrated) {
          const r = await migrate(pool, { email: config.seedUserEmail, password: config.seedUserPassword });
          migrated = true;
          log('INFO', 'Migrations done', { applied: r.applied.join(',') || 'none', seed_user: r.seedUser });
        }
        break;
      } catch (e) {
        lastError = errorMessage(e);
        log('WARN', 'Database not ready yet, retrying', { error: lastError, retry_ms: delay });
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 5000);
      }
    }
    if (!shuttingDown) {
      log('INFO', 'Ready');
      jobs.start();
    }
  })();

  const shutdown = async (signal: string): Promise<void> => {
    if (shuttingDown) return;
    shuttingDown = true;
    log('INFO', 'Shutdown started', {
      signal,
      in_flight: inFlight(),
      drain_delay_ms: config.shutdownDrainDelayMs,
      timeout_ms: config.shutdownTimeoutMs,
    });
    const force = setTimeout(() => {
      log('ERROR', 'Shutdown timed out, forcing exit', { in_flight: inFlight() });
      process.exit(1);
    }, config.shutdownTimeoutMs);
    const jobsStopped = jobs.stop();
    if (config.shutdownDrainDelayMs > 0) {
      // Keep answering (ready: false, Connection: close) so health-checking load balancers
      // take this backend out before connections are refused.
      await new Promise((r) => setTimeout(r, config.shutdownDrainDelayMs));
    }
    await Promise.allSettled([drain(server), jobsStopped]);
    const closeRedis =
      redisClient.status === 'ready' ? redisClient.quit().then(() => undefined) : Promise.resolve(redisClient.disconnect());
    await Promise.allSettled([pool.end(), withTimeout(closeRedis, 2000)]);
    clearTimeout(force);
    log('INFO', 'Shutdown complete');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((e) => {
  process.stderr.write(`Fatal: ${errorMessage(e)}\n`);
  process.exit(1);
});
