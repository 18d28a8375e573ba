#!/usr/bin/env node
// Training kernels on wasm: each kernel headstart registers for wasm (packages/steps/src/runtime/
// wasm-kernels*.ts) against tfjs-backend-wasm's own where it has one ("stock") and against the cpu
// backend, at MobileNetV2 sizes (96 px input, batch 32); then whole training steps, ours vs stock.
//
//   (cd packages/steps && npx tsc -b)      # the script runs over packages/steps/dist
//   node bench/kernels/run.mjs [--reps 5] [--cpu-reps 1] [--steps 5] [--cpu-step] [--no-top] [--profile]
//                              [--threads 2] [--no-kernels]
//
// "stock" re-registers the wasm package's own Conv2DBackpropInput, Tile, Sum, Mean, Identity and
// FusedBatchNorm and tfjs-core's relu6 gradient: the backend with only the kernels it lacks added,
// which is as fast as wasm could train before. --cpu-step also times steps on the cpu backend (about
// a minute each). Everything runs in one process: compare ratios within one run. The last table
// times a step of the MobileNetV2 tops as tfjs's trainOnBatch, as fine-tune's sliced trainer on one
// thread, and shared between --threads threads (data-parallel, the main thread and worker threads:
// packages/steps/src/ml/data-parallel/trainer.ts), alternating.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const steps = path.resolve(here, '../../packages/steps');
const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '5' },
    'cpu-reps': { type: 'string', default: '1' },
    steps: { type: 'string', default: '5' },
    'cpu-step': { type: 'boolean', default: false },
    'no-top': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    threads: { type: 'string', default: '2' },
    'no-kernels': { type: 'boolean', default: false },
  },
});
const BATCH = 32;

// The wasm package registers its kernels when imported: keep the stock ones registerWasmKernels
// replaces (and tfjs-core's relu6 gradient) before loadBackend replaces them.
const require = createRequire(path.join(steps, 'package.json'));
const tf = await import(require.resolve('@tensorflow/tfjs'));
await import(require.resolve('@tensorflow/tfjs-backend-wasm'));
const REPLACED = ['Conv2DBackpropInput', 'Tile', 'Sum', 'Mean', 'Identity', 'FusedBatchNorm'];
const snapshot = () => ({ grad: tf.getGradient('ClipByValue'), ...Object.fromEntries(REPLACED.map((name) => [name, tf.getKernel(name, 'wasm')])) });
const stock = snapshot();
const rt = await import(path.join(steps, 'dist/runtime/index.js'));
const graph = await import(path.join(steps, 'dist/ml/model-graph.js'));
const trainPool = await import(path.join(steps, 'dist/ml/data-parallel/trainer.js'));
await rt.loadBackend('wasm');
const ours = snapshot();

