import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { imageDecodingFor } from '../../src/ml/image-decoding.js';
import type { ModelMetadata } from '../../src/ml/model-artifact.js';
import { findImages } from '../../src/ml/predict.js';
import { tempDir } from '../data/fixtures.js';

describe('findImages', () => {
  it('keeps the order given, sorts each folder by path, and skips hidden and non-image files', async () => {
    const dir = await tempDir('headstart-predict-');
    for (const file of ['b/2.png', 'b/10.JPG', 'a.webp', 'b/c/1.gif', 'notes.txt', '.hidden.png', '.cache/x.png']) {
      await mkdir(path.dirname(path.join(dir, 'photos', file)), { recursive: true });
      await writeFile(path.join(dir, 'photos', file), '');
    }
    await writeFile(path.join(dir, 'single.bin'), '');
    const photos = path.join(dir, 'photos');
    expect(await findImages([path.join(dir, 'single.bin'), photos])).toEqual([
      path.join(dir, 'single.bin'), ...['a.webp', 'b/10.JPG', 'b/2.png', 'b/c/1.gif'].map((f) => path.join(photos, f)),
    ]);
    await expect(findImages([path.join(dir, 'missing')])).rejects.toThrow(/missing: not found$/);
    await mkdir(path.join(dir, 'empty'));
    await expect(findImages([path.join(dir, 'empty')])).rejects.toThrow(/empty: no images \(\.jpg, .*\) in this folder$/);
  });
});

describe('imageDecodingFor', () => {
  const metadata = { preprocessing: { inputSize: 96, channels: 3, range: [0, 1], resize: 'bilinear' }, base: { ref: 'mnist_cnn' } } as ModelMetadata;

  it('reads the model\'s record, else the dataset, else an export\'s preprocessing.json, else assumes preprocess\'s defaults', async () => {
    const recorded = { ...metadata, base: { ...metadata.base, imageDecoding: { size: 96, fit: 'contain', background: 'black' } } } as ModelMetadata;
    expect(await imageDecodingFor({ model: '/nowhere', metadata: recorded, dataset: '/nowhere' })).toEqual({ decoding: { size: 96, fit: 'contain', background: 'black' }, assumed: false });
    const dir = await tempDir('headstart-decoding-');
    await writeFile(path.join(dir, 'preprocessing.json'), JSON.stringify({ size: 64, channels: 3, fit: 'cover', background: 'black', splits: { train: 1 } }));
    expect(await imageDecodingFor({ model: '/nowhere', metadata, dataset: dir })).toEqual({ decoding: { size: 64, fit: 'cover', background: 'black' }, assumed: false });
    const exported = path.join(dir, 'web');
    await mkdir(exported);
    await writeFile(path.join(exported, 'preprocessing.json'), JSON.stringify({ inputSize: 96, image: { size: 96, fit: 'contain', background: '#fff', kernel: 'lanczos3' } }));
    expect(await imageDecodingFor({ model: exported, metadata })).toEqual({ decoding: { size: 96, fit: 'contain', background: '#fff' }, assumed: false });
    expect(await imageDecodingFor({ model: dir + '/none', metadata })).toEqual({ decoding: { size: 96, fit: 'fill', background: 'white' }, assumed: true });
  });
});
