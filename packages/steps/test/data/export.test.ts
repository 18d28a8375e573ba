import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { StepUserError } from '@headstart/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { readDatasetManifest } from '../../src/data/dataset.js';
import { exportDataset } from '../../src/data/export.js';
import { loadPackagePixels, pixelKey } from '../../src/data/npm-datasets.js';
import { readNpy } from '../../src/runtime/npy.js';
import loadData from '../../src/steps/load-data.js';
import preprocess from '../../src/steps/preprocess.js';
import { runStep, tempDir } from './fixtures.js';

const FOLDERS = ['Ankle boot', 'Bag', 'Coat', 'Dress', 'Pullover', 'Sandal', 'Shirt', 'Sneaker', 'T-shirt_top', 'Trouser'];

async function listTree(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.relative(root, path.join(e.parentPath, e.name))).sort();
}

describe('exporting fashion-mnist as a PNG folder', () => {
  let workdir: string;
  beforeAll(async () => {
    workdir = await tempDir();
  });

  it('writes train/<class>/<n>.png and test/<class>/<n>.png, N per class each, skipping malformed samples', async () => {
    const summary = await exportDataset('fashion-mnist', { out: path.join(workdir, 'data/fmnist'), perClass: 3, seed: 1 });
    expect(summary).toMatchObject({ train: 30, test: 30, warnings: ['fashion-mnist: skipped 2 malformed samples (class 0 #1000, class 0 #7001)'] });
    expect(await readdir(path.join(workdir, 'data'))).toEqual(['fmnist']);
    for (const split of ['train', 'test']) {
      expect((await readdir(path.join(workdir, 'data/fmnist', split))).sort()).toEqual(FOLDERS);
      for (const folder of FOLDERS) expect(await readdir(path.join(workdir, 'data/fmnist', split, folder))).toHaveLength(3);
    }
    const files = await listTree(path.join(workdir, 'data/fmnist'));
    expect(files.every((f) => /^(train|test)\/[^/]+\/\d+\.png$/.test(f))).toBe(true);
  });

  it('is deterministic for a seed', async () => {
    await exportDataset('fashion-mnist', { out: path.join(workdir, 'again'), perClass: 3, seed: 1 });
    await exportDataset('fashion-mnist', { out: path.join(workdir, 'other'), perClass: 3, seed: 2 });
    const first = await listTree(path.join(workdir, 'data/fmnist'));
    expect(await listTree(path.join(workdir, 'again'))).toEqual(first);
    expect(await readFile(path.join(workdir, 'again', first[0]!))).toEqual(await readFile(path.join(workdir, 'data/fmnist', first[0]!)));
    expect(await listTree(path.join(workdir, 'other'))).not.toEqual(first);
  });

  it('round-trips through load-data and preprocess with the package\'s pixels', async () => {
    const load = await runStep(loadData, { source: 'image-folder', path: 'data/fmnist' }, { workdir });
    const manifest = await readDatasetManifest(load.outputs.dataset!);
    expect(manifest.classes).toEqual(FOLDERS);
    expect(manifest.entries.filter((e) => e.split === 'train')).toHaveLength(30);
    expect(manifest.entries.filter((e) => e.split === 'test')).toHaveLength(30);
    for (let label = 0; label < 10; label++) expect(manifest.entries.filter((e) => e.label === label)).toHaveLength(6);

    const prep = await runStep(preprocess, { size: 28 }, { workdir, inputs: { dataset: load.outputs.dataset! } });
    const images = (await readNpy(path.join(prep.outputs.dataset!, 'test/images.npy'))).data as Uint8Array;
    const tests = manifest.entries.filter((e) => e.split === 'test');
    const packageLabel = (folder: string) => ['T-shirt_top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'].indexOf(folder);
    const wanted = tests.map((e) => ({ label: packageLabel(e.path!.split('/')[3]!), index: Number(path.basename(e.path!, '.png')) }));
    const pixels = await loadPackagePixels('fashion-mnist', wanted);
    wanted.forEach(({ label, index }, row) => {
      const expected = pixels.get(pixelKey(label, index))!;
      const red = Array.from({ length: 784 }, (_, p) => images[(row * 784 + p) * 3]);
      expect(red).toEqual([...expected]);
    });
  });

  it('refuses a non-empty --out, an unknown dataset and a bad --per-class', async () => {
    await mkdir(path.join(workdir, 'full'), { recursive: true });
    await writeFile(path.join(workdir, 'full/keep.txt'), 'mine');
    await expect(exportDataset('fashion-mnist', { out: path.join(workdir, 'full') })).rejects.toThrow(/already exists and is not empty/);
    await expect(exportDataset('cifar', { out: path.join(workdir, 'x') })).rejects.toThrow(StepUserError);
    await expect(exportDataset('mnist', { out: path.join(workdir, 'x'), perClass: 0 })).rejects.toThrow('--per-class must be a positive integer, got 0');
    expect(await readFile(path.join(workdir, 'full/keep.txt'), 'utf8')).toBe('mine');
    await mkdir(path.join(workdir, 'empty'));
    await expect(exportDataset('mnist', { out: path.join(workdir, 'empty'), perClass: 1 })).resolves.toMatchObject({ train: 10, test: 10 });
  });

  it('leaves nothing that looks finished when interrupted', async () => {
    const root = await tempDir();
    const controller = new AbortController();
    const run = exportDataset('mnist', {
      out: path.join(root, 'digits'),
      signal: controller.signal,
      onProgress: () => controller.abort(),
    });
    await expect(run).rejects.toThrow();
    expect(await readdir(root)).toEqual([]);
  });
});

describe('exporting mnist', () => {
  it('holds out the last 1/7 of each class as test, with its own per-class share', async () => {
    const root = await tempDir();
    const summary = await exportDataset('mnist', { out: path.join(root, 'digits'), perClass: 2, seed: 4 });
    expect(summary).toMatchObject({ train: 20, test: 20, warnings: [] });
    const files = await listTree(path.join(root, 'digits'));
    expect(files.filter((f) => f.startsWith('test/0/'))).toHaveLength(2);
    expect(files.filter((f) => f.startsWith('test/0/')).every((f) => Number(path.basename(f, '.png')) >= 1001 - 143)).toBe(true);
  });
});
