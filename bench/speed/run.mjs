#!/usr/bin/env node
// Speed against PyTorch and against the seed-style recipe: one table, every headstart number taken
// through the real CLI (`headstart run` of small pipelines written under bench/speed/.work), so a
// faster step shows up here without touching this script.
//
//   pnpm bench:speed                     # = turbo run build && node bench/speed/run.mjs
//   node bench/speed/run.mjs [--reps 3] [--rows 1,2,3,4,5] [--scale 60] [--full] [--keep]
//
// Rows (see bench/speed/README.md for what each compares and why):
//   1  extract-features, MobileNetV2 224 px, batch 32, --extract-images images: headstart's images/s
//      (the stage's own metric, worker pool of `cores` workers; also 1 worker) vs PyTorch 2 threads.
//   2  fine-tune above block_9_add at 96 px (blocks 10-16 + head; --ft-from block_N_expand moves the
//      cut, and the targets then do not apply), batch 32, --ft-images images: the
//      last epoch's images/s (the step's epoch log) vs PyTorch on random 64×6×6 boundary tensors.
//   3  the same fine-tune stage, cache_boundary true vs false: seconds of the last epoch; beside it
//      ("3 ref") PyTorch's own ratio for the same top, boundary tensors vs images through features[:11].
//   4  the flagship at --scale images per class (fixed epochs, early stopping off on both sides):
//      `headstart run` on an empty cache vs bench/speed/seed-style.mjs, wall time.
//   5  peak RSS of `headstart run --stage features` (224 px) over --mem-large vs --mem-small images.
// --recipe adds to rows 2-3 the cached fine-tune with a one_cycle schedule and layer_decay 0.7 (row
// "2 recipe": its last epoch's seconds vs row 2's, within the same reps).
// A and B alternate within each rep; ratios are taken per rep and their median reported.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const cli = path.join(root, 'packages/cli/dist/bin.js');
const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '3' },
    rows: { type: 'string', default: '1,2,3,4,5' },
    'extract-images': { type: 'string', default: '512' },
    'ft-images': { type: 'string', default: '320' },
    'ft-epochs': { type: 'string', default: '2' },
    'ft-from': { type: 'string', default: 'block_10_expand' },
    scale: { type: 'string', default: '60' },
    'head-epochs': { type: 'string', default: '10' },
    'flagship-ft-epochs': { type: 'string', default: '3' },
    'flagship-reps': { type: 'string', default: '1' },
    'mem-small': { type: 'string', default: '300' },
    'mem-large': { type: 'string', default: '3000' },
    full: { type: 'boolean', default: false },
    workers: { type: 'string', default: String(os.availableParallelism()) },
    threads: { type: 'string', default: '2' },
    work: { type: 'string', default: path.join(here, '.work') },
    keep: { type: 'boolean', default: false },
    recipe: { type: 'boolean', default: false },
  },
});
if (values.full) Object.assign(values, { scale: '500', 'head-epochs': '30', 'flagship-ft-epochs': '5', 'mem-small': '1000', 'mem-large': '10000' });
const n = (name) => Number(values[name]);
const REPS = n('reps');
const ROWS = new Set(values.rows.split(',').map((r) => r.trim()));
const WORKERS = n('workers');
const WORK = path.resolve(values.work);
const BATCH = 32;
const BEGAN = new Date();
// Rows 2-3 fine-tune from Keras's block_N_expand up; torchvision's features[N + 1] is the same layer.
const FT_FROM = /^block_(1[0-6]|[1-9])_expand$/.exec(values['ft-from']);
if (!FT_FROM) throw new Error(`--ft-from: expected block_N_expand with N from 1 to 16, got ${values['ft-from']}`);
const FT_BLOCK = Number(FT_FROM[1]);
const FT_TARGETED = FT_BLOCK === 10; // the issue's targets are for blocks 10-16; other cuts are for comparison

