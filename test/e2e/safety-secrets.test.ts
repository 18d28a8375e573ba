import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './free-port.js';
import { startLocalS3, type LocalS3 } from './local-s3.js';
import { Rig } from './rig.js';

const SECRET = 'ghp_s3cr3tTokenValue42';

/** A shell stage that hands the token to its command through `env:`, as a user would pass an API key. */
const PIPELINE = `stages:
  call:
    uses: shell
    with:
      run: 'echo "$TOKEN" > out.txt; echo "calling with $TOKEN"; echo "warning for $TOKEN" >&2'
      env: { TOKEN: "\${env.API_TOKEN}" }
      outs: [out.txt]
`;

const FAILING = `stages:
  call:
    uses: shell
    with:
      run: 'echo "401 unauthorized for $TOKEN" >&2; exit 3'
      env: { TOKEN: "\${env.API_TOKEN}" }
`;

/** Every file under `dir` but the object store, where the stage's own output (which holds the token) lives. */
function storedFiles(dir: string): string[] {
  return (readdirSync(dir, { recursive: true, encoding: 'utf8' }) as string[])
    .filter((path) => !path.startsWith('objects') && !path.startsWith('trees'))
    .map((path) => join(dir, path))
    .filter((path) => statSync(path).isFile());
}

function expectNoSecretIn(dir: string): void {
  const files = storedFiles(dir);
  expect(files.length).toBeGreaterThan(0);
  for (const file of files) expect(readFileSync(file, 'latin1'), file).not.toContain(SECRET);
}

describe('${env.X} in a stage: the value is used, never stored or printed', () => {
  it('the command gets the token; lock file, records and run log hold ${env.API_TOKEN}; a new token re-runs', async () => {
    const rig = new Rig();
    rig.write('headstart.yaml', PIPELINE);
    const first = await rig.runWith({ API_TOKEN: SECRET }, 'run');
    expect(first.exitCode, first.stderr).toBe(0);
    expect(rig.read('out.txt')).toBe(`${SECRET}\n`);
    expect(first.stdout + first.stderr).toContain('calling with ${env.API_TOKEN}');
    expect(first.stdout + first.stderr).not.toContain(SECRET);
    expect(rig.read('headstart.lock')).toContain('${env.API_TOKEN}');
    expect(rig.read('headstart.lock')).not.toContain(SECRET);
    expectNoSecretIn(join(rig.dir, '.headstart/cache'));
    expect(readdirSync(join(rig.dir, '.headstart/cache/runs'))).toContain('000001.json');

    const again = await rig.runWith({ API_TOKEN: SECRET }, 'run', '--json');
    expect(JSON.parse(again.stdout).stages[0].status).toBe('cached');
    const rotated = await rig.runWith({ API_TOKEN: `${SECRET}-rotated` }, 'run', '--json');
    expect(JSON.parse(rotated.stdout).stages[0]).toMatchObject({ status: 'ran', why: ['environment variable API_TOKEN changed'] });
  });

  it("a failing command's stderr is printed and recorded with the token masked", async () => {
    const rig = new Rig();
    rig.write('headstart.yaml', FAILING);
    const result = await rig.runWith({ API_TOKEN: SECRET }, 'run');
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain('401 unauthorized for ${env.API_TOKEN}');
    expect(result.stdout + result.stderr).not.toContain(SECRET);
    expectNoSecretIn(join(rig.dir, '.headstart/cache'));
  });
});

