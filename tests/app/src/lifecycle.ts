// Start and stop the HTTP server. Draining: stop accepting connections, close idle keep-alive
// connections, let requests in progress finish (their responses carry `Connection: close`).
import type { Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export function listen(server: Server, port: number, host?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Resolves once every connection is closed. */
export function drain(server: Server): Promise<void> {
  return new Promise((resolve) => {
    const sweep = setInterval(() => server.closeIdleConnections(), 250);
    server.close(() => {
      clearInterval(sweep);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/** Count requests in progress (for shutdown logs). */
export function trackRequests(server: Server): () => number {
  let n = 0;
  server.on('request', (_req, res) => {
    n++;
    res.once('close', () => n--);
  });
  return () => n;
}

export function packageVersion(dir: string = join(__dirname, '..', '..')): string {
  try {
    const v = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version;
    return typeof v === 'string' && v ? v : 'unknown';
  } catch {
    return 'unknown';
  }
}