// --- helpers ------------------------------------------------------------------------------------
const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const f = (x, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '–');
const ratioText = (x) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '–');
const log = (line) => process.stderr.write(`[bench:speed ${new Date().toISOString().slice(11, 19)}, load ${os.loadavg()[0].toFixed(2)}] ${line}\n`);

// The 1-minute load average, sampled every 5 s, so that each row can say how busy the machine was.
const loadSamples = [];
const sampler = setInterval(() => loadSamples.push({ at: Date.now(), load: os.loadavg()[0] }), 5000);
sampler.unref();
const loadSince = (t0) => {
  const xs = loadSamples.filter((s) => s.at >= t0).map((s) => s.load);
  if (xs.length === 0) xs.push(os.loadavg()[0]);
  return `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}`;
};

/** Runs a command; resolves with stdout, stderr, status, wall seconds and (with `peakRss`) peak RSS in bytes. */
function runCommand(command, args, { cwd = WORK, peakRss = false, env = process.env } = {}) {
  return new Promise((resolve) => {
    const timeFile = path.join(WORK, `.time-${process.pid}`);
    const gnuTime = peakRss && existsSync('/usr/bin/time');
    const [cmd, argv] = gnuTime ? ['/usr/bin/time', ['-f', '%M', '-o', timeFile, command, ...args]] : [command, args];
    const start = performance.now();
    const child = spawn(cmd, argv, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    // Without GNU time: VmHWM (peak RSS; worker threads share the process) read from /proc while it runs.
    let hwm = 0;
    const poll = peakRss && !gnuTime ? setInterval(() => {
      try {
        const kb = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0);
        hwm = Math.max(hwm, kb * 1024);
      } catch { /* exited */ }
    }, 100) : undefined;
    child.on('close', (status) => {
      if (poll) clearInterval(poll);
      const seconds = (performance.now() - start) / 1000;
      let rss = hwm;
      if (gnuTime) {
        rss = Number(readFileSync(timeFile, 'utf8').trim().split('\n').at(-1)) * 1024;
        rmSync(timeFile, { force: true });
      }
      resolve({ stdout, stderr, status, seconds, ...(peakRss ? { peakRss: rss, rssMethod: gnuTime ? '/usr/bin/time -f %M' : '/proc VmHWM polled' } : {}) });
    });
  });
}

/** `headstart run` of a bench pipeline with --json: the parsed summary plus the step logs (stderr). */
async function headstart(pipeline, args, options = {}) {
  const result = await runCommand(process.execPath, [cli, 'run', pipeline, '--json', '--workers', String(WORKERS), ...args], { cwd: path.dirname(pipeline), ...options });
  let summary;
  try {
    summary = JSON.parse(result.stdout);
  } catch {
    summary = undefined;
  }
  if (result.status !== 0 || !summary?.ok) {
    const why = result.stderr.trim().split('\n').filter((l) => /error|Error|✗|failed/.test(l)).slice(-3).join(' / ') || result.stderr.trim().split('\n').slice(-3).join(' / ');
    throw new Error(`headstart run ${path.basename(pipeline)} ${args.join(' ')} exited ${result.status}: ${why.slice(0, 400)}`);
  }
  const stage = (id) => summary.stages.find((s) => s.id === id);
  return { ...result, summary, stage };
}

/** Seconds of each epoch a training stage logged (`[stage] epoch N: … (12.3s)`), from describeEpoch. */
function epochSeconds(stderr, stageId) {
  const re = new RegExp(`\\[${stageId}\\] epoch (\\d+):.*\\(([\\d.]+)s\\)\\s*$`, 'gm');
  return [...stderr.matchAll(re)].map((m) => Number(m[2]));
}

let pythonCache;
function torchPython() {
  if (pythonCache !== undefined) return pythonCache;
  pythonCache = ['python3', '/usr/bin/python3'].find((p) => spawnSync(p, ['-c', 'import torch, torchvision'], { stdio: 'ignore' }).status === 0) ?? null;
  return pythonCache;
}
const NO_TORCH = 'PyTorch: not installed (apt-get install -y python3-torch python3-torchvision)';

