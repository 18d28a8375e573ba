import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BASES, loadBase, nsfwjsCacheDir, RuntimeUserError, type BaseModel } from '../../src/runtime/index.js';
import { tempDir, wasm } from './helpers.js';

const tf = await wasm();
const cacheDir = await tempDir();

async function weightBytes(base: BaseModel): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const weight of base.trunk.weights) {
    const values = (await weight.read().data()) as Float32Array;
    out.set(weight.originalName, Buffer.from(values.buffer, values.byteOffset, values.byteLength));
  }
  return out;
}

async function features(base: BaseModel, n: number): Promise<Float32Array> {
  const size = base.preprocessing.inputSize;
  const x = tf.randomUniform([n, size, size, 3], 0, 1, 'float32', 11);
  const f = base.predict(x);
  expect(f.shape).toEqual([n, ...base.info.featureShape]);
  const values = (await f.data()) as Float32Array;
  tf.dispose([x, f]);
  return values;
}

describe('mobilenet_v2 from nsfwjs', () => {
  it('cuts at out_relu and pools to 1280 features at 96 px, with weights bit-identical to 224 px', async () => {
    const small = await loadBase(tf, 'mobilenet_v2', { cacheDir, inputSize: 96 });
    expect(small.info).toMatchObject({ source: 'mobilenet_v2', layer: 'out_relu', pooling: 'avg', featureShape: [1280] });
    expect(small.preprocessing).toEqual({ inputSize: 96, channels: 3, range: [0, 1], resize: 'bilinear' });
    expect(small.trunk.outputs[0]?.shape).toEqual([null, 3, 3, 1280]);
    const values = await features(small, 2);
    expect(values.every(Number.isFinite)).toBe(true);
    expect(Math.max(...values)).toBeGreaterThan(0); // relu features, not all zero

    const full = await loadBase(tf, 'mobilenet_v2', { cacheDir });
    expect(full.preprocessing.inputSize).toBe(224);
    expect(full.trunk.outputs[0]?.shape).toEqual([null, 7, 7, 1280]);
    const [a, b] = [await weightBytes(small), await weightBytes(full)];
    expect(a.size).toBe(260); // 52 conv kernels + 52 BN layers × 4
    expect([...a.keys()]).toEqual([...b.keys()]);
    for (const [name, bytes] of a) expect(bytes.equals(b.get(name) as Buffer), name).toBe(true);
    small.dispose();
    full.dispose();
  });

  it.each([
    ['block_12_add', 96],
    ['block_13_expand_relu', 576],
  ])('cuts at %s with pooling after it (%i features)', async (layer, width) => {
    const base = await loadBase(tf, 'mobilenet_v2', { cacheDir, inputSize: 96, layer });
    expect(base.info.layer).toBe(layer);
    expect(base.info.featureShape).toEqual([width]);
    expect(base.trunk.layers.at(-1)?.name).toBe(layer);
    await features(base, 1);
    base.dispose();
  });

  it('names similar layers when the cut layer does not exist', async () => {
    const error = await loadBase(tf, 'mobilenet_v2', { cacheDir, layer: 'block_13_expand_rel' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RuntimeUserError);
    expect((error as Error).message).toMatch(/no layer named "block_13_expand_rel"; similar: .*block_13_expand_relu/);
  });

  it('rejects an input size the base cannot take', async () => {
    await expect(loadBase(tf, 'mobilenet_v2', { cacheDir, inputSize: 16 })).rejects.toThrow(/input_size 16 does not suit mobilenet_v2/);
    await expect(loadBase(tf, 'mobilenet_v2', { cacheDir, inputSize: 96, includeTop: true })).rejects.toThrow(
      'mobilenet_v2 with include_top needs input_size 224; its classifier cannot take 96',
    );
  });

  it('keeps nsfwjs\'s classifier with include_top at 224 px', async () => {
    const base = await loadBase(tf, 'mobilenet_v2', { cacheDir, includeTop: true });
    expect(base.info).toMatchObject({ layer: 'dense_3', pooling: 'none', featureShape: [5] });
    const probabilities = await features(base, 1);
    expect(probabilities.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    base.dispose();
  });

  it('converts once into model.json + weights.bin in the cache, and redoes a damaged conversion', async () => {
    const dir = nsfwjsCacheDir(cacheDir, 'mobilenet_v2');
    expect(path.relative(cacheDir, dir)).toBe(path.join('zoo', 'mobilenet_v2-nsfwjs-4.4.0'));
    const weights = path.join(dir, 'weights.bin');
    const good = await readFile(weights);
    expect(good.length).toBe(2_619_461); // uint8-quantized, as nsfwjs ships them
    const json = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
    expect(json.weightsManifest[0].paths).toEqual(['weights.bin']);

    const damaged = Buffer.from(good);
    damaged[1000] = (damaged[1000] ?? 0) ^ 0xff;
    await writeFile(weights, damaged);
    const base = await loadBase(tf, 'mobilenet_v2', { cacheDir, inputSize: 96 });
    base.dispose();
    expect((await readFile(weights)).equals(good)).toBe(true);
  });
});

describe('inception_v3 from nsfwjs', () => {
  it('cuts at mixed10 (the last concat) and pools to 2048 features', async () => {
    const base = await loadBase(tf, 'inception_v3', { cacheDir, inputSize: 96 });
    expect(base.info).toMatchObject({ layer: 'mixed10', featureShape: [2048] });
    expect(base.preprocessing).toEqual({ ...BASES.inception_v3.preprocessing, inputSize: 96 });
    expect(base.trunk.outputs[0]?.shape).toEqual([null, 1, 1, 2048]);
    const values = await features(base, 1);
    expect(values.every(Number.isFinite)).toBe(true);
    base.dispose();
  });
});
