// The HTTP API: plain node:http, JSON in and out. Dependencies are passed in so tests can use fakes.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from './config';
import type { Store } from './db';
import type { LockInfo } from './jobs';
import { errorMessage, type Logger } from './log';
import { UNMATCHED_ROUTE, type Metrics } from './metrics';
import { DUMMY_HASH, verifyPassword } from './password';
import { bearerToken, signToken, verifyToken, type TokenClaims } from './token';
import { intParam, LIMITS, validateLogin, validateMessage } from './validate';

export interface Readiness {
  ready: boolean;
  reason?: string;
}

export interface LockView {
  ping(): Promise<void>;
  listLocks(): Promise<LockInfo[]>;
}

export interface AppDeps {
  config: Pick<Config, 'serverId' | 'release' | 'authSecret' | 'authTokenTtlS' | 'healthCheckTimeoutMs'>;
  store: Store;
  redis: LockView;
  /** Readiness as the process sees it: database reached once since start, not shutting down. */
  readiness(): Readiness;
  shuttingDown(): boolean;
  startedAt: number;
  log: Logger;
  /** Counts every response, serves /metrics; shared with the store and the job runner (server.ts). */
  metrics: Metrics;
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export const MAX_BODY_BYTES = 64 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(String(body.error ?? status));
  }
}

export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms}ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new HttpError(413, { error: `body larger than ${MAX_BODY_BYTES} bytes` }));
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const text = await readBody(req);
  if (text.trim() === '') throw new HttpError(400, { error: 'request body is empty (JSON expected)' });
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, { error: 'request body is not valid JSON' });
  }
}

/** A database/Redis failure behind a request is the dependency's fault: 503, never a crash. */
async function dependency<T>(what: string, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    throw new HttpError(503, { error: `${what} unavailable: ${errorMessage(e)}` });
  }
}

