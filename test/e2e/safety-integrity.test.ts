import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalS3, type LocalS3 } from './local-s3.js';
import { Rig } from './rig.js';

// A chain of two shell stages; each appends to a log when it actually runs.
const PIPELINE = `stages:
  source:
    uses: shell
    with: { run: "printf 'one\\ntwo\\n' > words.txt; echo ran >> source.log", outs: { words: words.txt } }
  first:
    uses: shell
    inputs: { words: source.words }
    with: { run: 'head -1 "$HEADSTART_INPUT_WORDS/words.txt" > first.txt; echo ran >> first.log', outs: { first: first.txt } }
`;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const runs = (rig: Rig, stage: string) => (rig.exists(`${stage}.log`) ? rig.read(`${stage}.log`).trim().split('\n').length : 0);

/** Rewrites a cache object in place with bytes of the same size, then puts its mtime back: only its ctime tells. */
function corruptInPlace(path: string, bytes: string): void {
  const before = statSync(path);
  expect(Buffer.byteLength(bytes)).toBe(before.size);
  const reference = `${path}.mtime`;
  copyFileSync(path, reference);
  execFileSync('touch', ['-r', path, reference]);
  chmodSync(path, 0o644);
  writeFileSync(path, bytes);
  chmodSync(path, before.mode);
  execFileSync('touch', ['-r', reference, path]);
  execFileSync('rm', ['-f', reference]);
  expect(statSync(path).mtimeMs).toBe(before.mtimeMs);
}

function project(): { rig: Rig; object: string } {
  const rig = new Rig();
  rig.write('headstart.yaml', PIPELINE);
  const hash = sha256('one\ntwo\n');
  return { rig, object: join(rig.dir, '.headstart/cache/objects', hash.slice(0, 2), hash.slice(2)) };
}

describe('a cache object changed in place with its mtime put back', () => {
  it('is found by status --check and never used by a forced downstream stage', async () => {
    const { rig, object } = project();
    expect((await rig.runJson()).statuses).toEqual({ source: 'ran', first: 'ran' });
    corruptInPlace(object, 'ONE\nTWO\n');

    const status = await rig.run('status', '--check');
    expect(status.exitCode).toBe(1);
    expect(status.stderr).toContain(`cache object ${sha256('one\ntwo\n').slice(0, 12)} is corrupt`);

    const forced = await rig.runJson('--force', 'first');
    expect(forced.statuses).toEqual({ source: 'ran', first: 'ran' });
    expect(rig.read('first.txt')).toBe('one\n');
    expect(readFileSync(object, 'utf8')).toBe('one\ntwo\n');
  });

  it('`headstart verify` re-hashes every object, removes the bad ones and the runs that name them, and exits 1', async () => {
    const { rig, object } = project();
    await rig.runJson();
    const clean = await rig.run('verify');
    expect(clean.exitCode, clean.stderr).toBe(0);
    expect(clean.stdout).toMatch(/^verified \d+ objects: all intact$/m);

    corruptInPlace(object, 'ONE\nTWO\n');
    const bad = await rig.run('verify');
    expect(bad.exitCode).toBe(1);
    expect(bad.stdout).toContain(`corrupt: ${sha256('one\ntwo\n')}`);
    expect(bad.stdout).toMatch(/removed 1 corrupt object and 1 run record that named it/);
    expect(rig.exists(object.slice(rig.dir.length + 1))).toBe(false);
    expect((await rig.run('verify')).exitCode).toBe(0);

    expect((await rig.runJson()).statuses).toEqual({ source: 'ran', first: 'cached' });
    expect([runs(rig, 'source'), runs(rig, 'first')]).toEqual([2, 1]);
  });
});

const BUCKET = 'cache';
let localS3: LocalS3;
let s3: S3Client;