/** 'wasm' (ours), 'wasm-stock' (wasm's own kernels where it has them, ours where it has none) or 'cpu'. */
async function use(mode) {
  await rt.loadBackend(mode === 'cpu' ? 'cpu' : 'wasm');
  if (mode === 'cpu') return;
  const chosen = mode === 'wasm-stock' ? stock : ours;
  for (const name of REPLACED) {
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel(chosen[name]);
  }
  tf.unregisterGradient('ClipByValue');
  tf.registerGradient(chosen.grad);
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Median ms of `run(inputs)` over reps, after one warm-up call unless on cpu. Inputs are made afresh
 * for every call, outside the timing: XNNPACK keeps packed weights per tensor, so reusing inputs
 * would flatter kernels built on matMul and conv. wasm and cpu kernels run synchronously.
 */
async function timeIt(prepare, run, reps) {
  const once = async () => {
    const inputs = prepare();
    const start = performance.now();
    const out = await run(inputs);
    const ms = performance.now() - start;
    tf.dispose([out, inputs]);
    return ms;
  };
  if (tf.getBackend() !== 'cpu') await once();
  const times = [];
  for (let i = 0; i < reps; i++) times.push(await once());
  return median(times);
}

const rnd = (shape, seed) => tf.randomNormal(shape, 0, 1, 'float32', seed);

const kernel = (name, inputs, attrs) => ({ prepare: inputs, run: (ins) => tf.engine().runKernel(name, ins, attrs) });
const dwFilter = (h, c, s) => kernel('DepthwiseConv2dNativeBackpropFilter', () => ({ x: rnd([BATCH, h, h, c], 1), dy: rnd([BATCH, Math.ceil(h / s), Math.ceil(h / s), c], 2) }), { strides: s, pad: 'same', dilations: 1, filterShape: [3, 3, c, 1] });
const dwInput = (h, c, s) => kernel('DepthwiseConv2dNativeBackpropInput', () => ({ dy: rnd([BATCH, Math.ceil(h / s), Math.ceil(h / s), c], 2), filter: rnd([3, 3, c, 1], 3) }), { strides: s, pad: 'same', dilations: 1, inputShape: [BATCH, h, h, c] });
const convFilter = (h, k, ci, co, s) => kernel('Conv2DBackpropFilter', () => ({ x: rnd([BATCH, h, h, ci], 1), dy: rnd([BATCH, Math.ceil(h / s), Math.ceil(h / s), co], 2) }), { strides: s, pad: 'same', dataFormat: 'NHWC', filterShape: [k, k, ci, co] });
const convInput = (h, k, ci, co, s) => kernel('Conv2DBackpropInput', () => ({ dy: rnd([BATCH, Math.ceil(h / s), Math.ceil(h / s), co], 2), filter: rnd([k, k, ci, co], 3) }), { strides: s, pad: 'same', dataFormat: 'NHWC', inputShape: [BATCH, h, h, ci] });
const relu6Grad = {
  prepare: () => tf.mul(rnd([BATCH, 12, 12, 384], 1), 4),
  run: (x) => tf.grad((t) => tf.clipByValue(t, 0, 6))(x),
};

/** [kernel, size, { prepare, run }, replaces a stock wasm kernel]: MobileNetV2 sizes at 96 px input (expansion 6). */
const KERNELS = [
  ['DepthwiseConv2dNativeBackpropFilter', '3×3 s1, 12×12×384', dwFilter(12, 384, 1)],
  ['DepthwiseConv2dNativeBackpropFilter', '3×3 s1, 6×6×576', dwFilter(6, 576, 1)],
  ['DepthwiseConv2dNativeBackpropFilter', '3×3 s1, 3×3×960', dwFilter(3, 960, 1)],
  ['DepthwiseConv2dNativeBackpropFilter', '3×3 s2, 24×24×144', dwFilter(24, 144, 2)],
  ['DepthwiseConv2dNativeBackpropInput', '3×3 s1, 12×12×384', dwInput(12, 384, 1)],
  ['DepthwiseConv2dNativeBackpropInput', '3×3 s2, 24×24×144', dwInput(24, 144, 2)],
  ['Conv2DBackpropFilter', '1×1 64→384, 12×12', convFilter(12, 1, 64, 384, 1)],
  ['Conv2DBackpropFilter', '1×1 384→64, 12×12', convFilter(12, 1, 384, 64, 1)],
  ['Conv2DBackpropFilter', '3×3 s2 32→64, 24×24', convFilter(24, 3, 32, 64, 2)],
  ['Conv2DBackpropInput', '1×1 64→384, 12×12', convInput(12, 1, 64, 384, 1), true],
  ['Conv2DBackpropInput', '1×1 384→64, 12×12', convInput(12, 1, 384, 64, 1), true],
  ['Conv2DBackpropInput', '3×3 s2 32→64, 24×24', convInput(24, 3, 32, 64, 2), true],
  ['Tile (batch-norm gradient)', '[1,1,1,384] → 32×12×12×384', kernel('Tile', () => ({ x: rnd([1, 1, 1, 384], 1) }), { reps: [BATCH, 12, 12, 1] }), true],
  ['Sum over N, H, W', '32×12×12×384', kernel('Sum', () => ({ x: rnd([BATCH, 12, 12, 384], 1) }), { axis: [0, 1, 2], keepDims: false }), true],
  ['FusedBatchNorm', '32×12×12×384', kernel('FusedBatchNorm', () => ({ x: rnd([BATCH, 12, 12, 384], 1), mean: rnd([384], 2), variance: tf.abs(rnd([384], 3)), scale: rnd([384], 4), offset: rnd([384], 5) }), { varianceEpsilon: 1e-3 }), true],
  ['Identity (tensors saved for backprop)', '32×12×12×384', kernel('Identity', () => ({ x: rnd([BATCH, 12, 12, 384], 1) }), {}), true],
  ['relu6 gradient (ClipByValue grad)', '32×12×12×384', relu6Grad, true],
];

/**
 * The issue's first sketch of the depthwise filter gradient (stride 1, multiplier 1): the K·K shifted
 * windows stacked into [C, K·K, N·oH·oW] and one batched matMul with dy as [C, N·oH·oW, 1]. Kept
 * here to show why the kernel does otherwise.
 */
function patchesFilterGrad(x, dy, k) {
  return tf.tidy(() => {
    const [n, h, w, c] = dy.shape;
    const p = (k - 1) / 2;
    const xp = tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]]);
    const taps = [];
    for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) taps.push(tf.reshape(tf.slice(xp, [0, i, j, 0], [n, h, w, c]), [1, n * h * w, c]));
    const patches = tf.transpose(tf.concat(taps, 0), [2, 0, 1]);
    const dyT = tf.reshape(tf.transpose(tf.reshape(dy, [n * h * w, c])), [c, n * h * w, 1]);
    return tf.reshape(tf.transpose(tf.reshape(tf.matMul(patches, dyT), [c, k * k])), [k, k, c, 1]);
  });
}