describe('a queued stage: the token never goes through Redis; each worker reads its own', () => {
  const BUCKET = 'cache';
  let redis: ChildProcess;
  let redisPort: number;
  let redisDir: string;
  let s3: LocalS3;

  beforeAll(async () => {
    redisPort = await freePort();
    redisDir = mkdtempSync(join(tmpdir(), 'headstart-redis-'));
    // Uncompressed snapshots, so that a value in Redis is found by reading the dump.
    redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--rdbcompression', 'no', '--dir', redisDir], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      redis.on('exit', (code) => reject(new Error(`redis-server exited (${code})`)));
      redis.stdout!.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('Ready to accept connections')) resolve();
      });
    });
    s3 = await startLocalS3(BUCKET);
  });

  afterAll(async () => {
    redis?.kill('SIGKILL');
    await s3?.close();
  });

  const queueEnv = () => ({ ...s3.env(), AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' });

  function redisDump(): string {
    spawnSync('redis-cli', ['-p', String(redisPort), 'SAVE']);
    return readFileSync(join(redisDir, 'dump.rdb'), 'latin1');
  }

  async function withWorker<T>(rig: Rig, prefix: string, workerEnv: Record<string, string>, body: (lines: string[]) => Promise<T>): Promise<T> {
    const cacheDir = mkdtempSync(join(tmpdir(), 'headstart-worker-'));
    const worker = rig.spawn({ ...queueEnv(), ...workerEnv }, 'worker', '--redis', `redis://127.0.0.1:${redisPort}`, '--remote', `s3://${BUCKET}/${prefix}`, '--name', 'w', '--cache-dir', cacheDir);
    const lines: string[] = [];
    worker.stdout!.on('data', (chunk: Buffer) => lines.push(...chunk.toString().trimEnd().split('\n')));
    try {
      while (!lines.some((line) => line.includes('waiting for stage jobs'))) {
        if (worker.exitCode !== null) throw new Error(`worker exited: ${String((await worker).stderr)}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const result = await body(lines);
      expectNoSecretIn(cacheDir);
      return result;
    } finally {
      worker.kill('SIGTERM');
      await worker;
    }
  }

  it('a worker with the same token runs it; Redis, the shared cache and every log hold only the reference', async () => {
    const rig = new Rig();
    rig.write('headstart.yaml', PIPELINE);
    await withWorker(rig, 'same', { API_TOKEN: SECRET }, async (lines) => {
      const result = await rig.runWith({ ...queueEnv(), API_TOKEN: SECRET }, 'run', '--executor', 'queue', '--redis', `redis://127.0.0.1:${redisPort}`, '--remote', `s3://${BUCKET}/same`);
      expect(result.exitCode, result.stderr).toBe(0);
      expect(rig.read('out.txt')).toBe(`${SECRET}\n`);
      expect(lines.join('\n')).toContain('calling with ${env.API_TOKEN}');
      expect(lines.join('\n')).not.toContain(SECRET);
      const dump = redisDump();
      expect(dump).toContain('${env.API_TOKEN}');
      expect(dump).not.toContain(SECRET);
      // The coordinator's record came down from the shared cache.
      expectNoSecretIn(join(rig.dir, '.headstart/cache'));
    });
  });

  // A worker with another value is refused the same way (see the core test of runtimeParams).
  it('a worker without the variable refuses the stage in one clear line', async () => {
    const rig = new Rig();
    rig.write('headstart.yaml', PIPELINE);
    const unset = await withWorker(rig, 'unset', {}, () =>
      rig.runWith({ ...queueEnv(), API_TOKEN: SECRET }, 'run', '--executor', 'queue', '--redis', `redis://127.0.0.1:${redisPort}`, '--remote', `s3://${BUCKET}/unset`),
    );
    expect(unset.exitCode).toBe(2);
    expect(unset.stderr).toContain('environment variable API_TOKEN is not set here');
    expect(unset.stdout + unset.stderr).not.toContain(SECRET);
  });
});

