import { createHash } from 'node:crypto';
import { copyFileSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './free-port.js';
import { startLocalS3, type LocalS3 } from './local-s3.js';
import { REPO, Rig } from './rig.js';

const BUCKET = 'cache';
const SIGNING_KEY = 'a-signing-key-of-at-least-32-bytes!';

// Three stages in a chain plus one on the side; each appends to a log when it actually runs.
const PIPELINE = `stages:
  source:
    uses: shell
    with: { run: "seq 3 > nums.txt; echo ran >> source.log", outs: { nums: nums.txt } }
  firstline:
    uses: shell
    inputs: { nums: source.nums }
    with: { run: 'head -1 "$HEADSTART_INPUT_NUMS/nums.txt" > first.txt; echo ran >> firstline.log', outs: { first: first.txt } }
  side:
    uses: shell
    with: { run: "echo side > side.txt; echo ran >> side.log", outs: [side.txt] }
`;
const STAGES = ['source', 'firstline', 'side'];

let localS3: LocalS3;
let endpoint: string;
let s3: S3Client;

beforeAll(async () => {
  process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] = 'true';
  localS3 = await startLocalS3(BUCKET);
  endpoint = localS3.endpoint;
  s3 = new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
});

afterAll(async () => {
  s3?.destroy();
  await localS3?.close();
});

/** The environment a CI job or a laptop would have, plus `extra`. */
function awsEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { ...localS3.env(), ...extra };
}

function project(pipeline = PIPELINE): Rig {
  const rig = new Rig();
  rig.write('headstart.yaml', pipeline);
  return rig;
}

const runs = (rig: Rig, stage: string) => (rig.exists(`${stage}.log`) ? rig.read(`${stage}.log`).trim().split('\n').length : 0);
const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');
const blobKey = (prefix: string, hash: string) => `${prefix}/v1/cas/sha256/${hash.slice(0, 2)}/${hash}`;
const resultKey = (prefix: string, key: string) => `${prefix}/v1/ac/${key}.json`;

async function exists(key: string): Promise<boolean> {
  return s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key })).then(() => true, () => false);
}

async function objectBytes(key: string): Promise<Buffer> {
  const response = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from(await response.Body!.transformToByteArray());
}

async function keysUnder(prefix: string): Promise<string[]> {
  const listing = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${prefix}/` }));
  return (listing.Contents ?? []).map((object) => object.Key!);
}

async function runRemote(rig: Rig, prefix: string, env: Record<string, string> = {}, ...args: string[]) {
  const result = await rig.runWith(awsEnv(env), 'run', '--json', '--remote', `s3://${BUCKET}/${prefix}`, ...args);
  const json = JSON.parse(result.stdout) as { stages: { id: string; status: string; key: string; remote?: boolean }[] };
  const statuses = Object.fromEntries(json.stages.map((s) => [s.id, s.remote ? 'remote' : s.status]));
  const keys = Object.fromEntries(json.stages.map((s) => [s.id, s.key]));
  return { ...result, statuses, keys };
}

