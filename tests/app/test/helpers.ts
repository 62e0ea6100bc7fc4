// Fakes and a tiny HTTP client shared by the tests (not a test file itself).
import { request, type Agent, type IncomingHttpHeaders } from 'node:http';
import type { NewMessage, JobRunRow, MessageRow, Store, UserRow } from '../src/db';
import { LOCK_PREFIX, serverOfOwner, type LockBackend, type LockInfo } from '../src/jobs';
import type { Fields, Level, Logger } from '../src/log';
import type { Metrics } from '../src/metrics';

/** An in-memory Redis with the semantics the job system relies on, on an injectable clock. */
export class MemoryLocks implements LockBackend {
  readonly keys = new Map<string, { value: string; expiresAt: number }>();
  failing: Error | null = null;
  constructor(public now: () => number = Date.now) {}

  private live(key: string) {
    const e = this.keys.get(key);
    if (e && e.expiresAt <= this.now()) {
      this.keys.delete(key);
      return undefined;
    }
    return e;
  }
  private guard() {
    if (this.failing) throw this.failing;
  }
  async setNxPx(key: string, value: string, ttlMs: number) {
    this.guard();
    if (this.live(key)) return false;
    this.keys.set(key, { value, expiresAt: this.now() + ttlMs });
    return true;
  }
  async get(key: string) {
    this.guard();
    return this.live(key)?.value ?? null;
  }
  async compareAndDelete(key: string, value: string) {
    this.guard();
    if (this.live(key)?.value !== value) return false;
    this.keys.delete(key);
    return true;
  }
  async listLocks(): Promise<LockInfo[]> {
    this.guard();
    return [...this.keys.keys()]
      .filter((k) => k.startsWith(LOCK_PREFIX) && this.live(k))
      .map((k) => {
        const e = this.keys.get(k)!;
        return { key: k, owner: e.value, server: serverOfOwner(e.value), ttl_ms: e.expiresAt - this.now() };
      });
  }
  async ping() {
    this.guard();
  }
}

export class MemoryStore implements Store {
  users: UserRow[] = [];
  messages: MessageRow[] = [];
  runs: JobRunRow[] = [];
  failing: Error | null = null;
  hang = false;

  private async guard() {
    if (this.hang) await new Promise(() => undefined);
    if (this.failing) throw this.failing;
  }
  async ping() {
    await this.guard();
  }
  async findUser(email: string) {
    await this.guard();
    return this.users.find((u) => u.email === email) ?? null;
  }
  async insertMessage(m: NewMessage) {
    await this.guard();
    const row: MessageRow = {
      id: this.messages.length + 1,
      content: m.content,
      target_type: m.targetType,
      target_ids: m.targetIds,
      user_id: m.userId,
      server: m.server,
      release: m.release,
      created_at: new Date().toISOString(),
    };
    this.messages.push(row);
    return row;
  }
  async listMessages(limit: number) {
    await this.guard();
    return [...this.messages].reverse().slice(0, limit);
  }
  async recordJobRun(runId: string, job: string, server: string) {
    await this.guard();
    this.runs.push({ id: this.runs.length + 1, run_id: runId, job, server, ran_at: new Date().toISOString() });
  }
  async listJobRuns(limit: number) {
    await this.guard();
    return [...this.runs].reverse().slice(0, limit);
  }
}

export interface LogLine {
  level: Level;
  message: string;
  fields: Fields;
}

export function memoryLogger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  return { lines, log: (level, message, fields = {}) => lines.push({ level, message, fields }) };
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: any;
}

export function call(
  port: number,
  method: string,
  path: string,
  opts: { body?: string | object; headers?: Record<string, string>; agent?: Agent } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const body = opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: opts.agent,
        headers: { ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...opts.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parse the Prometheus text format, so tests read exactly what a scrape gets. */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, value: m[3] === '+Inf' ? Infinity : Number(m[3]) });
  }
  return samples;
}

/** The value of the series with exactly these labels, undefined when there is none. */
export function valueOf(samples: Sample[], name: string, labels: Record<string, string>): number | undefined {
  const want = JSON.stringify(Object.entries(labels).sort());
  return samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want)?.value;
}

/** The scrape of a Metrics instance, parsed. */
export async function scrape(metrics: Metrics): Promise<Sample[]> {
  return parseExposition((await metrics.render()).text);
}