describe('hostile input: one line, exit 2, no stack trace', () => {
  async function expectOneLine(setup: (rig: Rig) => void, args: string[], expected: string | RegExp): Promise<void> {
    const rig = new Rig();
    setup(rig);
    const result = await rig.run('run', ...args);
    expect(result.exitCode, result.stderr).toBe(2);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    if (typeof expected === 'string') expect(lines[0]).toBe(expected);
    else expect(lines[0]).toMatch(expected);
    expect(rig.exists('.headstart/cache/runs')).toBe(false);
  }
  const GOOD = 'params: { size: 1 }\nstages:\n  a: { uses: shell, with: { run: "echo a" } }\n';

  it('--set params.__proto__.x=1 (which polluted Object.prototype)', () =>
    expectOneLine((rig) => rig.write('headstart.yaml', GOOD), ['--set', 'params.__proto__.polluted=1'], '--set params.__proto__.polluted=1: "__proto__" cannot be a key'));

  it('a __proto__ key in the file', () =>
    expectOneLine((rig) => rig.write('headstart.yaml', 'stages:\n  a:\n    uses: shell\n    with:\n      run: echo a\n      __proto__: { x: 1 }\n'), [], 'headstart.yaml:6:7: "__proto__" cannot be a key'));

  it('a YAML alias bomb', () => {
    const levels = ['a: &a [x, x, x, x, x, x, x, x, x]', ...'bcdefgh'.split('').map((name, i) => `${name}: &${name} [${Array(9).fill(`*${'abcdefg'[i]}`).join(', ')}]`)];
    return expectOneLine((rig) => rig.write('headstart.yaml', `${levels.join('\n')}\nstages:\n  s: { uses: shell, with: { run: "echo", env: { A: "x" } } }\n`), [], 'headstart.yaml:2:8: invalid YAML: aliases expand to too much data (more than 1000 aliased nodes)');
  });

  it('block mappings 2,000 deep', () => {
    const deep = Array.from({ length: 2000 }, (_, i) => `${' '.repeat(i + 2)}k:`).join('\n');
    return expectOneLine((rig) => rig.write('headstart.yaml', `stages: {}\nx:\n${deep} 1\n`), [], /^headstart\.yaml:\d+:\d+: invalid YAML: nested more than 64 levels deep$/);
  });

  it("a --set value that is not YAML (--set 'params.size=[1,2')", () =>
    expectOneLine((rig) => rig.write('headstart.yaml', GOOD), ['--set', 'params.size=[1,2'], /^--set params\.size=\[1,2: the value is not valid YAML: /));

  it('a byte that is not UTF-8 (it was replaced by U+FFFD and the changed command ran)', () =>
    expectOneLine(
      (rig) => writeFileSync(join(rig.dir, 'headstart.yaml'), Buffer.concat([Buffer.from('stages:\n  a:\n    uses: shell\n    with: { run: "echo caf'), Buffer.from([0xe9]), Buffer.from(' > a.txt" }\n')])),
      [],
      'headstart.yaml:4:27: invalid YAML: the file is not valid UTF-8 (byte 0xe9); save it as UTF-8',
    ));

  it('a duplicate key inside with: (the last one silently won)', () =>
    expectOneLine(
      (rig) => rig.write('headstart.yaml', 'stages:\n  a:\n    uses: shell\n    with:\n      run: echo safe\n      run: echo other\n'),
      [],
      'headstart.yaml:6:7: invalid YAML: duplicate key "run" (an earlier one in the same mapping would be ignored)',
    ));

  it('a duplicate key in a file that older checks remembered as valid', async () => {
    const rig = new Rig();
    rig.write('good.yaml', 'stages:\n  a: { uses: shell, with: { run: echo a } }\n');
    expect((await rig.run('run', 'good.yaml')).exitCode).toBe(0);
    const text = 'stages:\n  a: { uses: shell, with: { run: echo a > a.txt, run: echo b > a.txt, outs: [a.txt] } }\n';
    rig.write('headstart.yaml', text);
    // What a version without the duplicate-key check stored after this file passed its checks.
    rig.write(`.headstart/cache/parsed/${createHash('sha256').update(text).digest('hex')}.json`, JSON.stringify({ stages: { a: { uses: 'shell', with: { run: 'echo b > a.txt', outs: ['a.txt'] } } } }));
    const result = await rig.run('run');
    expect(result.exitCode).toBe(2);
    expect(result.stderr.trim()).toBe('headstart.yaml:2:50: invalid YAML: duplicate key "run" (an earlier one in the same mapping would be ignored)');
    expect(rig.exists('a.txt')).toBe(false);
  });
});
