// Prometheus metrics, served at GET /metrics: the contract of roles/monitoring/README.md
// ("Metric contract a backend must expose"), which the monitoring role's alerts read.
//
//   http_requests_total{method,route,status}     counter: one per response sent (Backend5xxRateHigh)
//   db_query_duration_seconds{operation}         histogram: each PgStore query (DatabaseLatencyHigh)
//   job_last_run_slot_seconds{job_name}          gauge: slot of the last run this server executed
//                                                (ScheduledJobRanTwice)
// plus prom-client's default process_* and nodejs_* metrics.
//
// Every label value comes from a fixed set (route table, HTTP methods, status codes, query kinds,
// job names), never from the request: bounded cardinality, and no secrets or user data in labels.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Label of every request whose path is no route: one value, however many paths are probed. */
export const UNMATCHED_ROUTE = 'unmatched';

/** Must include 0.1: DatabaseLatencyHigh compares the p95 with 100 ms. */
export const DB_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** The kinds of query PgStore runs, the values of the `operation` label. */
export type DbOperation = 'ping' | 'find_user' | 'insert_message' | 'list_messages' | 'record_job_run' | 'list_job_runs';

/** Runs one query and times it; db.ts and tests depend on this, not on prom-client. */
export type QueryTimer = <T>(operation: DbOperation, query: () => Promise<T>) => Promise<T>;

export class Metrics {
  /** Owned by this instance, not prom-client's global registry: several apps can live in one process (tests). */
  readonly registry = new Registry();
  private readonly requests: Counter<'method' | 'route' | 'status'>;
  private readonly queries: Histogram<'operation'>;
  private readonly jobSlots: Gauge<'job_name'>;

  constructor() {
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'http_requests_total',
      help: 'HTTP responses sent, by method, route pattern and status code.',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.queries = new Histogram({
      name: 'db_query_duration_seconds',
      help: 'Time of each database query as the app sees it (pool wait included), failed ones too.',
      labelNames: ['operation'],
      buckets: DB_BUCKETS,
      registers,
    });
    this.jobSlots = new Gauge({
      name: 'job_last_run_slot_seconds',
      help: 'Unix time of the schedule slot of the last job run this server executed (after taking the lock).',
      labelNames: ['job_name'],
      registers,
    });
    collectDefaultMetrics({ register: this.registry });
  }

  /** `route` is a route pattern or UNMATCHED_ROUTE; `method` is one of node's http.METHODS (the parser rejects others). */
  countResponse(method: string, route: string, status: number): void {
    this.requests.inc({ method, route, status: String(status) });
  }

  /** A failed query is observed as well: a query that times out is the slowest kind. */
  readonly timeQuery: QueryTimer = async (operation, query) => {
    const end = this.queries.startTimer({ operation });
    try {
      return await query();
    } finally {
      end();
    }
  };

  /** Called by the job runner only once it holds the lock and the slot, just before the work starts. */
  jobRunStarted(jobName: string, slotSeconds: number): void {
    this.jobSlots.set({ job_name: jobName }, slotSeconds);
  }

  /** The exposition text and its content type (text/plain; version=0.0.4). */
  async render(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }
}
