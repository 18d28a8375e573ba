import type { RemoteLocation } from './remote-url.js';
import { RemoteError } from './remote-url.js';

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'TimeoutError']);
const CREDENTIAL_ERRORS = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'InvalidToken', 'ExpiredToken', 'Forbidden']);

/** Whether the SDK error says the object is not there (HEAD answers 404 with no body, GET says NoSuchKey). */
export function isNotFound(error: unknown): boolean {
  const { name, $metadata } = error as SdkError;
  return name === 'NotFound' || name === 'NoSuchKey' || (name !== 'NoSuchBucket' && $metadata?.httpStatusCode === 404);
}

/** One line a user can act on, for the ways a remote commonly fails: unreachable, no bucket, refused credentials. */
export function describeS3Error(error: unknown, location: RemoteLocation, endpoint: string | undefined): RemoteError {
  const { name = 'Error', code, message = String(error), $metadata } = (error ?? {}) as SdkError;
  const prefix = `remote ${location.url}`;
  const firstLine = message.split('\n')[0]!.trim();
  if (name === 'NoSuchBucket') return new RemoteError(`${prefix}: bucket "${location.bucket}" does not exist`);
  if (CREDENTIAL_ERRORS.has(name) || $metadata?.httpStatusCode === 403) {
    return new RemoteError(`${prefix}: the credentials were refused (${name}: ${firstLine}); check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE`);
  }
  if (name === 'CredentialsProviderError') return new RemoteError(`${prefix}: no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE`);
  if ((code && NETWORK_CODES.has(code)) || NETWORK_CODES.has(name)) {
    return new RemoteError(`${prefix}: cannot reach ${endpoint ?? 'the S3 endpoint'} (${code ?? name})`);
  }
  return new RemoteError(`${prefix}: ${name}: ${firstLine}`);
}