async function torch(mode, args) {
  const python = torchPython();
  if (!python) return { unavailable: NO_TORCH };
  // OpenMP's default busy-waiting collapses when other processes hold the cores (the fine-tune loop
  // measured 4-40x slower here on a loaded 2-core machine); passive waiting gives PyTorch its best.
  const env = { ...process.env, OMP_WAIT_POLICY: process.env['OMP_WAIT_POLICY'] ?? 'PASSIVE' };
  const result = await runCommand(python, [path.join(here, 'torch_speed.py'), mode, '--threads', values.threads, ...args], { env });
  if (result.status !== 0) return { unavailable: `PyTorch failed: ${result.stderr.trim().split('\n').at(-1)}` };
  return JSON.parse(result.stdout.trim().split('\n').at(-1));
}

/** Fashion-MNIST exported as the flagship does it: DIR/train|test/<class>/<n>.png, `perClass` each. */
async function exportData(perClass) {
  const dir = path.join(WORK, 'data', `fashion-mnist-${perClass}`);
  if (existsSync(path.join(dir, '.complete'))) return dir;
  rmSync(dir, { recursive: true, force: true });
  const result = await runCommand(process.execPath, [cli, 'data', 'export', 'fashion-mnist', '--out', dir, '--per-class', String(perClass), '--seed', '42']);
  if (result.status !== 0) throw new Error(`data export failed: ${result.stderr}`);
  writeFileSync(path.join(dir, '.complete'), '');
  return dir;
}

/** Writes a pipeline into its own fresh folder (its cache and lock beside it) and returns its path. */
function writePipeline(name, yaml) {
  const dir = path.join(WORK, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'headstart.yaml');
  writeFileSync(file, yaml);
  return file;
}

const extractYaml = (name, data, size) => `name: ${name}
seed: 42
stages:
  data: { uses: load-data, with: { source: image-folder, path: ${JSON.stringify(data)} } }
  prep: { uses: preprocess, inputs: { dataset: data.dataset }, with: { size: ${size} } }
  features: { uses: extract-features, inputs: { dataset: prep.dataset }, with: { base: mobilenet_v2, batch_size: ${BATCH} } }
`;

// The flagship's stages (pipelines/fashion-mnist.yaml) from its data stage on, the exported folder
// given, fixed epochs (early stopping off: the seed-style recipe runs the same epochs), no fail_under.
const flagshipYaml = (name, data, { valFromTrain, splits, headEpochs, ftEpochs, evaluate, fromLayer = 'block_10_expand' }) => `name: ${name}
seed: 42
params: { image_size: 96 }
stages:
  data: { uses: load-data, with: { source: image-folder, path: ${JSON.stringify(data)} } }
  prep: { uses: preprocess, inputs: { dataset: data.dataset }, with: { size: "\${params.image_size}", val_from_train: ${valFromTrain} } }
  features: { uses: extract-features, inputs: { dataset: prep.dataset }, with: { base: mobilenet_v2, splits: ${JSON.stringify(splits)} } }
  head:
    uses: train-head
    inputs: { features: features.features }
    with: { layers: [{ dense: 128, activation: relu }, { dropout: 0.2 }], epochs: ${headEpochs}, lr: 0.001, early_stopping: null }
  unfreeze: { uses: unfreeze, inputs: { model: head.model }, with: { from_layer: ${fromLayer} } }
  finetune:
    uses: fine-tune
    inputs: { model: unfreeze.model, dataset: prep.dataset }
    with: { lr: 0.0001, epochs: ${ftEpochs}, batch_size: ${BATCH}, early_stopping: null }
${evaluate ? `  eval: { uses: evaluate, inputs: { model: finetune.model, dataset: prep.dataset }, with: { split: test } }\n` : ''}`;

