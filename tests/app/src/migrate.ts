// Entry point of `npm run migrate`: needs DATABASE_URL (and optionally SEED_USER_EMAIL/PASSWORD).
import { hostname } from 'node:os';
import { loadConfig } from './config';
import { createPool, migrate } from './db';
import { packageVersion } from './lifecycle';
import { createLogger, errorMessage } from './log';

async function main(): Promise<number> {
  const loaded = loadConfig(process.env, { hostname: hostname(), version: packageVersion() }, 'migrate');
  if (!loaded.ok) {
    process.stderr.write(`Invalid configuration: ${loaded.errors.join('; ')}\n`);
    return 2;
  }
  const { config } = loaded;
  const log = createLogger(config.serverId);
  const pool = createPool(config.databaseUrl, 1, log, config.dbConnectTimeoutMs);
  try {
    const r = await migrate(pool, { email: config.seedUserEmail, password: config.seedUserPassword });
    log('INFO', 'Migrations done', { applied: r.applied.join(',') || 'none', seed_user: r.seedUser });
    return 0;
  } catch (e) {
    log('ERROR', 'Migration failed', { error: errorMessage(e) });
    return 1;
  } finally {
    await pool.end().catch(() => undefined);
  }
}

main().then((code) => process.exit(code));
