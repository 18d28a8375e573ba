import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { loadPipeline } from '@headstart/core';
import { describe, expect, it } from 'vitest';
import { builtinSteps } from '../../src/index.js';
import { initPipeline } from '../../src/init-pipeline.js';
import { makeImage, tempDir } from '../data/fixtures.js';

/** A project folder whose data/ holds two classes of two images each, under `prefix/` per split. */
async function project(splits: readonly string[]): Promise<string> {
  const dir = await tempDir('headstart-init-');
  for (const prefix of splits) {
    for (const [name, colour] of [['cat', { r: 200, g: 0, b: 0 }], ['dog', { r: 0, g: 0, b: 200 }]] as const) {
      for (const n of [1, 2]) await makeImage(path.join(dir, 'data', prefix, name, `${n}.png`), { colour, size: 8 });
    }
  }
  return dir;
}

/** What `headstart validate` checks: the file parses and every stage's parameters fit its step. */
async function validates(file: string): Promise<boolean> {
  const loaded = await loadPipeline(file, { registry: builtinSteps });
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.error));
  return loaded.value.order.join(' ') === 'data prep features head eval';
}

describe('initPipeline (the image-folder template)', () => {
  it.each([
    [[''], 'split: { train: 0.8, val: 0.1, test: 0.1 } }   # per class'],
    [['train', 'test'], 'val_from_train: 0.1 }'],
    [['train', 'val', 'test'], 'with: { size: "${params.image_size}" }'],
    [['train'], 'keep_splits: false'],
  ])('writes a valid pipeline for data/%j', async (splits, prepWith) => {
    const dir = await project(splits);
    const summary = await initPipeline({ dir, template: 'image-folder' });
    expect(summary).toMatchObject({ data: 'data', classes: ['cat', 'dog'], images: 4 * splits.length, splits: splits.filter(Boolean) });
    expect(await readFile(summary.file, 'utf8')).toContain(prepWith);
    expect(await validates(summary.file)).toBe(true);
  });

  it('names the data folder relative to the pipeline, creating the project folder', async () => {
    const dir = await project(['']);
    const summary = await initPipeline({ dir: path.join(dir, 'app'), template: 'image-folder', data: path.join(dir, 'data') });
    expect(summary.data).toBe('../data');
    expect(await validates(summary.file)).toBe(true);
  });

  it('with fineTune, writes the whole recipe as a pipeline every step accepts', async () => {
    const dir = await project(['train', 'test']);
    const summary = await initPipeline({ dir, template: 'image-folder', fineTune: true });
    const text = await readFile(summary.file, 'utf8');
    expect(text).toMatch(/^# Made by `headstart init --fine-tune` for data\/: 2 classes \(cat, dog\)/);
    const loaded = await loadPipeline(summary.file, { registry: builtinSteps });
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.error, (key, value: unknown) => (key === 'file' ? undefined : value)));
    const stages = loaded.value.stages;
    expect(loaded.value.order).toEqual(['data', 'prep', 'features', 'head', 'unfreeze', 'find', 'finetune', 'eval']);
    expect(stages.get('find')!.uses).toBe('lr-find');
    expect(Object.keys(stages.get('finetune')!.inputs).sort()).toEqual(['dataset', 'lr', 'model']);
    expect(stages.get('finetune')!.params).toMatchObject({ lr_scale: 1, schedule: { type: 'one_cycle', pct_start: 0.3 }, layer_decay: 0.7, label_smoothing: 0.1 });
    expect(stages.get('head')!.params).toMatchObject({ label_smoothing: 0.1 });
    expect(stages.get('eval')!.params).toMatchObject({ split: 'test', tta: { flip: true } });
  });

  it('refuses to overwrite, and a folder with split folders but no train/', async () => {
    const dir = await project(['']);
    await writeFile(path.join(dir, 'headstart.yaml'), 'mine\n');
    await expect(initPipeline({ dir, template: 'image-folder' })).rejects.toThrow('headstart.yaml: already exists; not overwriting it');
    expect(await readFile(path.join(dir, 'headstart.yaml'), 'utf8')).toBe('mine\n');
    const other = await project(['val', 'test']);
    await expect(initPipeline({ dir: other, template: 'image-folder', show: (p) => path.relative(other, p) })).rejects.toThrow(/^data: has val and test folders but no train\/ folder$/);
    expect(existsSync(path.join(other, 'headstart.yaml'))).toBe(false);
  });
});
