/** Where a shared cache lives: a bucket and a key prefix inside it ('' or ending in '/'). */
export interface RemoteLocation {
  url: string;
  bucket: string;
  prefix: string;
}

/** Thrown for a remote the user configured wrongly or that refuses us: printed as one line, exit 2. */
export class RemoteError extends Error {
  override name = 'RemoteError';
}

const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** `s3://bucket` or `s3://bucket/some/prefix` (a trailing slash is optional). */
export function parseRemoteUrl(url: string): RemoteLocation {
  const match = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(url.trim());
  if (!match) throw new RemoteError(`remote "${url}": expected s3://bucket or s3://bucket/prefix`);
  const bucket = match[1]!;
  if (!BUCKET_NAME.test(bucket)) throw new RemoteError(`remote "${url}": "${bucket}" is not a valid bucket name`);
  const path = (match[2] ?? '').replace(/\/+$/, '');
  if (path.split('/').some((part) => part === '.' || part === '..')) throw new RemoteError(`remote "${url}": the prefix may not contain "." or ".." segments`);
  return { url: `s3://${bucket}${path ? `/${path}` : ''}`, bucket, prefix: path ? `${path}/` : '' };
}
