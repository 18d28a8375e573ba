import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './free-port.js';
import { startLocalS3, type LocalS3 } from './local-s3.js';
import { REPO, Rig } from './rig.js';

const BUCKET = 'cache';
const SHARED_STAGE = 'base';
const SWEEP = ['a', 'b', 'c', 'd'];

/** One stage feeding four that each sleep, then write an output; every real run appends to <stage>.log. */
function pipeline(seconds: number, salt: string): string {
  const sweep = SWEEP.map((id) => `  ${id}:
    uses: shell
    inputs: { base: base.base }
    with: { run: 'sleep ${seconds}; cat "$HEADSTART_INPUT_BASE/base.txt" > ${id}.txt; echo ${id} >> ${id}.txt; echo ran >> ${id}.log', outs: { out: ${id}.txt } }
`);
  return `stages:
  base:
    uses: shell
    with: { run: "sleep 1; echo ${salt} > base.txt; echo ran >> base.log", outs: { base: base.txt } }
${sweep.join('')}`;
}

let redis: ChildProcess;
let redisUrl: string;
let redisPort: number;
let s3: LocalS3;
const workers: Worker[] = [];

beforeAll(async () => {
  const port = (redisPort = await freePort());
  redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    redis.on('exit', (code) => reject(new Error(`redis-server exited (${code})`)));
    redis.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('Ready to accept connections')) resolve();
    });
  });
  redisUrl = `redis://127.0.0.1:${port}`;
  s3 = await startLocalS3(BUCKET);
});

afterAll(async () => {
  redis?.kill('SIGKILL');
  await s3?.close();
});

afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.stop()));
});

function env(): Record<string, string> {
  return {
    ...s3.env(),
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    // Short locks, so that a killed worker's job goes to another one within seconds.
    HEADSTART_QUEUE_LOCK_MS: '3000',
    HEADSTART_QUEUE_STALLED_MS: '1000',
  };
}

/** A `headstart worker` process with its own local cache; its output is kept line by line. */
class Worker {
  readonly lines: string[] = [];
  readonly process;

  constructor(rig: Rig, readonly name: string, prefix: string, extraEnv: Record<string, string> = {}, extraArgs: string[] = []) {
    const cacheDir = mkdtempSync(join(tmpdir(), `headstart-worker-${name}-`));
    this.process = rig.spawn({ ...env(), ...extraEnv }, 'worker', '--redis', redisUrl, '--remote', `s3://${BUCKET}/${prefix}`, '--name', name, '--cache-dir', cacheDir, ...extraArgs);
    this.process.stdout!.on('data', (chunk: Buffer) => this.lines.push(...chunk.toString().trimEnd().split('\n')));
    workers.push(this);
  }

  async ready(): Promise<void> {
    while (!this.lines.some((line) => line.includes('waiting for stage jobs'))) {
      if (this.process.exitCode !== null) throw new Error(`worker ${this.name} exited: ${String((await this.process).stderr)}`);
      await sleep(50);
    }
  }

  /** Stages this worker ran (not those it found in the remote cache). */
  ran(): string[] {
    return this.lines.flatMap((line) => /^✓ (\S+): ran/.exec(line)?.[1] ?? []);
  }

  async stop(): Promise<void> {
    this.process.kill('SIGTERM');
    await this.process;
  }
}

const keysAndOutputs = (rig: Rig) => Object.entries(rig.lockfile().stages).map(([id, entry]) => [id, entry.key, entry.outputs]);
/** The ids of the jobs Redis holds for the stage queue (BullMQ keeps each in a hash named after its id). */
function queuedJobIds(): string[] {
  const keys = spawnSync('redis-cli', ['-p', String(redisPort), '--raw', 'KEYS', 'bull:headstart-stages:*'], { encoding: 'utf8' }).stdout;
  return keys.split('\n').flatMap((key) => /^bull:headstart-stages:([0-9a-f]{64})$/.exec(key)?.[1] ?? []);
}

/** Running, not merely unreaped: an orphan that exited stays a zombie until init (slow here) reaps it. */
const isAlive = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const runs = (rig: Rig, stage: string) => (rig.exists(`${stage}.log`) ? rig.read(`${stage}.log`).trim().split('\n').length : 0);

async function startWorkers(rig: Rig, prefix: string): Promise<Worker[]> {
  const started = [new Worker(rig, 'w1', prefix), new Worker(rig, 'w2', prefix)];
  await Promise.all(started.map((worker) => worker.ready()));
  return started;
}

