import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './free-port.js';
import { startLocalS3, type LocalS3 } from './local-s3.js';
import { CLI, Rig, type CliResult } from './rig.js';

// One failure channel: every user error is one line on stderr and exit 2, whichever path it takes (the
// CLI itself, a step's code, the file system, a stage's child process on a queue worker).

/** A 2×2 red PNG. */
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAACXBIWXMAAAPoAAAD6AG1e1JrAAAAE0lEQVR4nGP4z8DwnwGM/zMwAAAf7gP9NRsAMwAAAABJRU5ErkJggg==', 'base64');
const SHELL_PIPELINE = 'stages:\n  a: { uses: shell, with: { run: "echo a > a.txt", outs: [a.txt] } }\n';
const IMAGE_PIPELINE = 'stages:\n  data: { uses: load-data, with: { source: image-folder, path: pictures } }\n';

const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Exactly one line on stderr, and no stack trace in it. */
function expectOneLine(result: CliResult): string {
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines, result.stderr).toHaveLength(1);
  expect(result.stderr).not.toMatch(/^\s+at /m);
  return lines[0]!;
}

function writeBytes(rig: Rig, path: string, bytes: Uint8Array): void {
  writeFileSync(rig.write(path, ''), bytes);
}

/** Two classes of valid PNGs, and a corrupt one among them. */
function imageFolder(rig: Rig): string {
  writeBytes(rig, 'pictures/cat/1.png', PNG);
  writeBytes(rig, 'pictures/dog/1.png', PNG);
  rig.write('pictures/dog/2.png', 'not a png at all');
  return 'pictures/dog/2.png: not a readable image';
}

/**
 * A model folder headstart predict takes, written by hand: global pooling and a 2-class dense head on
 * 8×8 RGB input (all weights zero), with the metadata headstart records.
 */
function tinyModel(rig: Rig, dir: string): void {
  const layers = [
    { class_name: 'GlobalAveragePooling2D', config: { name: 'pool', batch_input_shape: [null, 8, 8, 3], dtype: 'float32', data_format: 'channels_last', trainable: true } },
    { class_name: 'Dense', config: { name: 'head', units: 2, activation: 'softmax', use_bias: true, kernel_initializer: { class_name: 'Zeros', config: {} }, bias_initializer: { class_name: 'Zeros', config: {} }, trainable: true } },
  ];
  const decoding = { size: 8, fit: 'cover', background: '#000000' };
  const headstart = {
    classes: ['cat', 'dog'],
    preprocessing: { inputSize: 8, channels: 3, range: [0, 1], resize: 'bilinear' },
    base: { ref: 'none', inputSize: 8, info: {}, imageDecoding: decoding },
    headLayers: ['head'],
    binary: false,
  };
  rig.write(`${dir}/model.json`, JSON.stringify({
    format: 'layers-model',
    modelTopology: { class_name: 'Sequential', config: { name: 'tiny', layers }, backend: 'tensor_flow.js' },
    weightsManifest: [{ paths: ['weights.bin'], weights: [{ name: 'head/kernel', shape: [3, 2], dtype: 'float32' }, { name: 'head/bias', shape: [2], dtype: 'float32' }] }],
    userDefinedMetadata: { headstart },
  }));
  writeBytes(rig, `${dir}/weights.bin`, new Uint8Array(8 * 4));
}

describe('a step\'s user error outside a stage', () => {
  it('predict on a zero-byte PNG names the file and exits 2', async () => {
    const rig = new Rig();
    tinyModel(rig, 'model');
    writeBytes(rig, 'good.png', PNG);
    rig.write('empty.png', '');
    const good = await rig.run('predict', '--model', './model', 'good.png');
    expect(good.exitCode, good.stderr).toBe(0);
    const result = await rig.run('predict', '--model', './model', 'good.png', 'empty.png');
    expect([result.exitCode, result.stdout]).toEqual([2, '']);
    expect(expectOneLine(result)).toMatch(/^empty\.png: not a readable image \(.+\)$/);
  });
});

describe('only main prints failures', () => {
  it('status names why a stage cannot be planned, where it printed only "failed"', async () => {
    const rig = new Rig();
    rig.write('headstart.yaml', 'stages:\n  a: { uses: shell, with: { run: "cat in.txt > a.txt", deps: [in.txt], outs: [a.txt] } }\n');
    const result = await rig.run('status');
    expect([result.exitCode, result.stdout.trim()]).toEqual([2, '✗ a: failed']);
    expect(expectOneLine(result)).toBe('headstart.yaml:2:3: stage "a": in.txt does not exist');
  });
});

/** Runs the CLI as an unprivileged user when we are root (root ignores file permissions). */
function runUnprivileged(rig: Rig, ...args: string[]): Promise<CliResult> {
  const asRoot = process.getuid?.() === 0;
  const [command, prefix] = asRoot ? ['setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath]] : [process.execPath, []];
  return execa(command, [...prefix, CLI, ...args], { cwd: rig.dir, reject: false, env: { HEADSTART_CACHE_DIR: '', NO_COLOR: '1' } })
    .then((r) => ({ exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) }));
}

function setModeRecursively(path: string, mode: (isDirectory: boolean) => number): void {
  const isDirectory = statSync(path).isDirectory();
  chmodSync(path, mode(isDirectory));
  if (isDirectory) for (const entry of readdirSync(path)) setModeRecursively(join(path, entry), mode);
}

