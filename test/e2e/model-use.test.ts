import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rig } from './rig.js';

interface Prediction {
  path: string;
  top: { class: string; probability: number }[];
}

/** The scaffolded pipeline, made cheap: the small CNN the repository ships, at the digits' own 28 px. */
const SMALL = ['--set', 'params.image_size=28', '--set', 'features.base=mnist_cnn'];

/** MNIST as a PNG folder (train/ and test/, 10 per class), `headstart init` on it, and the pipeline run. */
let rig: Rig;
beforeAll(async () => {
  rig = new Rig();
  expect((await rig.run('data', 'export', 'mnist', '--out', 'data', '--per-class', '10')).exitCode).toBe(0);
  const init = await rig.run('init');
  expect(init.exitCode, init.stderr).toBe(0);
  const run = await rig.run('run', ...SMALL);
  expect(run.exitCode, run.stderr).toBe(0);
}, 120_000);

async function predictJson(...args: string[]): Promise<Prediction[]> {
  const result = await rig.run('predict', '--json', ...args);
  expect(result.exitCode, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as Prediction[];
}

describe('headstart init', () => {
  it('writes a pipeline for the folder that validates, and says what to run next', async () => {
    expect(rig.read('headstart.yaml')).toContain('with: { size: "${params.image_size}", val_from_train: 0.1 }');
    const validated = await rig.run('validate');
    expect(validated.stdout.trim()).toBe('headstart.yaml: ok (5 stages)');
  });

  it('handles one folder per class, lists the stages on a dry run, and never overwrites', async () => {
    const project = new Rig();
    expect((await project.run('data', 'export', 'mnist', '--out', 'digits', '--per-class', '2')).exitCode).toBe(0);
    const init = await project.run('init', 'app', '--data', 'digits/train');
    expect(init.exitCode, init.stderr).toBe(0);
    expect(init.stdout).toContain('10 classes (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), 20 images in ../digits/train (one folder per class)');
    expect(init.stdout).toContain('next: headstart run app/headstart.yaml');
    const dryRun = await project.run('run', '--dry-run', 'app/headstart.yaml');
    expect(dryRun.exitCode, dryRun.stderr).toBe(0);
    expect(dryRun.stdout.match(/^> (\w+): will run/gm)).toEqual(['data', 'prep', 'features', 'head', 'eval'].map((id) => `> ${id}: will run`));
    const again = await project.run('init', 'app', '--data', 'digits/train');
    expect([again.exitCode, again.stderr.trim()]).toEqual([2, 'app/headstart.yaml: already exists; not overwriting it (remove it, or init another folder)']);
  });

  it('rejects a folder without class subfolders in one line', async () => {
    const project = new Rig();
    project.write('pictures/one.png', 'not even an image');
    const result = await project.run('init', '--data', 'pictures');
    expect([result.exitCode, result.stderr.trim()]).toEqual([2, 'pictures: no class folders (expected pictures/<class>/<image>)']);
    expect(project.exists('headstart.yaml')).toBe(false);
  });
});

describe('headstart predict', () => {
  it('classifies the test images as the evaluate stage did: same accuracy', async () => {
    const predictions = await predictJson('--model', 'head', 'data/test');
    expect(predictions).toHaveLength(100);
    expect(predictions.map((p) => p.path)).toEqual([...predictions.map((p) => p.path)].sort());
    const correct = predictions.filter((p) => p.top[0]!.class === p.path.split('/')[2]).length;
    const lock = rig.lockfile() as unknown as { stages: Record<string, { metrics: Record<string, number> }> };
    expect(correct / predictions.length).toBe(lock.stages['eval']!.metrics['accuracy']);
  });

  it('prints one line per image, and the thread pool gives what the main thread gives', async () => {
    const text = await rig.run('predict', '--model', 'head', '--top-k', '2', 'data/test/7');
    expect(text.stdout.trim().split('\n')).toHaveLength(10);
    expect(text.stdout).toMatch(/^data\/test\/7\/\d+\.png {2}\d \(\d\.\d\d\) {2}\d \(\d\.\d\d\)$/m);
    const pooled = await rig.run('predict', '--json', '--model', 'head', '--workers', '2', '--batch-size', '8', 'data/test');
    const single = await rig.run('predict', '--json', '--model', 'head', '--workers', '1', '--batch-size', '8', 'data/test');
    expect(pooled.stdout).toBe(single.stdout);
    expect(pooled.stderr).toContain('100 images on the wasm backend (2 threads)');
    expect(single.stderr.trim()).toBe('100 images on the wasm backend');
  });

  it('names a file that is not an image, and exits 2', async () => {
    rig.write('notes/readme.png', 'plain text');
    const result = await rig.run('predict', '--model', 'head', 'data/test/1', 'notes/readme.png');
    expect(result.exitCode).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^notes\/readme\.png: not a readable image \(.+\)$/m);
    const unknown = await rig.run('predict', '--model', 'heda', 'data/test');
    expect([unknown.exitCode, unknown.stderr.trim()]).toEqual([2, `${join(rig.dir, 'headstart.yaml')}: no stage "heda" (did you mean "head"?)`]);
  });
});

