import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Sha256Hex, StageKey } from '@headstart/core';
import { blobName, layoutRoot, resultName } from './layout.js';
import type { RemoteLocation } from './remote-url.js';
import { describeS3Error, isNotFound } from './s3-errors.js';

export type BlobDownload = 'verified' | 'missing' | 'corrupt';

/** A stage result's bytes as stored, with the signature kept in its object metadata, if any. */
export interface StoredResult {
  bytes: Buffer;
  signature: string | undefined;
}

const PART_SIZE = 8 * 1024 * 1024;
const SIGNATURE_METADATA = 'headstart-signature';

/**
 * Blobs and stage results in an S3-compatible bucket (layout in layout.ts). Large objects are streamed
 * both ways, never held in memory whole; every downloaded blob is re-hashed before anyone may use it.
 */
export class S3RemoteStore {
  constructor(
    private readonly client: S3Client,
    readonly location: RemoteLocation,
    readonly endpoint: string | undefined,
  ) {}

  /** Fails with one clear line when the endpoint is unreachable, the bucket missing or the credentials refused. */
  async checkAccess(): Promise<void> {
    const { ListObjectsV2Command } = await import('@aws-sdk/client-s3');
    // Listing the layout root by folder returns at most its two folders (ac/, cas/): cheap, and allowed by a
    // policy that grants s3:ListBucket on the prefix only.
    await this.attempt(() => this.client.send(new ListObjectsV2Command({ Bucket: this.location.bucket, Prefix: layoutRoot(this.location), Delimiter: '/' })));
  }

  async hasBlob(hash: Sha256Hex): Promise<boolean> {
    const { HeadObjectCommand } = await import('@aws-sdk/client-s3');
    const head = await this.unlessMissing(() => this.client.send(new HeadObjectCommand({ Bucket: this.location.bucket, Key: blobName(this.location, hash) })));
    return head !== undefined;
  }

  /** Streams the blob into `destination` while hashing it; only a `verified` file may be used. */
  async getBlob(hash: Sha256Hex, destination: string): Promise<BlobDownload> {
    const { GetObjectCommand } = await import('@aws-sdk/client-s3');
    const response = await this.unlessMissing(() => this.client.send(new GetObjectCommand({ Bucket: this.location.bucket, Key: blobName(this.location, hash) })));
    if (!response?.Body) return 'missing';
    const digest = createHash('sha256');
    const hashing = async function* (chunks: AsyncIterable<Buffer>) {
      for await (const chunk of chunks) {
        digest.update(chunk);
        yield chunk;
      }
    };
    await this.attempt(() => pipeline(response.Body as Readable, hashing, createWriteStream(destination)));
    if (digest.digest('hex') === hash) return 'verified';
    await rm(destination, { force: true });
    return 'corrupt';
  }

  /** Uploads a file from disk, in parts when large (a few parts in memory at a time, never the whole file). */
  async putBlob(hash: Sha256Hex, source: string): Promise<void> {
    const { Upload } = await import('@aws-sdk/lib-storage');
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.location.bucket, Key: blobName(this.location, hash), Body: createReadStream(source) },
      partSize: PART_SIZE,
      queueSize: 2,
    });
    await this.attempt(() => upload.done());
  }

  async readResult(key: StageKey): Promise<StoredResult | undefined> {
    const { GetObjectCommand } = await import('@aws-sdk/client-s3');
    const response = await this.unlessMissing(() => this.client.send(new GetObjectCommand({ Bucket: this.location.bucket, Key: resultName(this.location, key) })));
    if (!response?.Body) return undefined;
    return { bytes: Buffer.from(await response.Body.transformToByteArray()), signature: response.Metadata?.[SIGNATURE_METADATA] };
  }

  /** One PUT: an S3 object appears whole or not at all, so this write is what commits a pushed result. */
  async writeResult(key: StageKey, bytes: Buffer, signature: string | undefined): Promise<void> {
    const { PutObjectCommand } = await import('@aws-sdk/client-s3');
    const put = new PutObjectCommand({
      Bucket: this.location.bucket,
      Key: resultName(this.location, key),
      Body: bytes,
      ContentType: 'application/json',
      ...(signature ? { Metadata: { [SIGNATURE_METADATA]: signature } } : {}),
    });
    await this.attempt(() => this.client.send(put));
  }

  close(): void {
    this.client.destroy();
  }

  /** Runs one SDK call; its failure becomes one line a user can act on. */
  private async attempt<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw describeS3Error(error, this.location, this.endpoint);
    }
  }

  /** Like attempt, with a missing object answered by undefined. */
  private async unlessMissing<T>(call: () => Promise<T>): Promise<T | undefined> {
    try {
      return await call();
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw describeS3Error(error, this.location, this.endpoint);
    }
  }
}
