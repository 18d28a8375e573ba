import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ingestDirectory, materialize, openCache, stageKey, verifyArtifact, type Cache, type RunRecord, type StageKeyDocument } from '@headstart/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3RemoteCache, S3RemoteStore, UNSIGNED_WARNING, blobName, createS3Client, parseRemoteUrl, resultName, signingKeyFrom, type RemoteCacheOptions } from '../src/index.js';
import { BUCKET, CREDENTIALS, startS3Server, type S3Server } from './s3-server.js';

let server: S3Server;
let client: S3Client;
const clients: S3Client[] = [];

beforeAll(async () => {
  Object.assign(process.env, CREDENTIALS);
  server = await startS3Server();
  client = await createS3Client({ endpoint: server.endpoint, region: 'us-east-1' });
});

afterAll(async () => {
  for (const each of [client, ...clients]) each.destroy();
  await server?.close();
});

const temp = (label: string) => mkdtempSync(join(tmpdir(), `headstart-remote-${label}-`));

/** A remote cache under a prefix of its own, so tests do not see each other's objects. */
async function remoteCache(prefix: string, options: Partial<RemoteCacheOptions> = {}): Promise<{ remote: S3RemoteCache; warnings: string[] }> {
  const warnings: string[] = [];
  const own = await createS3Client({ endpoint: server.endpoint, region: 'us-east-1' });
  clients.push(own);
  const store = new S3RemoteStore(own, parseRemoteUrl(`s3://${BUCKET}/${prefix}`), server.endpoint);
  await store.checkAccess();
  const remote = new S3RemoteCache(store, { push: true, signingKey: undefined, headstartVersion: '9.9.9', warn: (message) => warnings.push(message), ...options });
  return { remote, warnings };
}

function freshCache(): Cache {
  return openCache(temp('cache'), () => {});
}

/** A stage result in `cache` with one output holding the given files. */
async function recordWith(cache: Cache, files: Record<string, Buffer | string>, seed = 0): Promise<RunRecord> {
  const dir = temp('out');
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  const output = await ingestDirectory(dir, cache.store, cache.hasher);
  const keyDocument: StageKeyDocument = {
    keyVersion: 1,
    step: { name: 'test', source: 'builtin', package: '@headstart/test', packageVersion: '1', version: '1', code: '1' },
    params: { files: Object.keys(files) },
    inputs: {},
    deps: {},
    seed,
  };
  const record: RunRecord = { recordVersion: 1, key: stageKey(keyDocument), stage: 'make', keyDocument, outputs: { out: output }, durationMs: 5, createdAt: new Date().toISOString(), metrics: { accuracy: 0.9 } };
  await cache.store.writeRecord(record);
  return record;
}

async function objectBytes(key: string): Promise<Buffer> {
  const response = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from(await response.Body!.transformToByteArray());
}

const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');