const rows = [];
const notes = [];
const addRow = (row) => {
  rows.push(row);
  log(`row ${row[0]}: ${row.slice(1).join(' | ')}`);
};
const failedRow = (id, what, error, target) => {
  log(`row ${id} failed: ${error.stack ?? error}`);
  rows.push([id, what, 'failed', '', '', target, `no (${String(error.message ?? error).slice(0, 200)})`]);
};
const verdict = (ratio, target, atMost = false) => (!Number.isFinite(ratio) ? '–' : (atMost ? ratio <= target : ratio >= target) ? 'yes' : '**no**');

// --- row 1: feature extraction vs PyTorch ---------------------------------------------------------
async function rowExtraction() {
  const t0 = Date.now();
  const images = n('extract-images');
  const perClass = Math.ceil(images / 20); // train and test each get perClass × 10 classes
  const pipeline = writePipeline('extract', extractYaml('bench-speed-extract', await exportData(perClass), 224));
  await headstart(pipeline, ['--stage', 'prep']);
  const reps = [];
  for (let rep = 0; rep < REPS; rep++) {
    const r = {};
    const pool = async () => {
      const run = await headstart(pipeline, ['--stage', 'features', '--force', 'features']);
      const st = run.stage('features');
      r.pool = st.metrics.images_per_second;
      r.poolWorkers = st.info?.threads;
      r.poolStage = st.durationMs / 1000;
    };
    const single = async () => {
      const run = await headstart(pipeline, ['--stage', 'features', '--force', 'features', '--workers', '1']);
      r.single = run.stage('features').metrics.images_per_second;
      r.singleWorkers = run.stage('features').info?.threads;
    };
    const py = async () => {
      r.torch = await torch('extract', ['--images', String(perClass * 20), '--batch', String(BATCH), '--size', '224']);
    };
    for (const step of rep % 2 === 0 ? [pool, py, single] : [single, py, pool]) await step();
    log(`row 1 rep ${rep + 1}: headstart ${r.pool} images/s (${r.poolWorkers} workers), ${r.singleWorkers} worker ${r.single}, PyTorch ${f(r.torch.images_per_second, 2)}`);
    reps.push(r);
  }
  const torchIps = reps.map((r) => r.torch.images_per_second);
  const unavailable = reps[0].torch.unavailable;
  const what = (workers) => `Feature extraction, MobileNetV2 (nsfwjs, out_relu + GAP) 224×224, batch 32, ${perClass * 20} images: headstart extract-features, ${workers} vs PyTorch CPU (${values.threads} threads, no_grad)`;
  for (const [key, label] of [['pool', `${reps[0].poolWorkers} worker threads`], ['single', '1 worker']]) {
    const ratio = median(reps.map((r) => r[key] / r.torch.images_per_second));
    addRow(['1' + (key === 'single' ? 'b' : ''), what(label), `${f(median(reps.map((r) => r[key])), 1)} images/s`, unavailable ?? `${f(median(torchIps), 1)} images/s`, ratioText(ratio), '≥ 1.0×', verdict(ratio, 1.0)]);
  }
  notes.push(`Row 1: ${REPS} reps (headstart ${WORKERS} workers, PyTorch, headstart 1 worker, order reversed every other rep); per rep headstart/PyTorch = ${reps.map((r) => ratioText(r.pool / r.torch.images_per_second)).join(', ')}; 1 worker/PyTorch = ${reps.map((r) => ratioText(r.single / r.torch.images_per_second)).join(', ')}. headstart's number is the stage's images_per_second metric (every batch from the first, read from the preprocessed uint8 .npy and written to features.npy; after the workers have loaded the model); the whole stage took ${reps.map((r) => `${f(r.poolStage)} s`).join(', ')} with ${reps[0].poolWorkers} workers. PyTorch: torchvision mobilenet_v2 features + avgpool, random weights and pixels, every batch timed from the first. Load average (1 min) during the row: ${loadSince(t0)}.`);
}

