import { Redis } from 'ioredis';

/** A connection BullMQ can block on (it requires maxRetriesPerRequest: null). */
export function redisConnection(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null });
}

/** Proves Redis reachable once, failing fast, so a bad URL is one line instead of endless retries. */
export async function checkRedis(url: string): Promise<string | undefined> {
  let probe: Redis;
  try {
    probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 5_000 });
  } catch (error) {
    return `invalid Redis URL ${url}: ${messageOf(error)}`;
  }
  let connectionError: unknown;
  probe.on('error', (error) => {
    connectionError = error;
  });
  try {
    await probe.connect();
    await probe.ping();
    return undefined;
  } catch (error) {
    return `cannot reach Redis at ${url}: ${messageOf(connectionError ?? error)}`;
  } finally {
    probe.disconnect();
  }
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
