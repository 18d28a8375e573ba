import { describe, expect, it } from 'vitest';
import { appendGlobalAveragePooling, cutAt, inputShape, layerNames, nsfwjsModelFiles, outputLayerName, setInputSize } from '../../src/runtime/index.js';
import { tempDir } from './helpers.js';

const { json } = await nsfwjsModelFiles('mobilenet_v2', await tempDir());
const topology = json.modelTopology;

describe('topology edits before loading', () => {
  it('cuts at a layer keeping only what it depends on, without touching the original', () => {
    const names = layerNames(topology);
    expect(names).toHaveLength(162);
    const cut = cutAt(topology, 'block_12_add');
    const kept = layerNames(cut);
    expect(kept.at(-1)).toBe('block_12_add');
    expect(kept).toContain('block_11_add'); // the residual branch
    expect(kept).not.toContain('block_13_expand');
    expect(kept).not.toContain('dense_3');
    expect(kept.every((n) => names.includes(n))).toBe(true);
    expect(outputLayerName(cut)).toBe('block_12_add');
    expect(layerNames(topology)).toHaveLength(162);
    expect(outputLayerName(topology)).toBe('dense_3');
  });

  it('sets the input size on the InputLayer and keeps the channels', () => {
    expect(inputShape(topology)).toEqual([224, 224, 3]);
    expect(inputShape(setInputSize(topology, 96))).toEqual([96, 96, 3]);
    expect(inputShape(topology)).toEqual([224, 224, 3]);
  });

  it('appends global average pooling after the output', () => {
    const pooled = appendGlobalAveragePooling(cutAt(topology, 'out_relu'));
    expect(outputLayerName(pooled)).toBe('avg_pool');
    expect(layerNames(pooled).slice(-2)).toEqual(['out_relu', 'avg_pool']);
  });
});