/** The other formulation the kernel has (used for maps up to 5×5 and strided convs), stride 1 'same' here. */
function oneConvFilterGrad(x, dy, k) {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const p = (k - 1) / 2;
    const input = tf.reshape(tf.transpose(tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]]), [1, 2, 0, 3]), [1, h + 2 * p, w + 2 * p, n * c]);
    const filter = tf.reshape(tf.transpose(dy, [1, 2, 0, 3]), [h, w, n * c, 1]);
    return tf.reshape(tf.sum(tf.reshape(tf.depthwiseConv2d(input, filter, 1, 'valid'), [k * k, n, c]), 1), [k, k, c, 1]);
  });
}

async function kernelRows() {
  const rows = [];
  for (const [name, size, { prepare, run }, replaces] of KERNELS) {
    const ms = {};
    for (const mode of replaces ? ['wasm', 'wasm-stock', 'cpu'] : ['wasm', 'cpu']) {
      await use(mode);
      ms[mode] = await timeIt(prepare, run, mode === 'cpu' ? Number(values['cpu-reps']) : Number(values.reps));
    }
    rows.push([name, size, fmt(ms.wasm), fmt(ms['wasm-stock']), ratio(ms['wasm-stock'], ms.wasm), fmt(ms.cpu), ratio(ms.cpu, ms.wasm)]);
  }
  await use('wasm');
  const prepare = () => ({ x: rnd([BATCH, 12, 12, 384], 1), dy: rnd([BATCH, 12, 12, 384], 2) });
  const attrs = { strides: 1, pad: 'same', dilations: 1, filterShape: [3, 3, 384, 1] };
  const ours = ({ x, dy }) => tf.engine().runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, attrs);
  const ways = { ours, oneConv: ({ x, dy }) => oneConvFilterGrad(x, dy, 3), patches: ({ x, dy }) => patchesFilterGrad(x, dy, 3) };
  const sketch = { error: 0 };
  const inputs = prepare();
  const reference = ours(inputs);
  for (const [way, run] of Object.entries(ways)) {
    const grad = run(inputs);
    sketch.error = Math.max(sketch.error, tf.tidy(() => tf.max(tf.abs(tf.sub(grad, reference))).div(tf.max(tf.abs(reference))).dataSync()[0]));
    grad.dispose();
    sketch[way] = await timeIt(prepare, run, Number(values.reps));
  }
  tf.dispose([inputs, reference]);
  return { rows, sketch };
}

