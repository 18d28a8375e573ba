#!/usr/bin/env node
// ML runtime benchmark: MobileNetV2 feature extraction (include_top false, avg pooling, 224×224,
// batch 32) on every TensorFlow.js backend that loads here, PyTorch's MobileNetV2 on the same machine
// when `import torch` works, and how long the zoo takes to load its bases.
//
//   pnpm --filter @headstart/steps build        # runs over packages/steps/dist
//   node bench/runtime/run.mjs [--batches 3] [--cpu-batches 1] [--threads 2]
//
// Every measurement runs in a fresh child process, so one backend's state never helps another's.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const runtime = path.resolve(here, '../../packages/steps/dist/runtime/index.js');
const { values } = parseArgs({
  options: {
    batches: { type: 'string', default: '3' },
    'cpu-batches': { type: 'string', default: '1' },
    threads: { type: 'string', default: '2' },
    child: { type: 'string' },
    backend: { type: 'string' },
    model: { type: 'string' },
    cache: { type: 'string' },
  },
});
const BATCH = 32;
const SIZE = 224;

/** Runs one measurement in a fresh node process and parses the JSON line it prints last. */
function child(args) {
  const out = spawnSync(process.execPath, [fileURLToPath(import.meta.url), ...args], { encoding: 'utf8', maxBuffer: 1 << 24 });
  const last = out.stdout.trim().split('\n').at(-1) ?? '';
  if (out.status !== 0) return { error: (out.stderr.trim().split('\n').find((l) => /Error/.test(l)) ?? out.stderr.trim()).slice(0, 160) };
  return JSON.parse(last);
}

async function extract(backendName, batches, cacheDir) {
  const rt = await import(runtime);
  let loaded;
  try {
    loaded = await rt.loadBackend(backendName);
  } catch (error) {
    return { unavailable: error.reason ?? error.message };
  }
  const { tf } = loaded;
  const base = await rt.loadBase(tf, 'mobilenet_v2', { cacheDir });
  const input = tf.randomUniform([BATCH, SIZE, SIZE, 3], 0, 1, 'float32', 1);
  const run = async () => {
    const features = base.predict(input, BATCH);
    await features.data();
    features.dispose();
  };
  const warmStart = performance.now();
  await run(); // warm-up: kernel setup, weight packing
  const warmup = (performance.now() - warmStart) / 1000;
  const times = [];
  for (let i = 0; i < batches; i++) {
    const start = performance.now();
    await run();
    times.push((performance.now() - start) / 1000);
  }
  const perBatch = times.reduce((a, b) => a + b, 0) / times.length;
  return { backend: loaded.backend, warmup, perBatch, batches, imagesPerSecond: BATCH / perBatch };
}

const CHILDREN = {
  extract: () => extract(values.backend, Number(values.batches), values.cache),
  // The zoo's two ways to get a base's files, each in a fresh process: from nsfwjs's JS modules
  // (import + base64 decode), or from the converted model.json + weights.bin in the cache.
  'zoo-nsfwjs': async () => {
    const rt = await import(runtime);
    const start = performance.now();
    await rt.convertFromNsfwjs(values.model);
    return { ms: performance.now() - start };
  },
  'zoo-cache': async () => {
    const rt = await import(runtime);
    await rt.nsfwjsModelFiles(values.model, values.cache); // converts on a cold cache; warm here
    const start = performance.now();
    await rt.nsfwjsModelFiles(values.model, values.cache);
    return { ms: performance.now() - start };
  },
  'zoo-load': async () => {
    const rt = await import(runtime);
    const { tf } = await rt.loadBackend('wasm');
    const start = performance.now();
    const base = await rt.loadBase(tf, values.model, { cacheDir: values.cache });
    const ms = performance.now() - start;
    base.dispose();
    return { ms };
  },
};

if (values.child) {
  const result = await CHILDREN[values.child]();
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

function torch(batches, threads) {
  const python = ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'import torch, torchvision'], { stdio: 'ignore' }).status === 0);
  if (!python) return { unavailable: 'python3 cannot import torch and torchvision' };
  const code = `
import json, time, torch, torchvision
torch.set_num_threads(${threads}); torch.manual_seed(0)
m = torchvision.models.mobilenet_v2()  # random weights: speed does not depend on them
features = torch.nn.Sequential(m.features, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
x = torch.rand(${BATCH}, 3, ${SIZE}, ${SIZE})
with torch.no_grad():
    t = time.perf_counter(); y = features(x); warmup = time.perf_counter() - t
    assert tuple(y.shape) == (${BATCH}, 1280)
    times = []
    for _ in range(${batches}):
        t = time.perf_counter(); features(x); times.append(time.perf_counter() - t)
per = sum(times) / len(times)
print(json.dumps({"backend": "torch " + torch.__version__ + " (" + "${python}" + ")", "warmup": warmup, "perBatch": per, "batches": ${batches}, "imagesPerSecond": ${BATCH} / per}))
`;
  const out = spawnSync(python, ['-c', code], { encoding: 'utf8' });
  if (out.status !== 0) return { unavailable: out.stderr.trim().split('\n').at(-1) };
  return JSON.parse(out.stdout.trim().split('\n').at(-1));
}

function row(cells, widths) {
  return `| ${cells.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
}

function table(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  return [row(header, widths), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.map((r) => row(r, widths))].join('\n');
}

const cache = mkdtempSync(path.join(os.tmpdir(), 'headstart-bench-runtime-'));
try {
  const batches = Number(values.batches);
  const results = [];
  for (const backend of ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']) {
    const n = backend === 'cpu' ? Number(values['cpu-batches']) : batches;
    results.push([`tfjs ${backend}`, child(['--child', 'extract', '--backend', backend, '--batches', String(n), '--cache', cache])]);
  }
  results.push([`pytorch (${values.threads} threads)`, torch(batches, Number(values.threads))]);

  console.log(`MobileNetV2 features (1280, avg pooling), ${SIZE}×${SIZE}, batch ${BATCH}; ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, node ${process.version}\n`);
  console.log(
    table(
      ['runtime', 'images/s', 's per batch', 'timed batches', 'first batch (s)'],
      results.map(([name, r]) =>
        r.imagesPerSecond
          ? [name, r.imagesPerSecond.toFixed(2), r.perBatch.toFixed(2), r.batches, r.warmup.toFixed(2)]
          : [name, `not available: ${r.unavailable ?? r.error}`, '', '', ''],
      ),
    ),
  );

  const zooRows = [];
  for (const model of ['mobilenet_v2', 'inception_v3']) {
    const fromNsfwjs = child(['--child', 'zoo-nsfwjs', '--model', model]);
    const fromCache = child(['--child', 'zoo-cache', '--model', model, '--cache', cache]);
    const load = child(['--child', 'zoo-load', '--model', model, '--cache', cache]);
    zooRows.push([model, fromNsfwjs.ms?.toFixed(0), fromCache.ms?.toFixed(0), load.ms?.toFixed(0)]);
  }
  console.log('\nZoo: getting a base\'s model files in a fresh process, and a full loadBase (cached files, wasm, native size)\n');
  console.log(table(['base', 'from nsfwjs modules (ms)', 'from cache dir (ms)', 'loadBase (ms)'], zooRows));
} finally {
  rmSync(cache, { recursive: true, force: true });
}