export function createApp(deps: AppDeps): Handler {
  const { config, store, redis, log, metrics } = deps;
  const server = config.serverId;
  const now = () => new Date().toISOString();

  function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    reply(res, status, JSON.stringify(body), { 'Content-Type': 'application/json; charset=utf-8', ...headers });
  }

  function reply(res: ServerResponse, status: number, text: string, headers: Record<string, string>): void {
    res.statusCode = status;
    res.setHeader('X-Server-Id', server);
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Content-Length', Buffer.byteLength(text));
    // While draining, keep-alive connections are closed after their current request.
    if (deps.shuttingDown()) res.setHeader('Connection', 'close');
    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    res.end(res.req?.method === 'HEAD' ? undefined : text);
  }

  function authenticate(req: IncomingMessage): TokenClaims {
    const token = bearerToken(req.headers.authorization);
    if (!token) {
      throw new HttpError(401, { error: 'missing bearer token', server });
    }
    const v = verifyToken(token, config.authSecret);
    if (!v.ok) throw new HttpError(401, { error: `invalid token: ${v.reason}`, server });
    return v.claims;
  }

  async function check(p: () => Promise<void>): Promise<string> {
    try {
      await withTimeout(p(), config.healthCheckTimeoutMs);
      return 'ok';
    } catch (e) {
      return `error: ${errorMessage(e)}`;
    }
  }

  type Route = (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void> | void;
  const routes: Record<string, Record<string, Route>> = {
    '/health': {
      GET: (_q, res) => send(res, 200, { status: 'ok', server, timestamp: now() }),
    },
    '/health/live': {
      GET: (_q, res) =>
        send(res, 200, { alive: true, uptime: (Date.now() - deps.startedAt) / 1000, server, timestamp: now() }),
    },
    '/health/ready': {
      GET: (_q, res) => {
        const r = deps.readiness();
        if (r.ready) send(res, 200, { ready: true, server, release: config.release, timestamp: now() });
        else send(res, 503, { ready: false, reason: r.reason ?? 'not ready', server, timestamp: now() });
      },
    },
    '/health/detailed': {
      GET: async (_q, res) => {
        const [database, redisCheck] = await Promise.all([check(() => store.ping()), check(() => redis.ping())]);
        const healthy = database === 'ok' && redisCheck === 'ok';
        send(res, healthy ? 200 : 503, {
          status: healthy ? 'healthy' : 'unhealthy',
          checks: { database, redis: redisCheck },
          release: config.release,
          server,
          uptime: (Date.now() - deps.startedAt) / 1000,
          timestamp: now(),
        });
      },
    },
    '/api/auth/login': {
      POST: async (req, res) => {
        const v = validateLogin(await readJson(req));
        if (!v.ok) return send(res, 400, { error: 'invalid request', details: v.errors, server });
        const user = await dependency('database', store.findUser(v.value.email));
        // Unknown users cost one scrypt as well, so timing does not reveal which emails exist.
        const good = await verifyPassword(v.value.password, user ? user.password_hash : DUMMY_HASH);
        if (!user || !good) return send(res, 401, { error: 'invalid email or password', server });
        const token = signToken({ id: user.id, email: user.email }, config.authSecret, config.authTokenTtlS);
        send(res, 200, { token, expiresIn: config.authTokenTtlS, server });
      },
    },
    '/api/messages': {
      POST: async (req, res) => {
        const claims = authenticate(req);
        const v = validateMessage(await readJson(req));
        if (!v.ok) return send(res, 400, { error: 'invalid request', details: v.errors, server });
        const row = await dependency(
          'database',
          store.insertMessage({
            ...v.value,
            userId: /^\d+$/.test(claims.sub) ? Number(claims.sub) : null,
            server,
            release: config.release,
          }),
        );
        send(res, 201, row);
      },
      GET: async (req, res, url) => {
        authenticate(req);
        const limit = intParam(url.searchParams.get('limit'), 'limit', LIMITS.listDefault, 1, LIMITS.listMax);
        if (!limit.ok) return send(res, 400, { error: 'invalid request', details: limit.errors, server });
        const messages = await dependency('database', store.listMessages(limit.value));
        send(res, 200, { messages, count: messages.length, server });
      },
    },
    '/api/slow': {
      GET: async (_q, res, url) => {
        const ms = intParam(url.searchParams.get('ms'), 'ms', 1000, 0, LIMITS.slowMaxMs);
        if (!ms.ok) return send(res, 400, { error: 'invalid request', details: ms.errors, server });
        const started = Date.now();
        await new Promise((r) => setTimeout(r, ms.value));
        send(res, 200, { slept_ms: Date.now() - started, requested_ms: ms.value, server, timestamp: now() });
      },
    },
    '/admin/locks': {
      GET: async (_q, res) => {
        const locks = await dependency('redis', withTimeout(redis.listLocks(), config.healthCheckTimeoutMs));
        send(res, 200, locks);
      },
    },
    // For Prometheus, unauthenticated like /admin/*: the app port is reachable only from the
    // balancers and the monitoring host, and labels hold no user data. No-store: a cached scrape
    // would show counters standing still.
    '/metrics': {
      GET: async (_q, res) => {
        const m = await metrics.render();
        reply(res, 200, m.text, { 'Content-Type': m.contentType });
      },
    },
    '/admin/jobs': {
      GET: async (_q, res, url) => {
        const limit = intParam(url.searchParams.get('limit'), 'limit', LIMITS.listDefault, 1, LIMITS.listMax);
        if (!limit.ok) return send(res, 400, { error: 'invalid request', details: limit.errors, server });
        const runs = await dependency('database', store.listJobRuns(limit.value));
        send(res, 200, { runs, server });
      },
    },
  };

  return (req, res) => {
    // The route label is the route table's key, never the raw path: ids and query strings add no
    // series. Counted once the response is sent, whatever answered it (including /metrics itself).
    let routeLabel = UNMATCHED_ROUTE;
    res.once('finish', () => metrics.countResponse(req.method ?? 'GET', routeLabel, res.statusCode));
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      return send(res, 400, { error: 'bad request target', server });
    }
    const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
    const methods = routes[path];
    if (!methods) return send(res, 404, { error: 'not found', path, server });
    routeLabel = path;
    const method = req.method === 'HEAD' && methods.GET ? 'GET' : (req.method ?? 'GET');
    const route = methods[method];
    if (!route) {
      return send(res, 405, { error: 'method not allowed', allow: Object.keys(methods), server }, {
        Allow: Object.keys(methods).join(', '),
      });
    }
    Promise.resolve()
      .then(() => route(req, res, url))
      .catch((e: unknown) => {
        if (res.headersSent) {
          res.destroy();
          return;
        }
        if (e instanceof HttpError) {
          if (e.status >= 500) log('ERROR', `${req.method} ${path} failed`, { status: e.status, error: e.message });
          return send(res, e.status, { ...e.body, server });
        }
        log('ERROR', `${req.method} ${path} failed`, { status: 500, error: errorMessage(e) });
        send(res, 500, { error: 'internal error', server });
      });
  };
}