// --- rows 2 and 3: fine-tuning above block_9_add (or --ft-from) ------------------------------------
async function rowsFineTune() {
  const t0 = Date.now();
  const images = n('ft-images');
  const epochs = n('ft-epochs');
  const perClass = Math.ceil(images / 10);
  // train only (no val split): an epoch is training alone, as in PyTorch's loop.
  const pipeline = writePipeline('finetune', flagshipYaml('bench-speed-finetune', await exportData(perClass), { valFromTrain: 0, splits: ['train'], headEpochs: 1, ftEpochs: epochs, evaluate: false, fromLayer: values['ft-from'] }));
  const setup = await headstart(pipeline, ['--stage', 'unfreeze']);
  const trainable = setup.stage('unfreeze')?.metrics?.trainable_params;
  const reps = [];
  for (let rep = 0; rep < REPS; rep++) {
    const r = {};
    const finetune = async (cached, recipe = false) => {
      const recipeSets = recipe ? ['--set', 'finetune.schedule={type: one_cycle, pct_start: 0.3}', '--set', 'finetune.layer_decay=0.7'] : [];
      const run = await headstart(pipeline, ['--stage', 'finetune', '--force', 'finetune', '--set', `finetune.cache_boundary=${cached}`, ...recipeSets]);
      const seconds = epochSeconds(run.stderr, 'finetune');
      if (seconds.length !== epochs) throw new Error(`expected ${epochs} "[finetune] epoch N: … (Xs)" lines from the fine-tune step, got ${seconds.length}`);
      r[recipe ? 'recipe' : cached ? 'cached' : 'whole'] = { epochs: seconds, last: seconds.at(-1), stage: run.stage('finetune').durationMs / 1000 };
      const threads = /\[finetune\] (training on [^\n]*)/.exec(run.stderr)?.[1];
      r.threads = threads ? `The fine-tune step said "${threads}".` : 'The fine-tune step trained on one thread (tfjs fit: it logged no "training on …" line).';
    };
    const py = async () => {
      r.torch = await torch('finetune', ['--images', String(perClass * 10), '--epochs', String(epochs), '--batch', String(BATCH), '--first', String(FT_BLOCK + 1), '--whole']);
    };
    const steps = rep % 2 === 0 ? [() => finetune(true), py, () => finetune(false)] : [() => finetune(false), py, () => finetune(true)];
    if (values.recipe) steps.splice(1, 0, () => finetune(true, true));
    for (const step of steps) await step();
    log(`rows 2-3 rep ${rep + 1}: cached ${r.cached.epochs.join('/')} s, whole ${r.whole.epochs.join('/')} s, PyTorch ${r.torch.epoch_seconds?.map((s) => f(s, 1)).join('/') ?? r.torch.unavailable} s`);
    reps.push(r);
  }
  const count = perClass * 10;
  const hsIps = reps.map((r) => count / r.cached.last);
  const torchIps = reps.map((r) => r.torch.images_per_second);
  const ratio2 = median(reps.map((r) => count / r.cached.last / r.torch.images_per_second));
  const unavailable = reps[0].torch.unavailable;
  const boundary = reps[0].torch.boundary ? ` (${[...reps[0].torch.boundary.slice(1), reps[0].torch.boundary[0]].join('×')})` : '';
  const target = (text, ratio, value) => (FT_TARGETED ? [text, verdict(ratio, value)] : ['– (not the targeted cut)', '–']);
  addRow(['2', `Fine-tuning MobileNetV2 ${FT_BLOCK === 16 ? 'block 16' : `blocks ${FT_BLOCK}–16`} + dense head from the cached block_${FT_BLOCK - 1}_add boundary${boundary}, 96 px, batch 32, Adam, BN in inference mode, ${count} images: headstart fine-tune step (epoch ${epochs}) vs PyTorch CPU features[${FT_BLOCK + 1}:] + head (${values.threads} threads)`, `${f(median(hsIps), 1)} images/s`, unavailable ?? `${f(median(torchIps), 1)} images/s`, ratioText(ratio2), ...target('≥ 0.5×', ratio2, 0.5)]);
  if (values.recipe) {
    const ratio = median(reps.map((r) => r.recipe.last / r.cached.last));
    addRow(['2 recipe', `Row 2's fine-tune with schedule one_cycle and layer_decay 0.7 vs without (epoch ${epochs}; per rep ${reps.map((r) => `${r.recipe.last}/${r.cached.last}`).join(', ')} s)`, `${f(median(reps.map((r) => r.recipe.last)), 1)} s/epoch`, `${f(median(reps.map((r) => r.cached.last)), 1)} s/epoch`, ratioText(ratio), '≈ 1× (no slowdown)', '–']);
  }
  const ratio3 = median(reps.map((r) => r.whole.last / r.cached.last));
  addRow(['3', `Fine-tune per epoch, same stage and data (${count} images, 96 px, epoch ${epochs}): cache_boundary true vs false (images through the whole network)`, `${f(median(reps.map((r) => r.cached.last)), 1)} s/epoch`, `${f(median(reps.map((r) => r.whole.last)), 1)} s/epoch`, ratioText(ratio3), ...target('≥ 3×', ratio3, 3)]);
  if (!unavailable) {
    const torchRatio3 = median(reps.map((r) => r.torch.whole_epoch_seconds.at(-1) / r.torch.epoch_seconds.at(-1)));
    addRow(['3 ref', `PyTorch's own ratio for row 3 (not a target): the same top trained from random boundary tensors vs from random 96 px images through the frozen features[:${FT_BLOCK + 1}] (eval, no_grad)`, `${f(median(reps.map((r) => r.torch.epoch_seconds.at(-1))), 1)} s/epoch`, `${f(median(reps.map((r) => r.torch.whole_epoch_seconds.at(-1))), 1)} s/epoch`, ratioText(torchRatio3), '–', '–']);
  }
  notes.push(`Rows 2–3: ${REPS} reps of [cache_boundary true, PyTorch, cache_boundary false] (reversed every other rep); ${epochs} epochs each, the last one compared (the first carries the kernels' warm-up); headstart's epoch seconds are the fine-tune step's own epoch log (${WORKERS} --workers), per rep: true ${reps.map((r) => r.cached.epochs.join('/')).join(', ')} s; false ${reps.map((r) => r.whole.epochs.join('/')).join(', ')} s; PyTorch ${reps.map((r) => r.torch.epoch_seconds?.map((s) => f(s, 1)).join('/') ?? '–').join(', ')} s (through the whole network: ${reps.map((r) => r.torch.whole_epoch_seconds?.map((s) => f(s, 1)).join('/') ?? '–').join(', ')} s). Per-rep ratios: row 2 ${reps.map((r) => ratioText(count / r.cached.last / r.torch.images_per_second)).join(', ')}; row 3 ${reps.map((r) => ratioText(r.whole.last / r.cached.last)).join(', ')}. Whole fine-tune stage (incl. loading, and with true computing the boundary activations once): true ${reps.map((r) => `${f(r.cached.stage)} s`).join(', ')}, false ${reps.map((r) => `${f(r.whole.stage)} s`).join(', ')}. ${reps[0].threads} Trainable parameters: headstart ${trainable ?? '?'}, PyTorch ${reps[0].torch.trainable_params ?? '?'}. Load average during the rows: ${loadSince(t0)}.`);
}

