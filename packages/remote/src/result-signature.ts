import { createHmac, timingSafeEqual } from 'node:crypto';
import type { StageKey } from '@headstart/core';
import { RemoteError } from './remote-url.js';

export const SIGNING_KEY_ENV = 'HEADSTART_REMOTE_SIGNING_KEY';
const MIN_KEY_BYTES = 32;

/** The signing secret from the environment, if set; a short one is refused (it would give a false sense of safety). */
export function signingKeyFrom(env: NodeJS.ProcessEnv): Buffer | undefined {
  const value = env[SIGNING_KEY_ENV];
  if (!value) return undefined;
  const secret = Buffer.from(value, 'utf8');
  if (secret.length < MIN_KEY_BYTES) throw new RemoteError(`${SIGNING_KEY_ENV} must be at least ${MIN_KEY_BYTES} bytes (it has ${secret.length})`);
  return secret;
}

/** HMAC-SHA256 over the stage key and the stage result's exact bytes, in hex. */
export function signResult(secret: Buffer, key: StageKey, bytes: Uint8Array): string {
  return createHmac('sha256', secret).update(key).update('\n').update(bytes).digest('hex');
}

export type SignatureCheck = 'valid' | 'unsigned' | 'mismatch';

export function checkSignature(secret: Buffer, key: StageKey, bytes: Uint8Array, signature: string | undefined): SignatureCheck {
  if (!signature) return 'unsigned';
  const expected = Buffer.from(signResult(secret, key, bytes), 'hex');
  const given = Buffer.from(signature, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected) ? 'valid' : 'mismatch';
}