describe('a shared cache on an S3-compatible store', () => {
  it('push, then a run in an empty cache elsewhere is all remote hits: nothing executes, outputs are restored', async () => {
    const ci = project();
    expect((await ci.run('run')).exitCode).toBe(0);
    const push = await ci.runWith(awsEnv(), 'push', '--remote', `s3://${BUCKET}/pushed`);
    expect(push.exitCode, push.stderr).toBe(0);
    expect(push.stdout).toMatch(/^↑ source: pushed \(2 of 2 objects uploaded, \d+ B\)$/m);
    expect(push.stderr).not.toContain('NodeVersionSupportWarning');

    const laptop = project();
    const status = await laptop.runWith(awsEnv(), 'status', '--remote', `s3://${BUCKET}/pushed`);
    expect(status.stdout.trim().split('\n').slice(0, 3).sort()).toEqual(STAGES.map((id) => `· ${id}: remote hit (will be pulled, not run)`).sort());
    const run = await runRemote(laptop, 'pushed');
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.statuses).toEqual({ source: 'remote', firstline: 'remote', side: 'remote' });
    expect(STAGES.map((id) => runs(laptop, id))).toEqual([0, 0, 0]);
    expect(laptop.read('first.txt')).toBe('1\n');
    expect(laptop.lockfile().stages).toEqual(ci.lockfile().stages);
    expect(Object.values((await laptop.runJson()).statuses)).toEqual(['cached', 'cached', 'cached']);

    const pulled = project();
    const pull = await pulled.runWith(awsEnv(), 'pull', '--remote', `s3://${BUCKET}/pushed`, '--stage', 'firstline');
    expect(pull.stdout.trim().split('\n')).toEqual(['↓ source: pulled', '↓ firstline: pulled']);
    expect((await pulled.runJson('--stage', 'firstline')).statuses).toEqual({ source: 'cached', firstline: 'cached' });
  });

  it('run --remote pushes what it ran; --push never writes nothing to the bucket', async () => {
    const reader = project();
    expect((await runRemote(reader, 'readonly', {}, '--push', 'never')).statuses).toEqual({ source: 'ran', firstline: 'ran', side: 'ran' });
    expect(await keysUnder('readonly')).toEqual([]);

    const writer = project();
    const first = await runRemote(writer, 'readonly');
    expect(first.statuses).toEqual({ source: 'ran', firstline: 'ran', side: 'ran' });
    expect(await exists(resultKey('readonly', first.keys['side']!))).toBe(true);
    expect((await runRemote(project(), 'readonly', {}, '--push', 'never')).statuses).toEqual({ source: 'remote', firstline: 'remote', side: 'remote' });
  });

  it('remote: in the pipeline file is used when neither --remote nor $HEADSTART_REMOTE names one', async () => {
    const withRemote = (prefix: string) => `remote: s3://${BUCKET}/${prefix}\n${PIPELINE}`;
    const ci = project(withRemote('from-file'));
    const run = await ci.runWith(awsEnv(), 'run', '--json');
    expect(run.exitCode, run.stderr).toBe(0);
    expect(await keysUnder('from-file')).not.toEqual([]);

    const laptop = project(withRemote('from-file'));
    expect((await laptop.runWith(awsEnv(), 'status')).stdout).toContain('· source: remote hit (will be pulled, not run)');
    const overridden = await laptop.runWith(awsEnv({ HEADSTART_REMOTE: `s3://${BUCKET}/from-env` }), 'run', '--json');
    expect(JSON.parse(overridden.stdout).stages.map((s: { remote?: boolean }) => s.remote ?? false)).toEqual([false, false, false]);
    expect(await keysUnder('from-env')).not.toEqual([]);

    const offline = project(withRemote('from-file'));
    const local = await offline.runWith(awsEnv({ AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9' }), 'run', '--json', '--remote', 'none');
    expect(local.exitCode, local.stderr).toBe(0);
    expect(JSON.parse(local.stdout).stages.map((s: { status: string }) => s.status)).toEqual(['ran', 'ran', 'ran']);
  });

  it('a corrupted blob in the bucket is detected, the stage recomputed and the blob uploaded again', async () => {
    const ci = project();
    await runRemote(ci, 'corrupt');
    const blob = blobKey('corrupt', sha256(ci.read('nums.txt')));
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: blob, Body: '1\n2\n4\n' }));

    const laptop = project();
    const run = await runRemote(laptop, 'corrupt');
    expect(run.stderr).toContain(`remote object ${sha256(ci.read('nums.txt')).slice(0, 12)} is corrupt`);
    expect(run.statuses).toEqual({ source: 'ran', firstline: 'remote', side: 'remote' });
    expect(laptop.read('nums.txt')).toBe('1\n2\n3\n');
    expect((await objectBytes(blob)).toString()).toBe('1\n2\n3\n');
    expect((await runRemote(project(), 'corrupt')).statuses).toEqual({ source: 'remote', firstline: 'remote', side: 'remote' });
  });

  it('kill -9 during the push of a large output leaves no stage result; the next run recomputes and pushes it', async () => {
    const pipeline = `stages:
  small: { uses: shell, with: { run: "echo small > small.txt", outs: [small.txt] } }
  big: { uses: shell, needs: [small], with: { run: "head -c 12000000 /dev/urandom > big.bin; echo ran >> big.log", outs: [big.bin] } }
`;
    const ci = project(pipeline);
    const local = await ci.runJson();
    const keys = Object.fromEntries(local.json.stages.map((s) => [s.id, s.key!]));
    const bigBlob = sha256(readFileSync(join(ci.dir, 'big.bin')));
    // A proxy in front of the server holds the upload of big.bin's bytes, so the kill lands mid-push.
    const proxy = await stallingProxy(endpoint, (req) => req.method !== 'HEAD' && req.url!.includes(bigBlob));
    try {
      const push = ci.spawn(awsEnv({ AWS_ENDPOINT_URL_S3: proxy.endpoint }), 'push', '--remote', `s3://${BUCKET}/killed`);
      const ended = push.then((result) => {
        throw new Error(`push ended before its upload of big.bin began (exit ${result.exitCode}): ${String(result.stderr)}`);
      });
      await Promise.race([proxy.stalled, ended]);
      push.kill('SIGKILL');
      await push;
    } finally {
      await proxy.close();
    }
    expect(await exists(resultKey('killed', keys['small']!))).toBe(true);
    expect(await exists(resultKey('killed', keys['big']!))).toBe(false);

    const laptop = project(pipeline);
    expect((await runRemote(laptop, 'killed')).statuses).toEqual({ small: 'remote', big: 'ran' });
    expect(await exists(resultKey('killed', keys['big']!))).toBe(true);
    expect((await runRemote(project(pipeline), 'killed')).statuses).toEqual({ small: 'remote', big: 'remote' });
  });

  it('with a signing key, a tampered or unsigned stage result is ignored with a warning and the stage recomputed', async () => {
    const signedEnv = { HEADSTART_REMOTE_SIGNING_KEY: SIGNING_KEY };
    const ci = project();
    const first = await runRemote(ci, 'signed', signedEnv);
    const sideResult = resultKey('signed', first.keys['side']!);
    const original = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: sideResult }));
    const tampered = (await original.Body!.transformToString()).replace(/"durationMs": \d+/, '"durationMs": 1');
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: sideResult, Body: tampered, Metadata: original.Metadata! }));

    const laptop = project();
    const run = await runRemote(laptop, 'signed', signedEnv, '--push', 'never');
    expect(run.statuses).toEqual({ source: 'remote', firstline: 'remote', side: 'ran' });
    expect(run.stderr).toContain(`warning: remote result ${first.keys['side']!.slice(0, 12)} is signed with another key or was modified; ignoring it`);

    await runRemote(project(), 'unsigned');
    const strict = await runRemote(project(), 'unsigned', signedEnv);
    expect(strict.statuses).toEqual({ source: 'ran', firstline: 'ran', side: 'ran' });
    expect(strict.stderr).toContain(`warning: remote result ${strict.keys['source']!.slice(0, 12)} is not signed; ignoring it`);
    // The recomputed results were pushed signed, so the next signed reader hits.
    expect((await runRemote(project(), 'unsigned', signedEnv)).statuses).toEqual({ source: 'remote', firstline: 'remote', side: 'remote' });
  });

  it('a bad remote fails in one line with exit 2 and leaves the local cache untouched', async () => {
    const rig = project();
    await rig.runJson();
    const before = cacheSnapshot(rig);
    const closedPort = await freePort();
    const cases: [Record<string, string>, string[], RegExp][] = [
      [{}, ['run', '--remote', 's3://no-such-bucket/x'], /^remote s3:\/\/no-such-bucket\/x: bucket "no-such-bucket" does not exist$/],
      [{ AWS_ACCESS_KEY_ID: 'WRONG' }, ['run', '--remote', 's3://cache/x'], /^remote s3:\/\/cache\/x: the credentials were refused \(InvalidAccessKeyId: /],
      [{ AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${closedPort}` }, ['run', '--remote', 's3://cache/x'], new RegExp(`^remote s3://cache/x: cannot reach http://127.0.0.1:${closedPort} \\(ECONNREFUSED\\)$`)],
      [{ HEADSTART_REMOTE: 'https://cache/x' }, ['status'], /^remote "https:\/\/cache\/x": expected s3:\/\/bucket or s3:\/\/bucket\/prefix$/],
      [{ HEADSTART_REMOTE_SIGNING_KEY: 'too short' }, ['push', '--remote', 's3://cache/x'], /^HEADSTART_REMOTE_SIGNING_KEY must be at least 32 bytes \(it has 9\)$/],
      [{}, ['pull', '--remote', 's3://no-such-bucket/x'], /bucket "no-such-bucket" does not exist$/],
      [{}, ['push'], /^no remote cache: pass --remote s3:\/\/bucket\/prefix, set HEADSTART_REMOTE or add remote: to the pipeline file$/],
    ];
    for (const [env, args, expected] of cases) {
      const result = await rig.runWith(awsEnv(env), ...args);
      expect(result.exitCode, args.join(' ')).toBe(2);
      const lines = result.stderr.trim().split('\n');
      expect(lines, args.join(' ')).toHaveLength(1);
      expect(lines[0]).toMatch(expected);
    }
    expect(cacheSnapshot(rig)).toEqual(before);
    expect(STAGES.map((id) => runs(rig, id))).toEqual([1, 1, 1]);
  });

  it('mnist-tiny: a second machine gets every stage from the remote and the same metrics', async () => {
    const tiny = () => {
      const rig = new Rig();
      copyFileSync(join(REPO, 'pipelines/mnist-tiny.yaml'), join(rig.dir, 'headstart.yaml'));
      return rig;
    };
    const ci = tiny();
    const trained = await runRemote(ci, 'mnist');
    expect(trained.exitCode, trained.stderr).toBe(0);
    const laptop = tiny();
    const reused = await runRemote(laptop, 'mnist', {}, '--push', 'never');
    expect(reused.exitCode, reused.stderr).toBe(0);
    expect(Object.values(reused.statuses)).toEqual(Object.keys(reused.statuses).map(() => 'remote'));
    // Unsigned results get their metrics from their outputs: all but throughput, which no output holds.
    const withoutThroughput = (stages: Record<string, object>) =>
      Object.fromEntries(Object.entries(stages as Record<string, { metrics?: Record<string, number> }>).map(([id, { metrics, ...entry }]) => {
        const kept = Object.fromEntries(Object.entries(metrics ?? {}).filter(([name]) => name !== 'images_per_second'));
        return [id, Object.keys(kept).length > 0 ? { ...entry, metrics: kept } : entry];
      }));
    expect(laptop.lockfile().stages).toEqual(withoutThroughput(ci.lockfile().stages));
  });
});

/** Every file of the cache with its size and mtime, except what loading a pipeline may compile. */
function cacheSnapshot(rig: Rig): string[] {
  const root = join(rig.dir, '.headstart', 'cache');
  return (readdirSync(root, { recursive: true }) as string[])
    .filter((path) => !path.startsWith('validators') && !path.startsWith('parsed'))
    .sort()
    .map((path) => {
      const stat = statSync(join(root, path));
      return `${path} ${stat.isFile() ? stat.size : 'dir'} ${stat.mtimeMs}`;
    });
}

/** An HTTP proxy to `target` that never answers requests matching `stall`; `stalled` resolves at the first. */
async function stallingProxy(target: string, stall: (req: IncomingMessage) => boolean): Promise<{ endpoint: string; stalled: Promise<void>; close(): Promise<void> }> {
  const upstream = new URL(target);
  let onStall!: () => void;
  const stalled = new Promise<void>((resolve) => (onStall = resolve));
  const proxy: Server = createServer((req, res) => {
    if (stall(req)) {
      onStall();
      return;
    }
    const forwarded = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode!, answer.headers);
      answer.pipe(res);
    });
    forwarded.on('error', () => res.destroy());
    req.pipe(forwarded);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    stalled,
    close: async () => {
      proxy.closeAllConnections();
      await new Promise((resolve) => proxy.close(resolve));
    },
  };
}