describe('headstart export', () => {
  it('writes a model that plain TensorFlow.js loads and that predicts what headstart predict does', async () => {
    const exported = await rig.run('export', '--stage', 'head', '--out', 'web');
    expect(exported.exitCode, exported.stderr).toBe(0);
    const labels = JSON.parse(rig.read('web/labels.json')) as string[];
    const pre = JSON.parse(rig.read('web/preprocessing.json')) as BrowserPreprocessing;
    expect(pre).toMatchObject({ inputSize: 28, channels: 1, range: [0, 1], image: { size: 28, fit: 'fill', background: 'white' } });
    expect(rig.read('web/README.md')).toContain("tf.loadLayersModel(`${base}/model.json`)");

    const images = ['data/test/0', 'data/test/3', 'data/test/8'].map((folder) => readdirFirst(rig, folder));
    const expected = await predictJson('--model', 'head', '--top-k', '10', ...images);
    const probabilities = await plainTfjsPredict(rig, images, pre);
    expected.forEach((prediction, i) => {
      const ranked = labels.map((_, c) => c).sort((a, b) => probabilities[i]![b]! - probabilities[i]![a]!);
      expect(ranked.slice(0, 3).map((c) => labels[c])).toEqual(prediction.top.slice(0, 3).map((s) => s.class));
      for (const score of prediction.top) expect(Math.abs(probabilities[i]![labels.indexOf(score.class)]! - score.probability)).toBeLessThan(1e-4);
    });
    expect(expected.every((prediction) => prediction.top.length === labels.length)).toBe(true);

    const fromExport = await predictJson('--model', 'web', '--top-k', '10', ...images);
    expect(fromExport).toEqual(expected);
    rig.write('elsewhere/keep.txt', 'mine');
    const refused = await rig.run('export', '--stage', 'head', '--out', 'elsewhere');
    expect([refused.exitCode, refused.stderr.trim()]).toEqual([2, 'elsewhere: holds other files (keep.txt); export into a new or empty folder']);
  });
});

interface BrowserPreprocessing {
  inputSize: number;
  channels: 1 | 3;
  range: [number, number];
  image: { size: number; fit: string; background: string };
}

function readdirFirst(rig: Rig, folder: string): string {
  return join(folder, readdirSync(join(rig.dir, folder)).sort()[0]!);
}

/**
 * What a user of the exported folder does, with nothing from headstart: model.json's topology and
 * weights only (no metadata) in plain tfjs on the cpu backend, and preprocessing.json's rules applied
 * by hand. The digits are already image.size square, so fit and resizing do not apply.
 */
async function plainTfjsPredict(rig: Rig, images: string[], pre: BrowserPreprocessing): Promise<number[][]> {
  await tf.setBackend('cpu');
  const json = JSON.parse(rig.read('web/model.json')) as tf.io.ModelJSON;
  const weights = readFileSync(join(rig.dir, 'web', json.weightsManifest[0]!.paths[0]!));
  const model = await tf.loadLayersModel(tf.io.fromMemory({
    modelTopology: json.modelTopology,
    weightSpecs: json.weightsManifest.flatMap((group) => group.weights),
    weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
  }));
  expect(pre.inputSize).toBe(pre.image.size);
  const rows: number[] = [];
  for (const image of images) {
    const { data, info } = await sharp(join(rig.dir, image)).greyscale().raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([pre.image.size, pre.image.size]);
    for (const gray of data) {
      const value = gray * (pre.range[1] - pre.range[0]) / 255 + pre.range[0];
      rows.push(...Array<number>(pre.channels).fill(value));
    }
  }
  const input = tf.tensor4d(rows, [images.length, pre.inputSize, pre.inputSize, pre.channels]);
  const output = model.predict(input) as tf.Tensor2D;
  const probabilities = (await output.array()) as number[][];
  tf.dispose([input, output]);
  model.dispose();
  return probabilities;
}
