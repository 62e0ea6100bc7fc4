// PostgreSQL access. In production DATABASE_URL points at PgBouncer in transaction pooling mode,
// so nothing here relies on session state: no session advisory locks, no SET outside a
// transaction, no named prepared statements (pg uses the unnamed statement for parameterised
// queries unless a query is given a `name`, which this code never does).
import { Pool, type PoolClient, type QueryResult } from 'pg';
import { hashPassword, verifyPassword } from './password';
import { errorMessage, type Logger } from './log';
import type { DbOperation, QueryTimer } from './metrics';

export interface UserRow {
  id: number;
  email: string;
  password_hash: string;
}

export interface MessageRow {
  id: number;
  content: string;
  target_type: string;
  target_ids: string[];
  user_id: number | null;
  server: string;
  release: string;
  created_at: string;
}

export interface JobRunRow {
  id: number;
  run_id: string;
  job: string;
  server: string;
  ran_at: string;
}

export interface NewMessage {
  content: string;
  targetType: string;
  targetIds: string[];
  userId: number | null;
  server: string;
  release: string;
}

/** What the HTTP layer and the jobs need from the database; tests use a fake. */
export interface Store {
  ping(): Promise<void>;
  findUser(email: string): Promise<UserRow | null>;
  insertMessage(m: NewMessage): Promise<MessageRow>;
  listMessages(limit: number): Promise<MessageRow[]>;
  recordJobRun(runId: string, job: string, server: string): Promise<void>;
  listJobRuns(limit: number): Promise<JobRunRow[]>;
}

/** connectTimeoutMs bounds both a new connection (SCRAM included) and the wait for a pooled one. */
export function createPool(databaseUrl: string, max: number, log: Logger, connectTimeoutMs = 3000): Pool {
  const pool = new Pool({
    connectionString: databaseUrl,
    max,
    connectionTimeoutMillis: connectTimeoutMs,
    idleTimeoutMillis: 10000,
    // Client-side timeout: a server-side statement_timeout would be a startup parameter,
    // which PgBouncer rejects unless told to ignore it.
    query_timeout: 15000,
  });
  // An idle client losing its server (database restart) must not crash the process.
  pool.on('error', (e) => log('WARN', 'Idle database connection lost', { error: errorMessage(e) }));
  return pool;
}

const MESSAGE_COLUMNS = `id, content, target_type, target_ids, user_id, server, release, created_at`;

function toMessage(r: Record<string, unknown>): MessageRow {
  return {
    id: Number(r.id),
    content: r.content as string,
    target_type: r.target_type as string,
    target_ids: r.target_ids as string[],
    user_id: r.user_id === null ? null : Number(r.user_id),
    server: r.server as string,
    release: r.release as string,
    created_at: new Date(r.created_at as string).toISOString(),
  };
}

export class PgStore implements Store {
  /** `time` wraps every query (db_query_duration_seconds in production, see metrics.ts). */
  constructor(
    private readonly pool: Pool,
    private readonly time: QueryTimer,
  ) {}

  /** The only way this class reaches the database, so no query escapes the timing. */
  private query(operation: DbOperation, text: string, values?: unknown[]): Promise<QueryResult> {
    return this.time(operation, () => this.pool.query(text, values));
  }

  async ping(): Promise<void> {
    await this.query('ping', 'SELECT 1');
  }

  async findUser(email: string): Promise<UserRow | null> {
    const r = await this.query('find_user', 'SELECT id, email, password_hash FROM users WHERE email = $1', [email]);
    if (r.rowCount === 0) return null;
    return { id: Number(r.rows[0].id), email: r.rows[0].email, password_hash: r.rows[0].password_hash };
  }

