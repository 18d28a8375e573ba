import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/** A SHA-256 digest in lowercase hex. Branded so a path or a name cannot be passed where a hash is expected. */
export type Sha256Hex = string & { readonly __brand: 'Sha256Hex' };

export function sha256(data: string | Uint8Array): Sha256Hex {
  return createHash('sha256').update(data).digest('hex') as Sha256Hex;
}

export async function sha256File(path: string): Promise<Sha256Hex> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex') as Sha256Hex;
}

export function isSha256Hex(value: unknown): value is Sha256Hex {
  return typeof value === 'string' && /^[0-9a-f]{64}$/.test(value);
}
