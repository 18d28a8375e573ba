import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { StepUserError } from '@headstart/core';
import { describe, expect, it } from 'vitest';
import type { DatasetManifest } from '../../src/data/dataset.js';
import { normalizePixels, openSplit, readDatasetManifest, SplitWriter, writeDatasetManifest } from '../../src/data/dataset.js';
import { tempDir } from './fixtures.js';

const HASH = 'a'.repeat(64);

describe('the load-data manifest', () => {
  it('round-trips files and package samples', async () => {
    const dir = await tempDir();
    const manifest: DatasetManifest = {
      classes: ['cat', 'dog'],
      entries: [
        { path: 'data/cat/1.png', label: 0, split: 'train', hash: HASH },
        { index: 12, source: 'mnist', label: 1, split: null, hash: HASH },
      ],
    };
    await writeDatasetManifest(dir, manifest);
    expect(await readDatasetManifest(dir)).toEqual(manifest);
  });

  it('names the line of a malformed entry', async () => {
    const dir = await tempDir();
    await writeFile(path.join(dir, 'classes.json'), '["a", "b"]');
    await writeFile(path.join(dir, 'manifest.jsonl'), `{"path":"x.png","label":0,"split":null,"hash":"${HASH}"}\n{"path":"y.png","label":2,"split":null,"hash":"${HASH}"}\n`);
    const error = await readDatasetManifest(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StepUserError);
    expect((error as Error).message).toBe(`${path.join(dir, 'manifest.jsonl')}:2: label must be a class index below 2`);
  });
});

describe('preprocessed splits', () => {
  it('are read back in batches of B; a missing split names those present', async () => {
    const dir = await tempDir();
    await mkdir(dir, { recursive: true });
    const writer = await SplitWriter.create(dir, 'train', 2);
    const images = Uint8Array.from({ length: 5 * 12 }, (_, i) => i);
    await writer.append(images.subarray(0, 24), Int32Array.from([0, 1]));
    await writer.append(images.subarray(24), Int32Array.from([1, 0, 1]));
    expect(await writer.close()).toBe(5);
    await writeFile(path.join(dir, 'classes.json'), '["a", "b"]');
    await writeFile(path.join(dir, 'preprocessing.json'), JSON.stringify({ size: 2, channels: 3, normalization: '[0,1]', splits: { train: 5 } }));

    const train = await openSplit(dir, 'train');
    expect(train).toMatchObject({ count: 5, size: 2, shape: [5, 2, 2, 3], classes: ['a', 'b'] });
    const batches = [];
    for await (const batch of train.batches(2)) batches.push(batch);
    expect(batches.map((b) => b.count)).toEqual([2, 2, 1]);
    expect(batches.flatMap((b) => [...b.labels])).toEqual([0, 1, 1, 0, 1]);
    expect(batches.flatMap((b) => [...b.images])).toEqual([...images]);
    await expect(openSplit(dir, 'test')).rejects.toThrow('the dataset has no test split (it has train)');
  });
});

describe('normalizePixels', () => {
  it('maps 0..255 onto the recorded range', () => {
    expect([...normalizePixels(Uint8Array.from([0, 255]), '[-1,1]')]).toEqual([-1, 1]);
    expect([...normalizePixels(Uint8Array.from([0, 51, 255]), '[0,1]')]).toEqual([0, Math.fround(0.2), 1]);
    expect([...normalizePixels(Uint8Array.from([0, 7, 255]), 'none')]).toEqual([0, 7, 255]);
  });
});
