#!/usr/bin/env node
// Scale-out: what BullMQ workers and a warm S3 cache buy, as ratios of wall times from one run.
// Starts its own redis-server (Debian's package) and s3rver (a file-backed S3 API, from the test
// workspace's dependencies) on free local ports; every number comes from the real CLI.
//
//   pnpm bench:scale-out              # = turbo run build && node bench/scale-out/run.mjs
//   node bench/scale-out/run.mjs [--rows 1,2] [--reps 2] [--sweep-per-class 1000] [--sweep-finetune-epochs 3] [--threads 1] [--flagship-per-class 500]
//
// Rows:
//   1  a sweep of 4 independent stages: mnist-tiny-sweep.yaml (head × 4 over lr × epochs, each followed
//      by unfreeze, fine-tune and evaluate) on an empty cache. The local executor with --jobs 1 against
//      `run --executor queue` with two `headstart worker`s (concurrency 1, each its own local cache) on
//      this machine, started before the clock starts, as long-running workers are. Also local --jobs 2.
//      Each worker stands for a machine: so that two workers on one 2-core box stand for two 1-core
//      machines, every process runs its stages on one thread (HEADSTART_WORKERS=--threads, default 1).
//   2  the flagship (pipelines/fashion-mnist.yaml) on an empty local cache: computed (`run --push never`)
//      against pulled from a warm remote (`run --remote`, every stage a remote hit). The push between
//      them is timed too.
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const cli = path.join(root, 'packages/cli/dist/bin.js');
const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '1,2' },
    reps: { type: 'string', default: '2' },
    'sweep-per-class': { type: 'string', default: '1000' },
    'sweep-finetune-epochs': { type: 'string', default: '3' },
    threads: { type: 'string', default: '1' },
    'flagship-per-class': { type: 'string', default: '500' },
    work: { type: 'string', default: path.join(here, 'out') },
  },
});
const ROWS = new Set(values.rows.split(','));
const REPS = Number(values.reps);
const WORK = path.resolve(values.work);
const BUCKET = 'bench';
const log = (line) => process.stderr.write(`[bench:scale-out ${new Date().toISOString().slice(11, 19)}, load ${os.loadavg()[0].toFixed(2)}] ${line}\n`);
const median = (xs) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function startRedis() {
  const port = await freePort();
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    redis.on('error', (error) => reject(new Error(`redis-server: ${error.message} (Debian: apt-get install redis-server)`)));
    redis.stdout.on('data', (chunk) => chunk.toString().includes('Ready to accept connections') && resolve());
  });
  return { url: `redis://127.0.0.1:${port}`, stop: () => redis.kill('SIGKILL') };
}

async function startS3() {
  const S3rver = createRequire(path.join(root, 'test/package.json'))('s3rver');
  const directory = path.join(WORK, 's3');
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory, configureBuckets: [{ name: BUCKET, configs: [] }] });
  const { port } = await server.run();
  return { endpoint: `http://127.0.0.1:${port}`, stop: () => server.close() };
}

/** Runs the CLI; resolves with its output and wall seconds, rejects when it fails. */
function headstart(args, { cwd, env }) {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(process.execPath, [cli, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => {
      const seconds = (performance.now() - start) / 1000;
      if (code === 0) resolve({ stdout, stderr, seconds });
      else reject(new Error(`headstart ${args.join(' ')} exited ${code}: ${stderr.trim().split('\n').slice(-3).join(' / ')}`));
    });
  });
}