describe('S3RemoteCache against a real S3 server', () => {
  it('publishes blobs then the stage result, and pulls them into an empty cache, verified', async () => {
    const { remote } = await remoteCache('roundtrip');
    const local = freshCache();
    const big = randomBytes(12 * 1024 * 1024);
    const record = await recordWith(local, { 'weights.bin': big, 'sub/model.json': '{"a":1}' });

    const report = await remote.publish(record, local);
    expect(report).toEqual({ objects: 3, uploaded: 3, uploadedBytes: big.length + 7 + readFileSync(local.store.objectPath(record.outputs['out']!.hash)).length });
    const location = parseRemoteUrl(`s3://${BUCKET}/roundtrip`);
    expect(blobName(location, sha256(big) as never)).toBe(`roundtrip/v1/cas/sha256/${sha256(big).slice(0, 2)}/${sha256(big)}`);
    expect(sha256(await objectBytes(blobName(location, sha256(big) as never)))).toBe(sha256(big));
    const stored = JSON.parse((await objectBytes(resultName(location, record.key))).toString());
    expect(stored).toMatchObject({ key: record.key, outputs: record.outputs, headstartVersion: '9.9.9', producer: { host: expect.any(String) } });
    expect((await remote.publish(record, local)).uploaded).toBe(0);

    const other = freshCache();
    const found = await remote.lookup(record.key);
    // Unsigned: marked so that core re-derives its metrics from its outputs before using them.
    expect(found).toEqual({ ...record, unverifiedMetrics: true });
    expect(await remote.pull(found!, other)).toBe(true);
    expect(await other.store.readRecord(record.key)).toEqual({ ...record, unverifiedMetrics: true });
    expect(await verifyArtifact(record.outputs['out']!, other.store)).toBe(true);
    expect(readFileSync(join(await materialize(record.outputs['out']!, other.store), 'weights.bin')).equals(big)).toBe(true);
  });

  it('a missing stage result is a miss, even when its blobs are all there', async () => {
    const { remote } = await remoteCache('partial');
    const local = freshCache();
    const record = await recordWith(local, { 'a.txt': 'a' });
    const location = parseRemoteUrl(`s3://${BUCKET}/partial`);
    for (const hash of [record.outputs['out']!.hash, sha256('a')]) {
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: blobName(location, hash as never), Body: readFileSync(local.store.objectPath(hash as never)) }));
    }
    expect(await remote.lookup(record.key)).toBeUndefined();
  });

  it('a corrupt blob is never used: the pull fails, and the next publish uploads it again', async () => {
    const { remote, warnings } = await remoteCache('corrupt');
    const local = freshCache();
    const record = await recordWith(local, { 'a.txt': 'good bytes' });
    await remote.publish(record, local);
    const blob = blobName(parseRemoteUrl(`s3://${BUCKET}/corrupt`), sha256('good bytes') as never);
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: blob, Body: 'evil bytes' }));

    const other = freshCache();
    expect(await remote.pull((await remote.lookup(record.key))!, other)).toBe(false);
    expect(warnings).toEqual([UNSIGNED_WARNING, `remote object ${sha256('good bytes').slice(0, 12)} is corrupt (its content does not match its hash); ignoring the remote result for stage "make"`]);
    expect(await other.store.verify(sha256('good bytes') as never)).toBe(false);
    expect(await other.store.readRecord(record.key)).toBeUndefined();

    expect((await remote.publish(record, local)).uploaded).toBe(1);
    expect((await objectBytes(blob)).toString()).toBe('good bytes');
  });

  it('refuses results whose key document does not hash to their key, and manifests that point outside their tree', async () => {
    const { remote, warnings } = await remoteCache('forged');
    const local = freshCache();
    const record = await recordWith(local, { 'a.txt': 'a' });
    await remote.publish(record, local);
    const location = parseRemoteUrl(`s3://${BUCKET}/forged`);
    const forged = { ...record, keyDocument: { ...record.keyDocument, seed: 7 } };
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: resultName(location, record.key), Body: JSON.stringify(forged) }));
    expect(await remote.lookup(record.key)).toBeUndefined();
    expect(warnings.pop()).toContain('its key document does not hash to its key');

    const evilManifest = JSON.stringify({ type: 'tree', entries: [{ path: '../../escape.txt', hash: sha256('a'), size: 1 }] });
    const evil = await recordWith(local, { 'b.txt': 'b' }, 1);
    evil.outputs['out'] = { hash: sha256(evilManifest) as never, size: 1 };
    await local.store.putBytes(sha256(evilManifest) as never, evilManifest);
    await remote.publish(evil, local);
    expect(await remote.pull((await remote.lookup(evil.key))!, freshCache())).toBe(false);
    expect(warnings.pop()).toContain('is not a valid tree manifest');
  });

  it('with a signing key, accepts results signed with it and ignores unsigned or modified ones', async () => {
    const key = Buffer.from('k'.repeat(32));
    const { remote: signed, warnings } = await remoteCache('signed', { signingKey: key });
    const { remote: unsigned } = await remoteCache('signed');
    const local = freshCache();
    const record = await recordWith(local, { 'a.txt': 'signed' });

    await signed.publish(record, local);
    expect(await signed.lookup(record.key)).toEqual(record);

    const location = parseRemoteUrl(`s3://${BUCKET}/signed`);
    const original = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: resultName(location, record.key) }));
    const tampered = (await original.Body!.transformToString()).replace('"accuracy": 0.9', '"accuracy": 0.99');
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: resultName(location, record.key), Body: tampered, Metadata: original.Metadata! }));
    expect(await signed.lookup(record.key)).toBeUndefined();
    expect(warnings.pop()).toBe(`remote result ${record.key.slice(0, 12)} is signed with another key or was modified; ignoring it`);

    await unsigned.publish(record, local);
    expect(await signed.lookup(record.key)).toBeUndefined();
    expect(warnings.pop()).toBe(`remote result ${record.key.slice(0, 12)} is not signed; ignoring it`);
    expect(await unsigned.lookup(record.key)).toEqual({ ...record, unverifiedMetrics: true });
    expect(warnings).not.toContain(UNSIGNED_WARNING); // the signed remote checks what the warning says it cannot
  });

  it('pulls only what the local cache lacks, and leaves nothing in its tmp directory', async () => {
    const { remote, warnings } = await remoteCache('incremental');
    const local = freshCache();
    const record = await recordWith(local, { 'a.txt': 'kept', 'b.txt': 'fetched' });
    await remote.publish(record, local);
    const location = parseRemoteUrl(`s3://${BUCKET}/incremental`);
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: blobName(location, sha256('kept') as never), Body: 'damaged on the remote' }));

    const other = freshCache();
    await other.store.putBytes(sha256('kept') as never, 'kept');
    expect(await remote.pull(record, other)).toBe(true);
    expect(warnings).toEqual([UNSIGNED_WARNING]); // said once, by the publish
    expect(readFileSync(join(await materialize(record.outputs['out']!, other.store), 'b.txt'), 'utf8')).toBe('fetched');
    expect(readdirSync(join(other.root, 'tmp'))).toEqual([]);
  });
});

describe('remote settings', () => {
  it('parses s3://bucket[/prefix] and rejects anything else in one line', () => {
    expect(parseRemoteUrl('s3://cache')).toEqual({ url: 's3://cache', bucket: 'cache', prefix: '' });
    expect(parseRemoteUrl('s3://cache/team/ml/')).toEqual({ url: 's3://cache/team/ml', bucket: 'cache', prefix: 'team/ml/' });
    expect(() => parseRemoteUrl('https://cache/x')).toThrow('remote "https://cache/x": expected s3://bucket or s3://bucket/prefix');
    expect(() => parseRemoteUrl('s3://Bad_Bucket/x')).toThrow('"Bad_Bucket" is not a valid bucket name');
    expect(() => parseRemoteUrl('s3://cache/a/../b')).toThrow('may not contain');
  });

  it('refuses a signing key shorter than 32 bytes', () => {
    expect(signingKeyFrom({})).toBeUndefined();
    expect(() => signingKeyFrom({ HEADSTART_REMOTE_SIGNING_KEY: 'short' })).toThrow('HEADSTART_REMOTE_SIGNING_KEY must be at least 32 bytes (it has 5)');
    expect(signingKeyFrom({ HEADSTART_REMOTE_SIGNING_KEY: 'x'.repeat(32) })?.length).toBe(32);
  });
});
