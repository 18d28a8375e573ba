import { createRequire } from 'node:module';
import { S3RemoteCache } from './remote-cache.js';
import { signingKeyFrom } from './result-signature.js';
import { createS3Client, s3SettingsFrom } from './s3-client.js';
import { S3RemoteStore } from './s3-remote-store.js';
import { parseRemoteUrl } from './remote-url.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

export interface ConnectOptions {
  /** `s3://bucket[/prefix]`. */
  url: string;
  /** Push results of stages that ran (false: read only). */
  push: boolean;
  warn(message: string): void;
  env?: NodeJS.ProcessEnv;
}

/**
 * Opens the remote cache and proves it usable (endpoint reachable, bucket there, credentials accepted)
 * before anything else happens, so a bad remote fails with one line and the local cache untouched.
 * Throws RemoteError for everything the user can fix.
 */
export async function connectRemote(options: ConnectOptions): Promise<S3RemoteCache> {
  const env = options.env ?? process.env;
  const location = parseRemoteUrl(options.url);
  const signingKey = signingKeyFrom(env);
  const settings = s3SettingsFrom(env);
  const store = new S3RemoteStore(await createS3Client(settings), location, settings.endpoint);
  try {
    await store.checkAccess();
  } catch (error) {
    store.close();
    throw error;
  }
  return new S3RemoteCache(store, { push: options.push, signingKey, headstartVersion: version, warn: options.warn });
}
