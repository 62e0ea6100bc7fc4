// One line per event on stdout (journald under systemd), `key=value` fields so lines stay greppable:
//   2026-01-01T00:00:00.000Z INFO Acquired lock for job: recurring-messages server=backend-1 run=recurring-messages:5
export type Level = 'INFO' | 'WARN' | 'ERROR';
export type Fields = Record<string, string | number | boolean | undefined>;
export type Logger = (level: Level, message: string, fields?: Fields) => void;

function fmt(v: string | number | boolean): string {
  const s = String(v);
  return /[\s"]/.test(s) || s === '' ? JSON.stringify(s) : s;
}

export function formatLine(now: Date, level: Level, message: string, serverId: string, fields: Fields = {}): string {
  const parts = [now.toISOString(), level, message.replace(/\s*\n\s*/g, ' '), `server=${fmt(serverId)}`];
  for (const [k, v] of Object.entries(fields)) {
    if (v !== undefined) parts.push(`${k}=${fmt(v)}`);
  }
  return parts.join(' ');
}

export function createLogger(serverId: string, write: (line: string) => void = (l) => process.stdout.write(l + '\n')): Logger {
  return (level, message, fields) => write(formatLine(new Date(), level, message, serverId, fields));
}

export function errorMessage(e: unknown): string {
  if (e instanceof Error) {
    // AggregateError (e.g. ECONNREFUSED on both ::1 and 127.0.0.1) has an empty message.
    if (!e.message && e instanceof AggregateError && e.errors.length > 0) return errorMessage(e.errors[0]);
    return e.message || e.name || 'error';
  }
  return String(e);
}