  async insertMessage(m: NewMessage): Promise<MessageRow> {
    const r = await this.query(
      'insert_message',
      `INSERT INTO messages (content, target_type, target_ids, user_id, server, release)
       VALUES ($1, $2, $3::jsonb, $4, $5, $6) RETURNING ${MESSAGE_COLUMNS}`,
      [m.content, m.targetType, JSON.stringify(m.targetIds), m.userId, m.server, m.release],
    );
    return toMessage(r.rows[0]);
  }

  async listMessages(limit: number): Promise<MessageRow[]> {
    const r = await this.query('list_messages', `SELECT ${MESSAGE_COLUMNS} FROM messages ORDER BY id DESC LIMIT $1`, [limit]);
    return r.rows.map(toMessage);
  }

  async recordJobRun(runId: string, job: string, server: string): Promise<void> {
    await this.query('record_job_run', 'INSERT INTO job_runs (run_id, job, server) VALUES ($1, $2, $3)', [runId, job, server]);
  }

  async listJobRuns(limit: number): Promise<JobRunRow[]> {
    const r = await this.query(
      'list_job_runs',
      'SELECT id, run_id, job, server, ran_at FROM job_runs ORDER BY id DESC LIMIT $1',
      [limit],
    );
    return r.rows.map((x) => ({
      id: Number(x.id),
      run_id: x.run_id,
      job: x.job,
      server: x.server,
      ran_at: new Date(x.ran_at).toISOString(),
    }));
  }
}

// ---- migrations -----------------------------------------------------------------------------

/** Key of the transaction-scoped advisory lock that serialises migrations from several backends. */
export const MIGRATION_LOCK_KEY = 4242001;

export const MIGRATIONS: { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'users, messages, job_runs',
    sql: `
      CREATE TABLE IF NOT EXISTS users (
        id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        email text NOT NULL UNIQUE,
        password_hash text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE IF NOT EXISTS messages (
        id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        content text NOT NULL,
        target_type text NOT NULL,
        target_ids jsonb NOT NULL,
        user_id bigint REFERENCES users (id),
        server text NOT NULL,
        release text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX IF NOT EXISTS messages_created_at_idx ON messages (created_at);
      CREATE TABLE IF NOT EXISTS job_runs (
        id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        run_id text NOT NULL,
        job text NOT NULL,
        server text NOT NULL,
        ran_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX IF NOT EXISTS job_runs_run_id_idx ON job_runs (run_id);
    `,
  },
];

export interface MigrationResult {
  applied: number[];
  seedUser: 'created' | 'updated' | 'unchanged';
}

/**
 * Apply pending migrations and seed the lab user in ONE transaction. The advisory lock is
 * transaction-scoped, so it works through PgBouncer in transaction mode and is released by
 * COMMIT/ROLLBACK even if this process dies.
 * Not timed in db_query_duration_seconds: it runs once per start, and waiting for another
 * backend's migration lock is not query latency (it would trip DatabaseLatencyHigh at deploys).
 */
export async function migrate(pool: Pool, seed: { email: string; password: string }): Promise<MigrationResult> {
  const client: PoolClient = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const done = new Set((await client.query('SELECT version FROM schema_migrations')).rows.map((r) => Number(r.version)));
    const applied: number[] = [];
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      await client.query(m.sql);
      await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied.push(m.version);
    }

    let seedUser: MigrationResult['seedUser'] = 'unchanged';
    const u = await client.query('SELECT password_hash FROM users WHERE email = $1 FOR UPDATE', [seed.email]);
    if (u.rowCount === 0) {
      await client.query('INSERT INTO users (email, password_hash) VALUES ($1, $2)', [
        seed.email,
        await hashPassword(seed.password),
      ]);
      seedUser = 'created';
    } else if (!(await verifyPassword(seed.password, u.rows[0].password_hash))) {
      await client.query('UPDATE users SET password_hash = $2 WHERE email = $1', [
        seed.email,
        await hashPassword(seed.password),
      ]);
      seedUser = 'updated';
    }
    await client.query('COMMIT');
    return { applied, seedUser };
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    client.release();
  }
}
