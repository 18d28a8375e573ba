import type { S3Client } from '@aws-sdk/client-s3';

export interface S3Settings {
  /** AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL: a MinIO, R2 or Ceph endpoint; undefined for AWS itself. */
  endpoint: string | undefined;
  region: string;
}

export function s3SettingsFrom(env: NodeJS.ProcessEnv): S3Settings {
  return {
    endpoint: env['AWS_ENDPOINT_URL_S3'] || env['AWS_ENDPOINT_URL'] || undefined,
    region: env['AWS_REGION'] || env['AWS_DEFAULT_REGION'] || 'us-east-1',
  };
}

/**
 * An S3 client using the standard AWS credential chain. The SDK is imported here, on demand, so a run
 * without a remote never loads it. Path-style addressing when an endpoint is set (MinIO, Ceph and
 * friends rarely do virtual hosts); checksums only when an operation requires them, which non-AWS
 * servers accept.
 */
export async function createS3Client(settings: S3Settings): Promise<S3Client> {
  // The SDK prints a multi-line NodeVersionSupportWarning on Node 20: not something our users can act on.
  process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
  const { S3Client } = await import('@aws-sdk/client-s3');
  return new S3Client({
    region: settings.region,
    ...(settings.endpoint ? { endpoint: settings.endpoint, forcePathStyle: true } : {}),
    followRegionRedirects: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: { connectionTimeout: 5_000 },
  });
}
