import { describe, expect, it } from 'vitest';
import { KEY_VERSION, canonicalJson, stageKey, type Sha256Hex, type StageKeyDocument } from '../src/index.js';

const document: StageKeyDocument = {
  keyVersion: KEY_VERSION,
  step: { name: 'train-head', source: 'builtin', package: '@headstart/steps', packageVersion: '0.1.0', version: '1', code: '0.1.0+1' },
  params: { epochs: 20, lr: 0.001, layers: [{ dense: 128, activation: 'relu' }] },
  inputs: { features: 'a'.repeat(64) as Sha256Hex },
  deps: {},
  seed: 42,
};

describe('cache key', () => {
  // Reproducible outside JS: python3 -c 'json.dumps(doc, sort_keys=True, separators=(",",":"))' then sha256.
  it('is pinned: a change to key composition would silently invalidate every user cache', () => {
    expect(stageKey(document)).toBe('c1226b6c908d480ae1c40ccba24dff165374a2f3e35596768e9b010ba7cddf7c');
  });

  it('does not depend on key order', () => {
    const reordered = JSON.parse(JSON.stringify({ seed: 42, deps: {}, inputs: document.inputs, params: { lr: 0.001, layers: (document.params as { layers: unknown }).layers, epochs: 20 }, step: document.step, keyVersion: 1 }));
    expect(stageKey(reordered)).toBe(stageKey(document));
  });

  it('changes with every field that can change the outputs', () => {
    const base = stageKey(document);
    const variants: StageKeyDocument[] = [
      { ...document, params: { ...(document.params as object), lr: 0.01 } },
      { ...document, inputs: { features: 'b'.repeat(64) as Sha256Hex } },
      { ...document, step: { ...document.step, version: '2', code: '0.1.0+2' } },
      { ...document, deps: { 'data/x': 'c'.repeat(64) as Sha256Hex } },
      { ...document, seed: 1 },
    ];
    for (const variant of variants) expect(stageKey(variant)).not.toBe(base);
  });

  it('canonical JSON sorts keys at every level and drops undefined', () => {
    expect(canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: undefined } })).toBe('{"a":{"d":[{"y":2,"z":1}]},"b":1}');
  });
});