/** Expand 1×1 → BN → relu6 → depthwise 3×3 → BN → relu6 → project 1×1 → BN, + residual; pooled softmax head. */
function mobilenetBlock() {
  const input = tf.input({ shape: [12, 12, 64] });
  const init = (seed) => tf.initializers.glorotUniform({ seed });
  let h = tf.layers.conv2d({ filters: 384, kernelSize: 1, useBias: false, kernelInitializer: init(1) }).apply(input);
  h = tf.layers.reLU({ maxValue: 6 }).apply(tf.layers.batchNormalization().apply(h));
  h = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', useBias: false, depthwiseInitializer: init(2) }).apply(h);
  h = tf.layers.reLU({ maxValue: 6 }).apply(tf.layers.batchNormalization().apply(h));
  h = tf.layers.batchNormalization().apply(tf.layers.conv2d({ filters: 64, kernelSize: 1, useBias: false, kernelInitializer: init(3) }).apply(h));
  const pooled = tf.layers.globalAveragePooling2d({}).apply(tf.layers.add().apply([input, h]));
  const output = tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: init(4) }).apply(pooled);
  const model = tf.model({ inputs: input, outputs: output });
  model.compile({ optimizer: tf.train.sgd(0.01), loss: 'categoricalCrossentropy' });
  return model;
}

/** The layers of MobileNetV2 (96 px) above `boundary`, trainable, BN in inference mode, Adam 1e-4. */
async function mobilenetTop(boundary, cacheDir) {
  const base = await rt.loadBase(tf, 'mobilenet_v2', { cacheDir, inputSize: 96 });
  const head = tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 5 }) });
  const full = tf.model({ inputs: base.model.inputs, outputs: head.apply(base.model.outputs[0]) });
  const index = full.layers.findIndex((layer) => layer.name === boundary);
  full.layers.forEach((layer, i) => (layer.trainable = i > index));
  rt.freezeBatchNorm(full, 'always');
  const split = graph.splitAtFirstTrainable(tf, full);
  if (!split) throw new Error(`cannot split MobileNetV2 at ${boundary}`);
  split.upper.compile({ optimizer: tf.train.adam(1e-4), loss: 'categoricalCrossentropy' });
  return { model: split.upper, inputShape: split.boundaryShape, dispose: () => base.dispose() };
}

/** Median seconds of one trainOnBatch step (and, with --profile, the kernels taking most time). */
async function stepTime(model, inputShape, reps) {
  const x = tf.randomUniform([BATCH, ...inputShape], 0, 1, 'float32', 7);
  const y = tf.oneHot(tf.tensor1d(Array.from({ length: BATCH }, (_, i) => i % 10), 'int32'), 10);
  const ms = await timeIt(() => [], async () => tf.scalar(await model.trainOnBatch(x, y)), reps);
  const profile = values.profile && tf.getBackend() !== 'cpu' ? await topKernels(() => model.trainOnBatch(x, y)) : '';
  tf.dispose([x, y]);
  return { s: ms / 1000, profile };
}

/** The five kernel names with the most time in one call, summed (a kernel built from others counts them again). */
async function topKernels(run) {
  const info = await tf.profile(async () => tf.scalar(await run()));
  const byName = new Map();
  for (const k of info.kernels) byName.set(k.name, (byName.get(k.name) ?? 0) + k.kernelTimeMs);
  return [...byName].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([n, t]) => `${n} ${t.toFixed(0)}`).join(', ');
}

async function stepRows(cacheDir) {
  const rows = [];
  const profiles = [];
  const block = () => {
    const model = mobilenetBlock();
    return { model, inputShape: [12, 12, 64], dispose: () => model.dispose() };
  };
  const models = [['MobileNetV2-like block, 12×12×64 in, BN training', block]];
  if (!values['no-top']) {
    for (const boundary of ['block_12_add', 'block_9_add']) models.push([`MobileNetV2 96 px, layers above ${boundary}`, () => mobilenetTop(boundary, cacheDir)]);
  }
  for (const [label, build] of models) {
    const s = {};
    for (const mode of ['wasm', 'wasm-stock', 'cpu']) {
      if (mode === 'cpu' && !values['cpu-step']) continue;
      await use(mode);
      const built = await build();
      const result = await stepTime(built.model, built.inputShape, mode === 'cpu' ? Number(values['cpu-reps']) : Number(values.steps));
      s[mode] = result.s;
      if (result.profile) profiles.push(`${label}, ${mode}: ${result.profile}`);
      built.dispose();
    }
    rows.push([label, s.wasm.toFixed(3), s['wasm-stock'].toFixed(3), ratio(s['wasm-stock'], s.wasm), s.cpu?.toFixed(2) ?? '', ratio(s.cpu, s.wasm)]);
  }
  return { rows, profiles };
}

