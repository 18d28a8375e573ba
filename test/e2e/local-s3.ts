import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';

/** A file-backed S3 API (s3rver) on a free local port, with one empty bucket. */
export interface LocalS3 {
  endpoint: string;
  /** What a CI job or a laptop would have: credentials, this endpoint, and no stray AWS config. */
  env(): Record<string, string>;
  close(): Promise<void>;
}

export async function startLocalS3(bucket: string): Promise<LocalS3> {
  const directory = mkdtempSync(join(tmpdir(), 'headstart-s3-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory, configureBuckets: [{ name: bucket, configs: [] }] });
  const endpoint = `http://127.0.0.1:${(await server.run()).port}`;
  return {
    endpoint,
    env: () => ({
      AWS_ENDPOINT_URL_S3: endpoint,
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_REGION: 'us-east-1',
      AWS_CONFIG_FILE: join(tmpdir(), 'headstart-no-aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(tmpdir(), 'headstart-no-aws-credentials'),
      AWS_EC2_METADATA_DISABLED: 'true',
    }),
    close: async () => {
      await server.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
