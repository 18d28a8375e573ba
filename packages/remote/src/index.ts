// Nothing here imports the AWS SDK at load time: it is imported when a remote is opened.
export { connectRemote } from './connect.js';
export type { ConnectOptions } from './connect.js';
export { S3RemoteCache, UNSIGNED_WARNING } from './remote-cache.js';
export type { PublishReport, RemoteCacheOptions } from './remote-cache.js';
export { S3RemoteStore } from './s3-remote-store.js';
export type { BlobDownload, StoredResult } from './s3-remote-store.js';
export { RemoteError, parseRemoteUrl } from './remote-url.js';
export type { RemoteLocation } from './remote-url.js';
export { blobName, resultName, LAYOUT_VERSION } from './layout.js';
export { SIGNING_KEY_ENV, checkSignature, signResult, signingKeyFrom } from './result-signature.js';
export { createS3Client, s3SettingsFrom } from './s3-client.js';
export type { S3Settings } from './s3-client.js';

/** The environment variable that names a remote when `--remote` is not given. */
export const REMOTE_ENV = 'HEADSTART_REMOTE';