/**
 * Where the main thread's time goes in data-parallel steps: the trainer's own phases, timed by wrapping
 * its methods (bench only); the rest of a step is waiting for the workers.
 */
function timePhases(trainer, optimizer) {
  const phases = { publish: [], own: [], apply: [], adam: [] };
  const wrap = (target, method, phase) => {
    const original = target[method].bind(target);
    target[method] = (...args) => {
      const start = performance.now();
      try {
        return original(...args);
      } finally {
        phases[phase].push(performance.now() - start);
      }
    };
  };
  wrap(trainer, 'publishWeights', 'publish');
  wrap(trainer, 'ownSlices', 'own');
  wrap(trainer, 'addAndApply', 'apply');
  wrap(optimizer, 'applyGradients', 'adam');
  return phases;
}

/** CPU seconds each thread of this process has used (Linux: /proc/self/task/<tid>/stat, utime + stime). */
function cpuByThread() {
  const ticks = new Map();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const fields = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1].split(' ');
      ticks.set(tid, (Number(fields[11]) + Number(fields[12])) / 100);
    } catch {
      // the thread ended meanwhile
    }
  }
  return ticks;
}

/**
 * Seconds per step, alternating on one model (the first round left out as warm-up): tfjs's
 * trainOnBatch, the sliced trainer fine-tune uses on one thread, and the same on `threads` threads;
 * with the main thread's phases in the last (ms, medians).
 */
async function dataParallelStep(model, inputShape, threads, reps) {
  const count = BATCH * 4;
  const train = tf.tidy(() => ({
    x: tf.randomUniform([count, ...inputShape], 0, 1, 'float32', 7),
    y: tf.oneHot(tf.tensor1d(Array.from({ length: count }, (_, i) => i % 10), 'int32'), 10).toFloat(),
    count,
  }));
  const sliced = await trainPool.DataParallelTrainer.start(tf, model, { train }, 1, BATCH);
  const shared = await trainPool.DataParallelTrainer.start(tf, model, { train }, threads, BATCH);
  const phases = timePhases(shared, model.optimizer);
  const times = { fit: [], sliced: [], shared: [] };
  const cpu = new Map(); // thread → CPU seconds in the shared steps: the main thread and the workers' busiest
  const timed = async (key, run) => {
    const [before, start] = [key === 'shared' ? cpuByThread() : undefined, performance.now()];
    await run();
    times[key].push(performance.now() - start);
    if (before) for (const [tid, seconds] of cpuByThread()) cpu.set(tid, (cpu.get(tid) ?? 0) + seconds - (before.get(tid) ?? seconds));
  };
  try {
    for (let step = 0; step <= reps; step++) {
      const rows = Int32Array.from({ length: BATCH }, (_, i) => (step * BATCH + i) % count);
      const [x, y] = tf.tidy(() => [tf.gather(train.x, tf.tensor1d(rows, 'int32')), tf.gather(train.y, tf.tensor1d(rows, 'int32'))]);
      await timed('fit', () => model.trainOnBatch(x, y));
      await timed('sliced', () => sliced.trainBatch(rows));
      await timed('shared', () => shared.trainBatch(rows));
      tf.dispose([x, y]);
      if (step === 0) {
        [...Object.values(phases), ...Object.values(times)].forEach((list) => (list.length = 0));
        cpu.clear();
      }
    }
  } finally {
    await Promise.all([sliced.close(), shared.close()]);
    tf.dispose([train.x, train.y]);
  }
  const waits = times.shared.map((total, i) => total - phases.publish[i] - phases.own[i] - phases.apply[i]);
  const adam = median(phases.adam); // the three ways' calls alike
  const seconds = Object.fromEntries(Object.entries(times).map(([key, list]) => [key, median(list) / 1000]));
  const fastest = Math.min(...times.fit) / Math.min(...times.shared);
  const mainCpu = (cpu.get(String(process.pid)) ?? 0) / reps;
  const workerCpu = Math.max(...[...cpu].filter(([tid]) => tid !== String(process.pid)).map(([, seconds]) => seconds)) / reps;
  return { ...seconds, fastest, mainCpu, workerCpu, publish: median(phases.publish), own: median(phases.own), wait: median(waits), apply: median(phases.apply), adam };
}