// --- row 4: the flagship end to end vs the seed-style recipe --------------------------------------
async function rowFlagship() {
  const t0 = Date.now();
  const perClass = n('scale');
  const [headEpochs, ftEpochs] = [n('head-epochs'), n('flagship-ft-epochs')];
  const data = await exportData(perClass);
  const scale = `${perClass}/class (${perClass * 10} train incl. 10 % val, ${perClass * 10} test), head ${headEpochs} epochs, fine-tune ${ftEpochs} epochs${values.full ? ' (--full: the flagship\'s size)' : ''}`;
  const reps = [];
  // One rep by default (--flagship-reps): the seed-style run is the longest thing in this bench.
  const flagshipReps = Math.max(1, n('flagship-reps'));
  for (let rep = 0; rep < flagshipReps; rep++) {
    const r = {};
    const hs = async () => {
      const pipeline = writePipeline('flagship', flagshipYaml('bench-speed-flagship', data, { valFromTrain: 0.1, splits: ['train', 'val'], headEpochs, ftEpochs, evaluate: true }));
      const run = await headstart(pipeline, []); // a fresh folder: empty cache, no lock
      r.hs = run.seconds;
      r.hsAccuracy = run.stage('eval')?.metrics?.accuracy;
      r.hsStages = run.summary.stages.map((s) => `${s.id} ${f(s.durationMs / 1000)}`).join(', ');
    };
    const seed = async () => {
      const zoo = path.join(WORK, 'seed-style-zoo');
      rmSync(zoo, { recursive: true, force: true }); // an empty cache for it too: it converts nsfwjs's model
      const result = await runCommand(process.execPath, [path.join(here, 'seed-style.mjs'), '--data', data, '--head-epochs', String(headEpochs), '--ft-epochs', String(ftEpochs), '--cache-dir', zoo]);
      if (result.status !== 0) throw new Error(`seed-style.mjs exited ${result.status}: ${result.stderr.trim().split('\n').slice(-3).join(' / ')}`);
      r.seed = result.seconds;
      r.seedReport = JSON.parse(result.stdout.trim().split('\n').at(-1));
    };
    for (const step of rep % 2 === 0 ? [hs, seed] : [seed, hs]) await step();
    log(`row 4 rep ${rep + 1}: headstart ${f(r.hs)} s, seed-style ${f(r.seed)} s`);
    reps.push(r);
  }
  const ratio = median(reps.map((r) => r.seed / r.hs));
  addRow(['4', `Flagship end to end (Fashion-MNIST PNGs → MobileNetV2 96 px → head → fine-tune blocks 10–16 → test accuracy), scale ${scale}: \`headstart run\` on an empty cache vs the seed-style tfjs script (bench/speed/seed-style.mjs), same backend (wasm), data, epochs`, `${f(median(reps.map((r) => r.hs)), 0)} s`, `${f(median(reps.map((r) => r.seed)), 0)} s`, ratioText(ratio), '≥ 5×', verdict(ratio, 5)]);
  const s = reps[0].seedReport;
  notes.push(`Row 4: ${reps.length} rep(s), wall time of each whole process, the image folder exported beforehand for both (neither pays for the export). headstart stages (s): ${reps[0].hsStages}; test accuracy ${reps.map((r) => f(r.hsAccuracy * 100, 1)).join(', ')} %. Seed-style phases (s): ${Object.entries(s.seconds).map(([k, v]) => `${k} ${f(v)}`).join(', ')}; ${s.train} train / ${s.val} val / ${s.test} test images; test accuracy ${f(s.test_accuracy * 100, 1)} %. The seed-style script runs on one wasm thread with headstart's wasm training kernels and frozen-BN fix (so the per-step math is the same; stock wasm cannot fine-tune a depthwise conv). Load average during the row: ${loadSince(t0)}.`);
}