beforeAll(async () => {
  process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] = 'true';
  localS3 = await startLocalS3(BUCKET);
  s3 = new S3Client({ region: 'us-east-1', endpoint: localS3.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
});

afterAll(async () => {
  s3?.destroy();
  await localS3?.close();
});

// `score` writes its metrics into its output and can read them back (summarize); `timing` reports a
// number no output holds.
const SCORE_STEP = `import { readFile, writeFile } from 'node:fs/promises';
export default {
  name: 'score', version: '1', params: { type: 'object' }, outputs: ['metrics'],
  async run(ctx) {
    await writeFile(ctx.outputs.metrics + '/metrics.json', JSON.stringify({ accuracy: 0.775 }));
    return { metrics: { accuracy: 0.775 } };
  },
  async summarize(ctx) {
    return { metrics: JSON.parse(await readFile(ctx.outputs.metrics + '/metrics.json', 'utf8')) };
  },
};
`;
const TIMING_STEP = `import { writeFile } from 'node:fs/promises';
export default {
  name: 'timing', version: '1', params: { type: 'object' }, outputs: ['out'],
  async run(ctx) { await writeFile(ctx.outputs.out + '/done.txt', 'done'); return { metrics: { images_per_second: 5 } }; },
};
`;
const METRICS_PIPELINE = 'stages:\n  eval: { uses: ./score.mjs }\n  speed: { uses: ./timing.mjs }\n';

function metricsProject(): Rig {
  const rig = new Rig();
  rig.write('headstart.yaml', METRICS_PIPELINE);
  rig.write('score.mjs', SCORE_STEP);
  rig.write('timing.mjs', TIMING_STEP);
  return rig;
}

async function editResult(prefix: string, key: string, edit: (text: string) => string): Promise<void> {
  const Key = `${prefix}/v1/ac/${key}.json`;
  const original = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key }));
  const text = edit(await original.Body!.transformToString());
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: text, ...(original.Metadata ? { Metadata: original.Metadata } : {}) }));
}

function lockedMetrics(rig: Rig): Record<string, unknown> {
  const stages = rig.lockfile().stages as Record<string, { metrics?: unknown }>;
  return Object.fromEntries(Object.entries(stages).map(([id, entry]) => [id, entry.metrics]));
}

describe('a result pulled from a remote without a signing key', () => {
  it('takes its metrics from its verified outputs, not from the record, and says once that results are unsigned', async () => {
    const remote = ['--remote', `s3://${BUCKET}/metrics`];
    const ci = metricsProject();
    const pushed = await ci.runWith(localS3.env(), 'run', '--json', ...remote);
    expect(pushed.exitCode, pushed.stderr).toBe(0);
    const keys = Object.fromEntries((JSON.parse(pushed.stdout) as { stages: { id: string; key: string }[] }).stages.map((s) => [s.id, s.key]));
    await editResult('metrics', keys['eval']!, (text) => text.replace('"accuracy": 0.775', '"accuracy": 0.99'));
    await editResult('metrics', keys['speed']!, (text) => text.replace('"images_per_second": 5', '"images_per_second": 500'));

    const laptop = metricsProject();
    const pulled = await laptop.runWith(localS3.env(), 'run', '--json', ...remote);
    expect(pulled.exitCode, pulled.stderr).toBe(0);
    const stages = (JSON.parse(pulled.stdout) as { stages: { id: string; remote?: boolean; metrics?: Record<string, number> }[] }).stages;
    expect(stages.map((s) => [s.id, s.remote, s.metrics])).toEqual([['eval', true, { accuracy: 0.775 }], ['speed', true, undefined]]);
    expect(lockedMetrics(laptop)).toEqual({ eval: { accuracy: 0.775 }, speed: undefined });
    expect(pulled.stderr.split('\n').filter((line) => line.includes('HEADSTART_REMOTE_SIGNING_KEY is not set'))).toHaveLength(1);

    const again = await laptop.runJson();
    expect(again.statuses).toEqual({ eval: 'cached', speed: 'cached' });
    expect(lockedMetrics(laptop)).toEqual({ eval: { accuracy: 0.775 }, speed: undefined });
  });
});