describe('the machine refuses a write', () => {
  it('a read-only cache directory is one line naming it, exit 2, even when every stage is cached', async () => {
    const rig = new Rig();
    chmodSync(rig.dir, 0o755);
    rig.write('headstart.yaml', SHELL_PIPELINE);
    expect((await rig.run('run')).exitCode).toBe(0);
    const cache = join(rig.dir, '.headstart/cache');
    setModeRecursively(cache, (isDirectory) => (isDirectory ? 0o555 : 0o444));
    try {
      const result = await runUnprivileged(rig, 'run');
      expect(result.exitCode, result.stderr).toBe(2);
      expect(expectOneLine(result)).toMatch(new RegExp(`^${literal(cache)}(/[\\w.-]+)*: permission denied \\(EACCES: cannot \\w+ `));
    } finally {
      setModeRecursively(cache, (isDirectory) => (isDirectory ? 0o755 : 0o644));
    }
  });

  it('a file given as --cache-dir (EEXIST) or inside it (ENOTDIR) is one line naming the path, exit 2', async () => {
    const rig = new Rig();
    rig.write('headstart.yaml', SHELL_PIPELINE);
    const file = rig.write('a-file', 'not a folder');
    const verify = await rig.run('verify', '--cache-dir', 'a-file');
    expect(verify.exitCode, verify.stderr).toBe(2);
    expect(expectOneLine(verify)).toBe(`${file}: is a file, not a directory (EEXIST: cannot mkdir)`);
    const status = await rig.run('status', '--cache-dir', 'a-file/sub');
    expect(status.exitCode, status.stderr).toBe(2);
    expect(expectOneLine(status)).toMatch(new RegExp(`^${literal(file)}/sub(/[\\w.-]+)*: a part of this path is a file, not a directory \\(ENOTDIR: cannot mkdir\\)$`));
  });

  // A full disk, for real: a 64 kB tmpfs filled to the last byte, in a mount namespace of our own (needs
  // root or user namespaces; skipped where neither is allowed).
  const probe = mkdtempSync(join(tmpdir(), 'headstart-probe-'));
  const canMountTmpfs = spawnSync('unshare', ['--mount', '--map-root-user', 'sh', '-c', `mount -t tmpfs -o size=64k tmpfs ${probe}`]).status === 0;
  rmSync(probe, { recursive: true });
  it.skipIf(!canMountTmpfs)('a cache on a full disk (ENOSPC) is one line, exit 2', async () => {
    const rig = new Rig();
    rig.write('headstart.yaml', SHELL_PIPELINE);
    const full = mkdtempSync(join(tmpdir(), 'headstart-full-'));
    const script = `mount -t tmpfs -o size=64k tmpfs ${full} && (cat /dev/zero > ${full}/filler 2>/dev/null; true) && exec "$@"`;
    const result = await execa('unshare', ['--mount', '--map-root-user', 'sh', '-c', script, 'sh', process.execPath, CLI, 'run', '--cache-dir', join(full, 'cache')], {
      cwd: rig.dir,
      reject: false,
      env: { HEADSTART_CACHE_DIR: '', NO_COLOR: '1' },
    });
    const stderr = String(result.stderr);
    expect(result.exitCode, stderr).toBe(2);
    expect(expectOneLine({ exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr })).toMatch(/no space left on the device.*\(ENOSPC\)/);
  });
});

describe('a user error inside a stage keeps its exit code on every path', () => {
  let redis: ChildProcess;
  let redisUrl: string;
  let s3: LocalS3;
  const workers: ReturnType<Rig['spawn']>[] = [];

  beforeAll(async () => {
    const port = await freePort();
    redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      redis.on('exit', (code) => reject(new Error(`redis-server exited (${code})`)));
      redis.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('Ready to accept connections') && resolve());
    });
    redisUrl = `redis://127.0.0.1:${port}`;
    s3 = await startLocalS3('cache');
  });

  afterAll(async () => {
    for (const worker of workers) worker.kill('SIGTERM');
    await Promise.all(workers);
    redis?.kill('SIGKILL');
    await s3?.close();
  });

  it('load-data over a corrupt PNG: exit 2 and the same line locally and under --executor queue', async () => {
    const rig = new Rig();
    const expected = imageFolder(rig);
    rig.write('headstart.yaml', IMAGE_PIPELINE);
    const local = await rig.run('run');
    expect(local.exitCode, local.stderr).toBe(2);
    expect(local.stderr).toContain(`stage "data" failed: ${expected}`);

    const env = { ...s3.env(), AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
    const remote = ['--remote', 's3://cache/failure-channel'];
    const worker = rig.spawn(env, 'worker', '--redis', redisUrl, ...remote, '--name', 'w1', '--cache-dir', mkdtempSync(join(tmpdir(), 'headstart-worker-')));
    workers.push(worker);
    await new Promise<void>((resolve) => worker.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('waiting for stage jobs') && resolve()));
    const queued = await rig.runWith(env, 'run', '--executor', 'queue', '--redis', redisUrl, ...remote);
    expect(queued.exitCode, queued.stderr).toBe(2);
    expect(queued.stderr).toMatch(new RegExp(`^stage "data" failed: worker w1: ${literal(expected)} \\(.+\\)$`, 'm'));
    expect(queued.stderr).not.toMatch(/^\s+at /m);
  });
});