// --- row 5: peak memory of extraction over 10× the images ---------------------------------------
async function rowMemory() {
  const t0 = Date.now();
  const [small, large] = [n('mem-small'), n('mem-large')];
  const measure = async (images) => {
    const pipeline = writePipeline(`memory-${images}`, extractYaml(`bench-speed-memory-${images}`, await exportData(Math.ceil(images / 20)), 224));
    await headstart(pipeline, ['--stage', 'prep']);
    const run = await headstart(pipeline, ['--stage', 'features'], { peakRss: true });
    const st = run.stage('features');
    rmSync(path.dirname(pipeline), { recursive: true, force: true }); // its preprocessed 224 px images are large
    return { rss: run.peakRss, method: run.rssMethod, seconds: st.durationMs / 1000, ips: st.metrics.images_per_second, workers: st.info?.threads };
  };
  const a = await measure(small);
  const b = await measure(large);
  const ratio = b.rss / a.rss;
  const mb = (bytes) => `${f(bytes / 2 ** 20, 0)} MB`;
  addRow(['5', `Peak RSS of \`headstart run --stage features\` (whole process, worker threads included), MobileNetV2 224 px: ${large} vs ${small} images${values.full ? '' : ' (--full: 10,000 vs 1,000)'}`, `${mb(b.rss)} (${large})`, `${mb(a.rss)} (${small})`, `${ratioText(ratio)}`, '≤ 1.2×', verdict(ratio, 1.2, true)]);
  notes.push(`Row 5: peak RSS by ${a.method}; ${small} images: ${f(a.seconds)} s (${a.ips} images/s, ${a.workers} workers), ${large} images: ${f(b.seconds)} s (${b.ips} images/s, ${b.workers} workers); prep ran beforehand in its own process. Load average during the row: ${loadSince(t0)}.`);
}

