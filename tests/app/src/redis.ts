// The Redis client (ioredis) and the LockBackend the job system uses.
import Redis from 'ioredis';
import { LOCK_PREFIX, serverOfOwner, type LockBackend, type LockInfo } from './jobs';
import { errorMessage, type Logger } from './log';

// Delete the key only if it still holds our value: never release another server's lock.
const COMPARE_AND_DELETE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

export function createRedis(url: string, log: Logger): Redis {
  const client = new Redis(url, {
    // Fail commands at once while disconnected instead of queueing them: health checks and
    // lock attempts must answer now, not when Redis comes back.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 3000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
  let down = false;
  client.on('error', (e) => {
    if (!down) log('WARN', 'Redis connection error', { error: errorMessage(e) });
    down = true;
  });
  client.on('ready', () => {
    log('INFO', down ? 'Redis connection restored' : 'Redis connected');
    down = false;
  });
  return client;
}

export class RedisLocks implements LockBackend {
  constructor(private readonly client: Redis) {}

  /** Commands fail fast while disconnected; say so plainly instead of ioredis' queue message. */
  private connected(): Redis {
    if (this.client.status !== 'ready') throw new Error(`not connected (${this.client.status})`);
    return this.client;
  }

  async setNxPx(key: string, value: string, ttlMs: number): Promise<boolean> {
    return (await this.connected().set(key, value, 'PX', ttlMs, 'NX')) === 'OK';
  }

  async get(key: string): Promise<string | null> {
    return this.connected().get(key);
  }

  async compareAndDelete(key: string, value: string): Promise<boolean> {
    return Number(await this.connected().eval(COMPARE_AND_DELETE, 1, key, value)) === 1;
  }

  async listLocks(): Promise<LockInfo[]> {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await this.connected().scan(cursor, 'MATCH', `${LOCK_PREFIX}*`, 'COUNT', 100);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    const locks: LockInfo[] = [];
    for (const key of [...new Set(keys)].sort()) {
      const [owner, ttl] = await Promise.all([this.connected().get(key), this.connected().pttl(key)]);
      if (owner === null || ttl === -2) continue; // released between SCAN and GET
      locks.push({ key, owner, server: serverOfOwner(owner), ttl_ms: ttl });
    }
    return locks;
  }

  async ping(): Promise<void> {
    const r = await this.connected().ping();
    if (r !== 'PONG') throw new Error(`unexpected PING reply ${r}`);
  }
}
