// Configuration comes only from the environment. Every problem is collected so the
// operator sees one message listing all of them instead of fixing one at a time.

export const KNOWN_JOBS = ['recurring-messages', 'phone-recovery'] as const;
export type JobName = (typeof KNOWN_JOBS)[number];

export interface Config {
  port: number;
  host: string | undefined;
  databaseUrl: string;
  redisUrl: string;
  serverId: string;
  release: string;
  authSecret: string;
  authTokenTtlS: number;
  jobIntervalMs: number;
  jobLockTtlMs: number;
  jobWorkMs: number;
  jobs: JobName[];
  shutdownTimeoutMs: number;
  shutdownDrainDelayMs: number;
  healthCheckTimeoutMs: number;
  dbPoolMax: number;
  dbConnectTimeoutMs: number;
  migrateOnStart: boolean;
  /** Test only (JOB_LOCK_TEST_BYPASS): run every job slot without the Redis lock; never in production. */
  jobLockTestBypass: boolean;
  seedUserEmail: string;
  seedUserPassword: string;
  keepAliveTimeoutMs: number;
}

export type Env = Record<string, string | undefined>;

export interface Defaults {
  hostname: string;
  version: string;
}

export type LoadResult = { ok: true; config: Config } | { ok: false; errors: string[] };

/** What a run needs: the HTTP server needs everything, `npm run migrate` only the database. */
export type Mode = 'server' | 'migrate';

class Reader {
  readonly errors: string[] = [];
  constructor(private readonly env: Env) {}

  raw(name: string): string | undefined {
    const v = this.env[name];
    if (v === undefined) return undefined;
    const t = v.trim();
    return t === '' ? undefined : t;
  }

  str(name: string, def: string): string {
    return this.raw(name) ?? def;
  }

  required(name: string, check?: (v: string) => string | null): string {
    const v = this.raw(name);
    if (v === undefined) {
      this.errors.push(`${name} is required`);
      return '';
    }
    const problem = check ? check(v) : null;
    if (problem) this.errors.push(`${name} ${problem}`);
    return v;
  }

  int(name: string, def: number, min: number, max: number): number {
    const v = this.raw(name);
    if (v === undefined) return def;
    if (!/^\d+$/.test(v)) {
      this.errors.push(`${name} must be a whole number, got "${v}"`);
      return def;
    }
    const n = Number(v);
    if (n < min || n > max) {
      this.errors.push(`${name} must be between ${min} and ${max}, got ${n}`);
      return def;
    }
    return n;
  }

  bool(name: string, def: boolean): boolean {
    const v = this.raw(name);
    if (v === undefined) return def;
    const l = v.toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(l)) return true;
    if (['0', 'false', 'no', 'off'].includes(l)) return false;
    this.errors.push(`${name} must be true or false, got "${v}"`);
    return def;
  }
}

function urlCheck(schemes: string[]): (v: string) => string | null {
  return (v) => {
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      return 'is not a valid URL';
    }
    const scheme = u.protocol.replace(/:$/, '');
    if (!schemes.includes(scheme)) return `must use ${schemes.join(' or ')}, got "${scheme}"`;
    if (!u.hostname && !u.searchParams.get('host')) return 'has no host';
    return null;
  };
}

export function loadConfig(env: Env, defaults: Defaults, mode: Mode = 'server'): LoadResult {
  const r = new Reader(env);
  const server = mode === 'server';

  const databaseUrl = r.required('DATABASE_URL', urlCheck(['postgres', 'postgresql']));
  const redisUrl = server ? r.required('REDIS_URL', urlCheck(['redis', 'rediss'])) : r.str('REDIS_URL', '');
  const authSecret = server
    ? r.required('AUTH_SECRET', (v) => (v.length < 16 ? 'must be at least 16 characters' : null))
    : r.str('AUTH_SECRET', '');

  const serverId = r.str('SERVER_ID', defaults.hostname);
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(serverId)) {
    r.errors.push(`SERVER_ID must be 1-64 characters of letters, digits, ".", "_" or "-", got "${serverId}"`);
  }

  const jobIntervalMs = r.int('JOB_INTERVAL_MS', 300000, 0, 86400000);
  if (jobIntervalMs !== 0 && jobIntervalMs < 1000) {
    r.errors.push(`JOB_INTERVAL_MS must be 0 (jobs off) or at least 1000, got ${jobIntervalMs}`);
  }
  const jobLockTtlMs = r.int('JOB_LOCK_TTL_MS', Math.max(1000, Math.min(jobIntervalMs, 60000)), 1000, 86400000);

  const jobsRaw = r.str('JOBS', KNOWN_JOBS.join(','));
  const jobs: JobName[] = [];
  if (!['none', 'off'].includes(jobsRaw.toLowerCase())) {
    for (const name of jobsRaw.split(',').map((s) => s.trim()).filter(Boolean)) {
      if ((KNOWN_JOBS as readonly string[]).includes(name)) {
        if (!jobs.includes(name as JobName)) jobs.push(name as JobName);
      } else {
        r.errors.push(`JOBS has unknown job "${name}" (known: ${KNOWN_JOBS.join(', ')}, or "none")`);
      }
    }
  }

  const seedUserEmail = r.str('SEED_USER_EMAIL', 'test@church.com').toLowerCase();
  if (!/^[^\s@]+@[^\s@]+$/.test(seedUserEmail)) r.errors.push(`SEED_USER_EMAIL is not an email address`);

  const config: Config = {
    port: r.int('PORT', 3000, 1, 65535),
    host: r.raw('HOST'),
    databaseUrl,
    redisUrl,
    serverId,
    release: r.str('RELEASE', defaults.version),
    authSecret,
    authTokenTtlS: r.int('AUTH_TOKEN_TTL_S', 3600, 60, 604800),
    jobIntervalMs,
    jobLockTtlMs,
    jobWorkMs: r.int('JOB_WORK_MS', 0, 0, 600000),
    jobs: jobIntervalMs === 0 ? [] : jobs,
    shutdownTimeoutMs: r.int('SHUTDOWN_TIMEOUT_MS', 10000, 100, 600000),
    shutdownDrainDelayMs: r.int('SHUTDOWN_DRAIN_DELAY_MS', 0, 0, 600000),
    healthCheckTimeoutMs: r.int('HEALTH_CHECK_TIMEOUT_MS', 2000, 50, 60000),
    dbPoolMax: r.int('DB_POOL_MAX', 10, 1, 1000),
    dbConnectTimeoutMs: r.int('DB_CONNECT_TIMEOUT_MS', 3000, 100, 60000),
    migrateOnStart: r.bool('MIGRATE_ON_START', true),
    jobLockTestBypass: r.bool('JOB_LOCK_TEST_BYPASS', false),
    seedUserEmail,
    seedUserPassword: r.str('SEED_USER_PASSWORD', 'password'),
    keepAliveTimeoutMs: r.int('HTTP_KEEPALIVE_TIMEOUT_MS', 65000, 1000, 600000),
  };

  if (config.shutdownDrainDelayMs >= config.shutdownTimeoutMs) {
    r.errors.push(
      `SHUTDOWN_DRAIN_DELAY_MS (${config.shutdownDrainDelayMs}) must be less than SHUTDOWN_TIMEOUT_MS (${config.shutdownTimeoutMs})`,
    );
  }
  if (r.errors.length > 0) return { ok: false, errors: r.errors };
  return { ok: true, config };
}