// --- main ---------------------------------------------------------------------------------------
if (!existsSync(cli)) {
  console.error(`${cli} is missing: run \`pnpm build\` first (pnpm bench:speed does)`);
  process.exit(2);
}
mkdirSync(WORK, { recursive: true });
const loadAtStart = os.loadavg();
log(`starting: ${os.availableParallelism()} cores, load ${loadAtStart.map((x) => x.toFixed(2)).join(' ')}; work dir ${WORK}`);
const jobs = [
  ['1', rowExtraction, ['1', 'Feature extraction vs PyTorch', '≥ 1.0×']],
  ['2', rowsFineTune, ['2–3', 'Fine-tuning vs PyTorch; cached boundary vs whole network', '≥ 0.5× / ≥ 3×']],
  ['4', rowFlagship, ['4', 'Flagship vs seed-style', '≥ 5×']],
  ['5', rowMemory, ['5', 'Peak memory 10× images', '≤ 1.2×']],
];
for (const [id, job, [label, what, target]] of jobs) {
  if (!ROWS.has(id) && !(id === '2' && ROWS.has('3'))) continue;
  try {
    await job();
  } catch (error) {
    failedRow(label, what, error, target);
  }
}
if (!values.keep) {
  for (const dir of ['extract', 'finetune', 'flagship', 'seed-style-zoo']) rmSync(path.join(WORK, dir), { recursive: true, force: true });
}

const header = ['#', 'measurement', 'headstart', 'comparison', 'ratio', 'target', 'met'];
const esc = (cell) => String(cell).replaceAll('|', '\\|');
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => esc(r[i]).length)));
const line = (cells) => `| ${cells.map((c, i) => esc(c).padEnd(widths[i])).join(' | ')} |`;
const python = torchPython();
const torchVersion = python ? spawnSync(python, ['-c', 'import torch, torchvision; print(torch.__version__, torchvision.__version__)'], { encoding: 'utf8' }).stdout.trim() : undefined;
console.log(`\nheadstart speed bench, ${BEGAN.toISOString().slice(0, 16).replace('T', ' ')} UTC; ${os.availableParallelism()} × ${os.cpus()[0]?.model.trim()}, node ${process.version}, tfjs wasm, headstart --workers ${WORKERS}; ${python ? `PyTorch ${torchVersion} (${python}), ${values.threads} threads, OMP_WAIT_POLICY=${process.env['OMP_WAIT_POLICY'] ?? 'PASSIVE'}, random weights` : NO_TORCH}`);
console.log(`load average (1/5/15 min) at start ${loadAtStart.map((x) => x.toFixed(2)).join(' ')}, at end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; took ${f((Date.now() - BEGAN.getTime()) / 60000, 1)} min\n`);
console.log([line(header), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.map(line)].join('\n'));
console.log(`\nRatio: headstart's speed over the comparison's (rows 1, 2), the comparison's time over headstart's (3, 4), peak over peak (5).`);
for (const note of notes) console.log(`\n- ${note}`);