async function runQueued(rig: Rig, prefix: string) {
  const result = await rig.runWith(env(), 'run', '--json', '--executor', 'queue', '--redis', redisUrl, '--remote', `s3://${BUCKET}/${prefix}`);
  let json: { stages: { id: string; status: string; remote?: boolean; metrics?: Record<string, unknown> }[] };
  try {
    json = JSON.parse(result.stdout);
  } catch {
    throw new Error(`not JSON (exit ${result.exitCode}):\n${result.stdout}\n${result.stderr}`);
  }
  return { ...result, statuses: Object.fromEntries(json.stages.map((s) => [s.id, s.remote ? 'remote' : s.status])), metrics: Object.fromEntries(json.stages.map((s) => [s.id, s.metrics])) };
}

describe('stages on BullMQ workers (run --executor queue)', () => {
  it('two workers share a sweep: each stage runs once, hashes match a local run, a second run enqueues nothing', async () => {
    const rig = new Rig();
    rig.write('headstart.yaml', pipeline(1, 'sweep'));
    const pool = await startWorkers(rig, 'sweep');

    const first = await runQueued(rig, 'sweep');
    expect(first.exitCode, first.stderr).toBe(0);
    expect(Object.values(first.statuses)).toEqual(Array(5).fill('ran'));
    expect([SHARED_STAGE, ...SWEEP].map((id) => runs(rig, id))).toEqual([1, 1, 1, 1, 1]);
    expect(pool.every((worker) => worker.ran().length > 0), pool.map((w) => w.lines.join('\n')).join('\n--\n')).toBe(true);
    expect(pool.flatMap((worker) => worker.ran()).sort()).toEqual([SHARED_STAGE, ...SWEEP].sort());
    expect(rig.read('c.txt')).toBe('sweep\nc\n');

    const local = new Rig();
    local.write('headstart.yaml', pipeline(1, 'sweep'));
    expect((await local.run('run')).exitCode).toBe(0);
    expect(keysAndOutputs(rig)).toEqual(keysAndOutputs(local));

    const again = await runQueued(rig, 'sweep');
    expect(Object.values(again.statuses)).toEqual(Array(5).fill('cached'));
    const elsewhere = new Rig();
    elsewhere.write('headstart.yaml', pipeline(1, 'sweep'));
    const fresh = await runQueued(elsewhere, 'sweep');
    expect(Object.values(fresh.statuses)).toEqual(Array(5).fill('remote'));
    expect(pool.flatMap((worker) => worker.ran())).toHaveLength(5);
    expect(pool.flatMap((worker) => worker.lines).filter((line) => line.startsWith('▶'))).toHaveLength(5);
  });

  it('mnist-tiny as a sweep on two workers with their own caches: both train; keys, output hashes and metrics equal a local run', async () => {
    const rig = new Rig();
    copyFileSync(join(REPO, 'pipelines/mnist-tiny-sweep.yaml'), join(rig.dir, 'headstart.yaml'));
    const pool = await startWorkers(rig, 'mnist-sweep');
    const queued = await runQueued(rig, 'mnist-sweep');
    expect(queued.exitCode, queued.stderr).toBe(0);
    const ids = Object.keys(queued.statuses);
    expect(ids.filter((id) => id.startsWith('head@'))).toHaveLength(4);
    expect(Object.values(queued.statuses)).toEqual(Array(ids.length).fill('ran'));
    const heads = pool.map((worker) => worker.ran().filter((id) => id.startsWith('head@')));
    expect(heads.every((ran) => ran.length > 0), pool.map((w) => w.lines.join('\n')).join('\n--\n')).toBe(true);
    expect(heads.flat().sort()).toEqual(ids.filter((id) => id.startsWith('head@')).sort());

    const local = new Rig();
    copyFileSync(join(REPO, 'pipelines/mnist-tiny-sweep.yaml'), join(local.dir, 'headstart.yaml'));
    const here = await local.runJson();
    expect(here.exitCode, here.stderr).toBe(0);
    const [onWorkers, onHere] = [rig.lockfile().stages, local.lockfile().stages];
    const keyAndOutputs = (entry: { key: string; outputs: unknown } | undefined) => JSON.stringify([entry?.key, entry?.outputs]);
    const differing = Object.keys(onHere).filter((id) => keyAndOutputs(onWorkers[id]) !== keyAndOutputs(onHere[id]));
    expect(differing, JSON.stringify(differing.map((id) => [onWorkers[id], onHere[id]]), null, 1)).toEqual([]);
    // Every metric but throughput (images_per_second) is a property of the bytes computed.
    const modelMetrics = (metrics: Record<string, Record<string, unknown> | undefined>) =>
      Object.fromEntries(Object.entries(metrics).map(([id, values]) => [id, Object.fromEntries(Object.entries(values ?? {}).filter(([name]) => name !== 'images_per_second'))]));
    const localMetrics = Object.fromEntries(here.json.stages.map((stage) => [stage.id, (stage as { metrics?: Record<string, unknown> }).metrics]));
    expect(modelMetrics(queued.metrics)).toEqual(modelMetrics(localMetrics));
    expect(Object.keys(queued.metrics).filter((id) => id.startsWith('eval@') && queued.metrics[id]?.['accuracy'] !== undefined)).toHaveLength(4);
  });

  it('a stage whose process dies is an infrastructure error: retried after a backoff, and the run completes', async () => {
    const rig = new Rig();
    rig.write('headstart.yaml', `stages:\n  flaky:\n    uses: shell\n    with: { run: "sleep 2; echo done > flaky.txt", outs: [flaky.txt] }\n`);
    const worker = new Worker(rig, 'w1', 'retry');
    await worker.ready();
    const run = runQueued(rig, 'retry');
    const stageProcessLine = () => /^ {2}flaky: stage process (\d+)$/m.exec(worker.lines.join('\n'));
    while (!stageProcessLine()) await sleep(50);
    process.kill(Number(stageProcessLine()![1]), 'SIGKILL');
    const result = await run;
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.statuses).toEqual({ flaky: 'ran' });
    expect(worker.lines.filter((line) => line.startsWith('▶ flaky'))).toEqual(['▶ flaky: running (attempt 1)', '▶ flaky: running (attempt 2)']);
    expect(rig.read('flaky.txt')).toBe('done\n');
  });

  it('a worker runs stages in its own checkout (--workdir), whatever the coordinator\'s path', async () => {
    const pipelineText = `stages:\n  where:\n    uses: shell\n    with: { run: "cat data.txt > copy.txt; pwd > where.txt", outs: [copy.txt, where.txt] }\n`;
    const coordinator = new Rig();
    const checkout = new Rig();
    for (const rig of [coordinator, checkout]) {
      rig.write('headstart.yaml', pipelineText);
      rig.write('data.txt', 'same commit\n');
    }
    const worker = new Worker(checkout, 'elsewhere', 'workdir', {}, ['--workdir', checkout.dir]);
    await worker.ready();
    const result = await runQueued(coordinator, 'workdir');
    expect(result.exitCode, result.stderr).toBe(0);
    expect(coordinator.read('copy.txt')).toBe('same commit\n');
    expect(coordinator.read('where.txt').trim()).toBe(realpathSync(checkout.dir));
  });

  it('a worker set up wrong (a missing --workdir, a checkout without the step) is the user\'s error: one line, exit 2', async () => {
    const rig = new Rig();
    rig.write('step.mjs', 'export default { name: "noop", version: "1", params: { type: "object" }, outputs: [], async run() {} };\n');
    rig.write('headstart.yaml', 'stages:\n  local: { uses: ./step.mjs }\n');
    const missing = join(rig.dir, 'not-here');
    const astray = new Worker(rig, 'astray', 'setup', {}, ['--workdir', missing]);
    await astray.ready();
    const noWorkdir = await rig.runWith(env(), 'run', '--executor', 'queue', '--redis', redisUrl, '--remote', `s3://${BUCKET}/setup`);
    expect([noWorkdir.exitCode, noWorkdir.stderr.trim().split('\n').at(-1)]).toEqual([2, `stage "local" failed: worker astray: the pipeline's directory ${missing} does not exist here; start the worker with --workdir set to this machine's checkout of the project`]);
    await astray.stop();
    const bare = new Rig();
    await new Worker(bare, 'bare', 'setup', {}, ['--workdir', bare.dir]).ready();
    const noStep = await rig.runWith(env(), 'run', '--executor', 'queue', '--redis', redisUrl, '--remote', `s3://${BUCKET}/setup`);
    expect(noStep.exitCode, noStep.stderr).toBe(2);
    expect(noStep.stderr.trim()).toMatch(/^stage "local" failed: worker bare: cannot resolve uses "\.\/step\.mjs" here/m);
  });

  it('a stage\'s stderr tail is masked on the worker, before its failure is stored in Redis', async () => {
    const secret = 'tok-9f8e7d6c5b4a';
    const rig = new Rig();
    rig.write('leak.mjs', 'export default { name: "leak", version: "1", params: { type: "object" }, outputs: [], async run(ctx) { process.stderr.write(`using ${ctx.params.token}\\n`); throw new Error("boom"); } };\n');
    rig.write('headstart.yaml', 'stages:\n  leak: { uses: ./leak.mjs, with: { token: "${env.LEAK_TOKEN}" } }\n');
    await new Worker(rig, 'masked', 'masked', { LEAK_TOKEN: secret }).ready();
    const result = await rig.runWith({ ...env(), LEAK_TOKEN: secret }, 'run', '--executor', 'queue', '--redis', redisUrl, '--remote', `s3://${BUCKET}/masked`);
    expect(result.exitCode, result.stderr).toBe(1);
    expect(result.stderr).toContain('using ${env.LEAK_TOKEN}');
    const stored = queuedJobIds().map((id) => spawnSync('redis-cli', ['-p', String(redisPort), '--raw', 'HGETALL', `bull:headstart-stages:${id}`], { encoding: 'utf8' }).stdout);
    expect(stored.join('\n')).toContain('using ${env.LEAK_TOKEN}');
    expect(stored.join('\n')).not.toContain(secret);
  });

  it('a worker killed with -9 during a stage: another one completes it and the run succeeds', async () => {
    const rig = new Rig();
    rig.write('headstart.yaml', pipeline(3, 'killed'));
    const [victim, survivor] = await startWorkers(rig, 'killed');
    const run = runQueued(rig, 'killed');
    const stageProcessLine = () => /^ {2}[a-d]: stage process (\d+)$/m.exec(victim!.lines.join('\n'));
    while (!stageProcessLine()) await sleep(50);
    const stageProcess = Number(stageProcessLine()![1]);
    expect(isAlive(stageProcess)).toBe(true);
    victim!.process.kill('SIGKILL');
    // The stage sleeps 3 s: its process must go with its worker, not when the stage would have ended.
    for (let waited = 0; isAlive(stageProcess) && waited < 1500; waited += 50) await sleep(50);
    expect(isAlive(stageProcess), 'the killed worker left its stage process behind').toBe(false);
    const result = await run;
    expect(result.exitCode, result.stderr).toBe(0);
    expect(Object.values(result.statuses)).toEqual(Array(5).fill('ran'));
    expect(survivor!.ran().length).toBeGreaterThanOrEqual(4);
    expect(rig.read('d.txt')).toBe('killed\nd\n');
  });

  it('after a sweep in which a worker was killed with -9, a fresh checkout with an empty cache pulls every stage', async () => {
    // image folder → preprocess → features → head × 4, as shell stages; preprocess is slow enough to be killed in.
    const sweep = `matrix: { lr: [1, 2], epochs: [1, 2] }
stages:
  preprocess:
    uses: shell
    with: { run: 'sleep 2; cat images/*.txt > prep.txt; echo ran >> preprocess.log', deps: [images], outs: { dataset: prep.txt } }
  features:
    uses: shell
    inputs: { dataset: preprocess.dataset }
    with: { run: 'wc -l < "$HEADSTART_INPUT_DATASET/prep.txt" > features.txt', outs: { features: features.txt } }
  head:
    uses: shell
    inputs: { features: features.features }
    with: { run: 'echo "\${matrix.lr} \${matrix.epochs} $(cat "$HEADSTART_INPUT_FEATURES/features.txt")" > head.txt', outs: { model: head.txt } }
`;
    const checkout = () => {
      const rig = new Rig();
      rig.write('headstart.yaml', sweep);
      for (const name of ['a', 'b', 'c']) rig.write(`images/${name}.txt`, `${name}\n`);
      return rig;
    };
    const rig = checkout();
    const [victim, survivor] = await startWorkers(rig, 'killed-sweep');
    const run = runQueued(rig, 'killed-sweep');
    const stageProcessLine = () => /^ {2}preprocess: stage process (\d+)$/m.exec([...victim!.lines, ...survivor!.lines].join('\n'));
    while (!stageProcessLine()) await sleep(50);
    const running = victim!.lines.some((line) => line.startsWith('▶ preprocess')) ? victim! : survivor!;
    running.process.kill('SIGKILL');
    const result = await run;
    expect(result.exitCode, result.stderr).toBe(0);
    expect(Object.values(result.statuses)).toEqual(Array(6).fill('ran'));

    const fresh = checkout();
    const pulled = await fresh.runWith(env(), 'run', '--json', '--remote', `s3://${BUCKET}/killed-sweep`);
    expect(pulled.exitCode, pulled.stderr).toBe(0);
    const stages = (JSON.parse(pulled.stdout) as { stages: { id: string; status: string; remote?: boolean }[] }).stages;
    expect(stages.map((s) => `${s.id}: ${s.remote ? 'remote' : s.status}`)).toEqual(stages.map((s) => `${s.id}: remote`));
    expect(runs(fresh, 'preprocess')).toBe(0);
  });

  it('a failing stage fails once, naming the stage, the worker and its stderr; bad flags are one line, exit 2', async () => {
    const rig = new Rig();
    rig.write('headstart.yaml', `stages:\n  bad:\n    uses: shell\n    with: { run: "echo ran >> bad.log; echo boom >&2; exit 3" }\n`);
    await startWorkers(rig, 'failing');
    const result = await rig.runWith(env(), 'run', '--executor', 'queue', '--redis', redisUrl, '--remote', `s3://${BUCKET}/failing`);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/^stage "bad" failed: worker w[12]: command exited with code 3: boom$/m);
    expect(runs(rig, 'bad')).toBe(1);

    // As locally: after a failure nothing new starts, unless --keep-going.
    rig.write('headstart.yaml', `stages:
  bad: { uses: shell, with: { run: "exit 3" } }
  slow: { uses: shell, with: { run: "sleep 2; echo ran >> slow.log; echo slow > slow.txt", outs: [slow.txt] } }
  after: { uses: shell, needs: [slow], with: { run: "echo ran >> after.log" } }
`);
    const stopped = await runQueued(rig, 'failing');
    expect([stopped.exitCode, stopped.statuses]).toEqual([1, { bad: 'failed', slow: 'ran', after: 'skipped' }]);
    const kept = await rig.runWith(env(), 'run', '--keep-going', '--force', 'slow', '--executor', 'queue', '--redis', redisUrl, '--remote', `s3://${BUCKET}/failing`);
    expect(kept.exitCode).toBe(1);
    expect(runs(rig, 'slow'), '--force reaches the worker: it recomputes instead of answering from the remote').toBe(2);
    expect(runs(rig, 'after')).toBe(1);

    const noRedis = await rig.runWith(env(), 'run', '--executor', 'queue', '--remote', `s3://${BUCKET}/failing`);
    expect([noRedis.exitCode, noRedis.stderr.trim()]).toEqual([2, '--executor queue needs --redis redis://host:6379']);
    const badRedis = await rig.runWith(env(), 'worker', '--redis', `redis://127.0.0.1:${await freePort()}`, '--remote', `s3://${BUCKET}/failing`);
    expect(badRedis.exitCode).toBe(2);
    expect(badRedis.stderr.trim()).toMatch(/^cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);
  });

  it('a worker whose step code differs from the coordinator\'s refuses the job', async () => {
    const rig = new Rig();
    rig.write('step.mjs', `export default {
  name: 'stamp', version: process.env.STAMP_STEP_VERSION ?? '1', params: { type: 'object' }, outputs: ['out'],
  async run(ctx) { const { writeFile } = await import('node:fs/promises'); await writeFile(ctx.outputs.out + '/v.txt', 'v'); },
};
`);
    rig.write('headstart.yaml', 'stages:\n  stamp:\n    uses: ./step.mjs\n');
    new Worker(rig, 'old', 'skew', { STAMP_STEP_VERSION: '0' });
    await Promise.all(workers.map((worker) => worker.ready()));
    const result = await rig.runWith(env(), 'run', '--executor', 'queue', '--redis', redisUrl, '--remote', `s3://${BUCKET}/skew`);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/stage "stamp" failed: worker old: version skew: this worker resolves "\.\/step\.mjs" to .*"version":"0".*the job was keyed with .*"version":"1".*refusing it/);
    expect(workers[0]!.lines.filter((line) => line.startsWith('▶'))).toHaveLength(1);
  });

  it('Ctrl-C on the coordinator removes the jobs no worker has taken', async () => {
    const rig = new Rig();
    rig.write('headstart.yaml', pipeline(1, 'interrupted'));
    const before = new Set(queuedJobIds());
    const coordinator = rig.spawn(env(), 'run', '--executor', 'queue', '--redis', redisUrl, '--remote', `s3://${BUCKET}/interrupted`);
    let added: string[] = [];
    for (let waited = 0; added.length === 0 && waited < 20_000; waited += 100) {
      await sleep(100);
      added = queuedJobIds().filter((id) => !before.has(id));
    }
    expect(added).toHaveLength(1);
    coordinator.kill('SIGINT');
    expect((await coordinator).exitCode).toBe(130);
    expect(queuedJobIds().filter((id) => !before.has(id))).toEqual([]);
    expect(runs(rig, SHARED_STAGE)).toBe(0);
  });
});