/** A long-running `headstart worker`, ready once it says it is waiting. */
async function startWorker(name, redisUrl, remote, env) {
  const cacheDir = path.join(WORK, `cache-${name}`);
  rmSync(cacheDir, { recursive: true, force: true });
  const child = spawn(process.execPath, [cli, 'worker', '--redis', redisUrl, '--remote', remote, '--name', name, '--cache-dir', cacheDir], { cwd: WORK, env, stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  while (!output.includes('waiting for stage jobs')) {
    if (child.exitCode !== null) throw new Error(`worker ${name} exited`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { ran: () => (output.match(/^✓ /gm) ?? []).length, stop: () => new Promise((resolve) => child.once('close', resolve).kill('SIGTERM')) };
}

/** A fresh project directory holding one pipeline file (the CLI path made absolute). */
function project(name, source) {
  const dir = path.join(WORK, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const text = readFileSync(path.join(root, 'pipelines', source), 'utf8').replaceAll('../packages/cli/dist/bin.js', cli);
  writeFileSync(path.join(dir, 'headstart.yaml'), text);
  return dir;
}

/** Each stage's key and output hashes from a project's lock file (a comment line, then JSON). */
function lockStages(dir) {
  const lock = JSON.parse(readFileSync(path.join(dir, 'headstart.lock'), 'utf8').replace(/^#.*\n/, ''));
  return JSON.stringify(Object.entries(lock.stages).map(([id, entry]) => [id, entry.key, entry.outputs]));
}

async function sweepRow(redis, baseEnv) {
  const env = { ...baseEnv, HEADSTART_WORKERS: values.threads };
  const set = ['--set', `params.per_class=${values['sweep-per-class']}`, '--set', `finetune.epochs=${values['sweep-finetune-epochs']}`];
  const times = { jobs1: [], jobs2: [], workers: [] };
  let same = true;
  let workerShares = [];
  for (let rep = 0; rep < REPS; rep++) {
    const one = project('sweep-jobs1', 'mnist-tiny-sweep.yaml');
    times.jobs1.push((await headstart(['run', '--quiet', '--jobs', '1', ...set], { cwd: one, env })).seconds);
    log(`sweep rep ${rep + 1}: local --jobs 1 ${times.jobs1.at(-1).toFixed(1)} s`);
    const two = project('sweep-jobs2', 'mnist-tiny-sweep.yaml');
    times.jobs2.push((await headstart(['run', '--quiet', '--jobs', '2', ...set], { cwd: two, env })).seconds);
    log(`sweep rep ${rep + 1}: local --jobs 2 ${times.jobs2.at(-1).toFixed(1)} s`);
    const remote = `s3://${BUCKET}/sweep-${rep}-${Date.now()}`;
    const workers = [await startWorker('w1', redis.url, remote, env), await startWorker('w2', redis.url, remote, env)];
    const queued = project('sweep-queue', 'mnist-tiny-sweep.yaml');
    times.workers.push((await headstart(['run', '--quiet', '--executor', 'queue', '--redis', redis.url, '--remote', remote, ...set], { cwd: queued, env })).seconds);
    workerShares = workers.map((worker) => worker.ran());
    await Promise.all(workers.map((worker) => worker.stop()));
    log(`sweep rep ${rep + 1}: 2 workers ${times.workers.at(-1).toFixed(1)} s (stages run: ${workerShares.join(' + ')})`);
    same &&= lockStages(queued) === lockStages(one) && lockStages(two) === lockStages(one);
  }
  const base = median(times.jobs1);
  return [
    [`sweep (${values['sweep-per-class']}/class, 19 stages, ${values.threads} thread(s) per process): local --jobs 1`, base, '1.00×', ''],
    ['same, local --jobs 2 (one process)', median(times.jobs2), `${(base / median(times.jobs2)).toFixed(2)}×`, ''],
    [`same, 2 workers (stages run: ${workerShares.join(' + ')})`, median(times.workers), `${(base / median(times.workers)).toFixed(2)}×`, same ? 'keys and output hashes equal' : 'OUTPUTS DIFFER'],
  ];
}

async function flagshipRow(env) {
  const set = ['--set', `params.per_class=${values['flagship-per-class']}`];
  const remote = `s3://${BUCKET}/flagship-${Date.now()}`;
  const computed = project('flagship-compute', 'fashion-mnist.yaml');
  const compute = await headstart(['run', '--quiet', '--remote', remote, '--push', 'never', ...set], { cwd: computed, env });
  log(`flagship computed in ${compute.seconds.toFixed(1)} s`);
  const push = await headstart(['push', '--remote', remote, ...set], { cwd: computed, env });
  log(`flagship pushed in ${push.seconds.toFixed(1)} s`);
  const pulled = project('flagship-warm', 'fashion-mnist.yaml');
  const warm = await headstart(['run', '--json', '--remote', remote, ...set], { cwd: pulled, env });
  const hits = JSON.parse(warm.stdout).stages.filter((stage) => stage.remote).length;
  log(`flagship from the warm remote in ${warm.seconds.toFixed(1)} s (${hits} remote hits)`);
  const same = lockStages(pulled) === lockStages(computed);
  return [
    [`flagship (${values['flagship-per-class']}/class), empty cache: computed`, compute.seconds, '1.00×', ''],
    ['same, pushed to the remote afterwards', push.seconds, '', ''],
    [`same, empty local cache, warm remote (${hits} remote hits)`, warm.seconds, `${(compute.seconds / warm.seconds).toFixed(2)}×`, same ? 'lock identical' : 'LOCK DIFFERS'],
  ];
}

rmSync(WORK, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true });
const redis = await startRedis();
const s3 = await startS3();
const env = {
  ...process.env,
  AWS_ENDPOINT_URL_S3: s3.endpoint,
  AWS_ACCESS_KEY_ID: 'S3RVER',
  AWS_SECRET_ACCESS_KEY: 'S3RVER',
  AWS_REGION: 'us-east-1',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
};
const rows = [];
try {
  if (ROWS.has('1')) rows.push(...(await sweepRow(redis, env)));
  if (ROWS.has('2')) rows.push(...(await flagshipRow(env)));
} finally {
  redis.stop();
  await s3.stop();
}
console.log(`\nscale-out, ${os.availableParallelism()} cores, ${new Date().toISOString().slice(0, 16)}Z (sweep: median of ${REPS})\n`);
console.log('| what | wall s | speed-up | check |\n| --- | --- | --- | --- |');
for (const [what, seconds, ratio, check] of rows) console.log(`| ${what} | ${seconds.toFixed(1)} | ${ratio} | ${check} |`);
