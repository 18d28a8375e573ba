import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { SymbolicTensor, Tensor } from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { fileSystemIO, loadModel, RuntimeUserError, saveModel } from '../../src/runtime/index.js';
import { tempDir, wasm } from './helpers.js';

const tf = await wasm();
const dir = await tempDir();

function smallModel() {
  const input = tf.input({ shape: [6, 6, 1] });
  const conv = tf.layers.conv2d({ filters: 3, kernelSize: 3, name: 'conv', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }).apply(input);
  const bn = tf.layers.batchNormalization({ name: 'bn' }).apply(conv);
  const pooled = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(bn);
  const out = tf.layers.dense({ units: 2, name: 'out', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }).apply(pooled);
  return tf.model({ inputs: input, outputs: out as SymbolicTensor });
}

describe('layers models on disk', () => {
  it('saves on wasm as model.json + weights.bin and loads back with identical outputs', async () => {
    const model = smallModel();
    model.setUserDefinedMetadata({ headstart: { classes: ['a', 'b'] } });
    const target = path.join(dir, 'saved');
    await saveModel(model, target);
    expect((await readdir(target)).sort()).toEqual(['model.json', 'weights.bin']);
    const json = JSON.parse(await readFile(path.join(target, 'model.json'), 'utf8'));
    expect(json.format).toBe('layers-model');
    expect(json.weightsManifest).toEqual([{ paths: ['weights.bin'], weights: expect.any(Array) }]);

    const loaded = await loadModel(tf, target);
    const x = tf.randomUniform([3, 6, 6, 1], 0, 1, 'float32', 5);
    const a = model.predict(x) as Tensor;
    const b = loaded.predict(x) as Tensor;
    expect(Array.from(await b.data())).toEqual(Array.from(await a.data()));
    expect(loaded.getUserDefinedMetadata()).toEqual({ headstart: { classes: ['a', 'b'] } });
    tf.dispose([x, a, b]);
    model.dispose();
    loaded.dispose();
  });

  it('loads through the IOHandler from a model.json path too', async () => {
    const model = smallModel();
    const target = path.join(dir, 'by-file');
    await model.save(fileSystemIO(target));
    const loaded = await tf.loadLayersModel(fileSystemIO(path.join(target, 'model.json')));
    expect(loaded.layers.map((l) => l.name)).toEqual(model.layers.map((l) => l.name));
    model.dispose();
    loaded.dispose();
  });

  it('reports a missing or short weights file as a user error', async () => {
    const model = smallModel();
    const target = path.join(dir, 'broken');
    await saveModel(model, target);
    model.dispose();
    const weights = path.join(target, 'weights.bin');
    const bytes = await readFile(weights);
    await writeFile(weights, bytes.subarray(0, bytes.length - 4));
    await expect(loadModel(tf, target)).rejects.toThrow(/weight files hold \d+ bytes, its manifest needs \d+/);
    await rm(weights);
    const error = await loadModel(tf, target).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RuntimeUserError);
    expect((error as Error).message).toMatch(/names weight file weights\.bin, which cannot be read \(ENOENT\)/);
  });
});