async function dataParallelRows(cacheDir) {
  const threads = Number(values.threads);
  const rows = [];
  const notes = [];
  await use('wasm');
  for (const boundary of ['block_12_add', 'block_9_add']) {
    const built = await mobilenetTop(boundary, cacheDir);
    const r = await dataParallelStep(built.model, built.inputShape, threads, Number(values.steps));
    built.dispose();
    const label = `MobileNetV2 96 px, layers above ${boundary}`;
    const perSecond = (s) => (BATCH / s).toFixed(1);
    rows.push([label, r.fit.toFixed(3), r.sliced.toFixed(3), r.shared.toFixed(3), `${(r.fit / r.shared).toFixed(2)}×`, `${r.fastest.toFixed(2)}×`, perSecond(r.fit), perSecond(r.shared)]);
    notes.push(`${label}: publish weights ${fmt(r.publish)}, own slices ${fmt(r.own)}, waiting for the workers ${fmt(r.wait)}, summing gradients + optimizer ${fmt(r.apply)} (of which Adam ${fmt(r.adam)}); CPU per step: main thread ${fmt(r.mainCpu * 1000)}, busiest worker ${fmt(r.workerCpu * 1000)}`);
  }
  return { rows, notes, threads };
}

const fmt = (ms) => (ms === undefined ? '' : ms.toFixed(1));
const ratio = (a, b) => (a === undefined || b === undefined ? '' : `${(a / b).toFixed(1)}×`);

function table(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => `| ${cells.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
  return [line(header), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.map(line)].join('\n');
}

const cacheDir = mkdtempSync(path.join(os.tmpdir(), 'headstart-bench-kernels-'));
try {
  console.log(`tfjs ${tf.version.tfjs}, batch ${BATCH}; ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, node ${process.version}\n`);
  if (!values['no-kernels']) {
    const kernels = await kernelRows();
    console.log(table(['kernel', 'size', 'wasm ours (ms)', 'wasm stock (ms)', 'stock/ours', 'cpu (ms)', 'cpu/ours'], kernels.rows));
    const { ours, oneConv, patches, error } = kernels.sketch;
    console.log(`\nDepthwise filter gradient, 3×3 s1, 12×12×384: ours (the SIMD kernel) ${ours.toFixed(1)} ms; as one depthwise conv with dy as the filter ${oneConv.toFixed(1)} ms; as stacked patches + batched matMul ${patches.toFixed(1)} ms (all three agree to ${error.toExponential(1)})\n`);
    const stepsResult = await stepRows(cacheDir);
    console.log(table(['one training step (trainOnBatch, batch 32)', 'wasm ours (s)', 'wasm stock (s)', 'stock/ours', 'cpu (s)', 'cpu/ours'], stepsResult.rows));
    if (stepsResult.profiles.length > 0) console.log(`\nTop kernels per step (ms, tf.profile):\n${stepsResult.profiles.map((p) => `- ${p}`).join('\n')}`);
  }
  if (!values['no-top'] && Number(values.threads) > 1) {
    const dp = await dataParallelRows(cacheDir);
    const n = `${dp.threads} threads`;
    const header = ['one training step, batch 32, wasm', 'trainOnBatch (s)', 'slices of 16, 1 thread (s)', `slices, ${n} (s)`, 'speed-up', 'fastest/fastest', 'images/s, trainOnBatch', `images/s, ${n}`];
    console.log(`\n${table(header, dp.rows)}\n\nMain thread per data-parallel step (ms, medians):\n${dp.notes.map((n) => `- ${n}`).join('\n')}`);
  }
} finally {
  rmSync(cacheDir, { recursive: true, force: true });
}
