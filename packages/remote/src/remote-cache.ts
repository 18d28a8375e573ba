import { statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isSha256Hex, readManifest, type Cache, type RemoteCache, type RunRecord, type Sha256Hex, type StageKey } from '@headstart/core';
import { forEachConcurrently } from './limit.js';
import { checkSignature, SIGNING_KEY_ENV, signResult } from './result-signature.js';
import type { S3RemoteStore } from './s3-remote-store.js';
import { parseStageResult, renderStageResult } from './stage-result.js';

export interface RemoteCacheOptions {
  /** Push the results of stages that ran here (false: read only). */
  push: boolean;
  /** HEADSTART_REMOTE_SIGNING_KEY: sign what is pushed, and ignore pulled results not signed with it. */
  signingKey: Buffer | undefined;
  headstartVersion: string;
  warn(message: string): void;
}

/** What one publish did. */
export interface PublishReport {
  /** Objects the result names (manifests and files). */
  objects: number;
  uploaded: number;
  uploadedBytes: number;
}

/** One blob of a result: its hash and where the local store keeps it. */
interface LocalBlob {
  hash: Sha256Hex;
  path: string;
  size: number;
}

const TRANSFERS_AT_ONCE = 8;

/** Said once per process that uses a remote without the key: what is and is not checked then. */
export const UNSIGNED_WARNING =
  `the remote cache's results are not signed (${SIGNING_KEY_ENV} is not set): pulled objects are checked against their hashes, ` +
  'but whoever can write to the bucket can substitute a result; metrics are read from the pulled outputs, not the record';

/**
 * The executor's remote-cache hooks over an S3 bucket. Pulled objects are verified by hash and enter the
 * local store the way the store's own writes do; the local run record is written last. Pushes upload the
 * blobs first and the stage result last, so an interrupted push is never a hit.
 */
export class S3RemoteCache implements RemoteCache {
  /** Blobs found corrupt in this process: re-uploaded on the next publish even though they exist. */
  private readonly corrupt = new Set<Sha256Hex>();
  private warnedUnsigned = false;

  constructor(readonly store: S3RemoteStore, private readonly options: RemoteCacheOptions) {}

  get canPublish(): boolean {
    return this.options.push;
  }

  async lookup(key: StageKey): Promise<RunRecord | undefined> {
    this.warnIfUnsigned();
    const stored = await this.store.readResult(key);
    if (!stored) return undefined;
    const { signingKey, warn } = this.options;
    const what = `remote result ${key.slice(0, 12)}`;
    if (signingKey) {
      const check = checkSignature(signingKey, key, stored.bytes, stored.signature);
      if (check !== 'valid') {
        warn(`${what} is ${check === 'unsigned' ? 'not signed' : 'signed with another key or was modified'}; ignoring it`);
        return undefined;
      }
    }
    const record = parseStageResult(stored.bytes, key);
    if (typeof record === 'string') {
      warn(`${what} cannot be used: ${record}; ignoring it`);
      return undefined;
    }
    // Unsigned, only its key document and objects are checked: core re-derives its metrics from its outputs.
    // Signed, it is as its signer pushed it (still marked if the signer had pulled it unsigned and not used it).
    return signingKey ? record : { ...record, unverifiedMetrics: true };
  }

  /** Downloads every object the record names (each verified), then writes the record locally: false if any is bad. */
  async pull(record: RunRecord, cache: Cache): Promise<boolean> {
    const staging = await cache.store.tempDir('pull');
    try {
      for (const ref of Object.values(record.outputs)) {
        if (!(await this.pullBlob(ref.hash, cache, staging, record))) return false;
        const entries = await readManifest(ref.hash, cache.store);
        if (!entries?.every((entry) => isSha256Hex(entry.hash) && isSafeRelativePath(entry.path))) {
          this.options.warn(`remote object ${ref.hash.slice(0, 12)} is not a valid tree manifest; ignoring the remote result for stage "${record.stage}"`);
          return false;
        }
        let complete = true;
        await forEachConcurrently(entries, TRANSFERS_AT_ONCE, async (entry) => {
          if (complete && !(await this.pullBlob(entry.hash, cache, staging, record))) complete = false;
        });
        if (!complete) return false;
      }
      await cache.store.writeRecord(record);
      return true;
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }

  /** Uploads the blobs the remote lacks (and those found corrupt), then the stage result. */
  async publish(record: RunRecord, cache: Cache): Promise<PublishReport> {
    this.warnIfUnsigned();
    const blobs = await this.localBlobs(record, cache);
    const report: PublishReport = { objects: blobs.length, uploaded: 0, uploadedBytes: 0 };
    await forEachConcurrently(blobs, TRANSFERS_AT_ONCE, async (blob) => {
      if (!this.corrupt.has(blob.hash) && (await this.store.hasBlob(blob.hash))) return;
      await this.store.putBlob(blob.hash, blob.path);
      this.corrupt.delete(blob.hash);
      report.uploaded++;
      report.uploadedBytes += blob.size;
    });
    const bytes = renderStageResult(record, this.options.headstartVersion);
    const signature = this.options.signingKey ? signResult(this.options.signingKey, record.key, bytes) : undefined;
    await this.store.writeResult(record.key, bytes, signature);
    return report;
  }

  private warnIfUnsigned(): void {
    if (this.options.signingKey || this.warnedUnsigned) return;
    this.warnedUnsigned = true;
    this.options.warn(UNSIGNED_WARNING);
  }

  close(): void {
    this.store.close();
  }

  private async pullBlob(hash: Sha256Hex, cache: Cache, staging: string, record: RunRecord): Promise<boolean> {
    if (await cache.store.verify(hash)) return true;
    const download = join(staging, hash);
    const outcome = await this.store.getBlob(hash, download);
    if (outcome === 'verified') {
      await cache.store.put(hash, download);
      return true;
    }
    const object = `remote object ${hash.slice(0, 12)}`;
    if (outcome === 'corrupt') this.corrupt.add(hash);
    this.options.warn(
      outcome === 'corrupt'
        ? `${object} is corrupt (its content does not match its hash); ignoring the remote result for stage "${record.stage}"`
        : `${object} is missing; ignoring the remote result for stage "${record.stage}"`,
    );
    return false;
  }

  /** Files first, each output's manifest after them; every one checked intact before it is sent. */
  private async localBlobs(record: RunRecord, cache: Cache): Promise<LocalBlob[]> {
    const files = new Map<Sha256Hex, LocalBlob>();
    const manifests: LocalBlob[] = [];
    for (const ref of Object.values(record.outputs)) {
      const entries = await readManifest(ref.hash, cache.store);
      if (!entries) throw new Error(`output ${ref.hash.slice(0, 12)} of stage "${record.stage}" is missing from the local cache`);
      for (const entry of entries) files.set(entry.hash, await this.localBlob(entry.hash, cache));
      manifests.push(await this.localBlob(ref.hash, cache));
    }
    return [...files.values(), ...manifests];
  }

  private async localBlob(hash: Sha256Hex, cache: Cache): Promise<LocalBlob> {
    if (!(await cache.store.verify(hash))) throw new Error(`cache object ${hash.slice(0, 12)} is missing or corrupt; not pushing it`);
    const path = cache.store.objectPath(hash);
    return { hash, path, size: statSync(path).size };
  }
}

/** A manifest path that stays inside its tree: relative, `/`-separated, no `.` or `..` segments. */
function isSafeRelativePath(path: unknown): boolean {
  return typeof path === 'string' && path.length > 0 && !path.startsWith('/') && !path.includes('\\') && path.split('/').every((part) => part !== '' && part !== '.' && part !== '..');
}
