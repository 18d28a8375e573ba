import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineStep, type StepRegistry } from '../src/index.js';

/** A registry with small steps that need no ML: enough to exercise the engine. */
export const testRegistry: StepRegistry = {
  packageName: '@headstart/test-steps',
  packageVersion: '1.0.0',
  steps: new Map([
    ['echo', { load: async () => echoStep }],
    ['train', { load: async () => trainStep }],
  ]),
};

export const echoStep = defineStep<{ text: string; times: number }>({
  name: 'echo',
  version: '1',
  params: {
    type: 'object',
    additionalProperties: false,
    required: ['text'],
    properties: { text: { type: 'string' }, times: { type: 'integer', minimum: 1, default: 1 } },
  },
  outputs: ['out'],
  async run(ctx) {
    writeFileSync(join(ctx.outputs['out']!, 'text.txt'), ctx.params.text.repeat(ctx.params.times));
  },
});

export const trainStep = defineStep<{ epochs: number; lr: number; layers: unknown[] }>({
  name: 'train',
  version: '2',
  params: {
    type: 'object',
    additionalProperties: false,
    properties: {
      epochs: { type: 'integer', default: 10 },
      lr: { type: 'number', default: 0.001 },
      layers: { type: 'array', default: [] },
    },
  },
  inputs: ['data'],
  outputs: ['model', 'metrics'],
  async run() {},
});

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'headstart-core-'));
}

export function writePipeline(text: string, name = 'headstart.yaml'): string {
  const dir = tempDir();
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}
