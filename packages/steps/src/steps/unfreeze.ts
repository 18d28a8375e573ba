import type * as Tfjs from '@tensorflow/tfjs';
import { StepUserError, defineStep, didYouMean } from '@headstart/core';
import { loadModelArtifact, saveModelArtifact } from '../ml/model-artifact.js';
import { computeLayers } from '../ml/model-graph.js';
import { backendSetting, loadBackend } from '../runtime/backend.js';

interface Params {
  from_layer?: string;
  last?: number;
  fraction?: number;
}

export default defineStep<Params>({
  name: 'unfreeze',
  version: '1',
  description: 'Makes the top of the base trainable (BatchNormalization layers stay in inference mode when fine-tuned)',
  params: {
    type: 'object',
    additionalProperties: false,
    properties: {
      from_layer: { type: 'string', description: 'this base layer and every one after it train' },
      last: { type: 'integer', minimum: 1, description: 'the last N layers of the base train' },
      fraction: { type: 'number', exclusiveMinimum: 0, maximum: 1, description: 'the top fraction of the base\'s layers train' },
    },
    oneOf: [{ required: ['from_layer'] }, { required: ['last'] }, { required: ['fraction'] }],
  },
  inputs: ['model'],
  outputs: ['model'],
  async run(ctx) {
    const { tf, backend } = await loadBackend(backendSetting(ctx.settings.backend), { log: (line) => ctx.log.info(line) });
    const { model, metadata } = await loadModelArtifact(tf, ctx.inputs['model']!);
    try {
      const baseLayers = computeLayers(model).filter((layer) => !metadata.headLayers.includes(layer.name));
      const start = firstUnfrozen(baseLayers, ctx.params);
      baseLayers.forEach((layer, i) => (layer.trainable = i >= start));
      for (const layer of computeLayers(model)) if (metadata.headLayers.includes(layer.name)) layer.trainable = true;
      for (const line of trainableTable(model)) ctx.log.info(line);
      await saveModelArtifact(model, ctx.outputs['model']!, metadata);
      const trainable = countParams(model.trainableWeights);
      return { info: { backend, first_unfrozen: baseLayers[start]?.name ?? 'none' }, metrics: { trainable_params: trainable } };
    } finally {
      model.dispose();
    }
  },
  /** The trainable parameter count `run` returned, from the model it saved. */
  async summarize(ctx) {
    const { tf } = await loadBackend(undefined);
    const { model } = await loadModelArtifact(tf, ctx.outputs['model']!);
    try {
      return { metrics: { trainable_params: countParams(model.trainableWeights) } };
    } finally {
      model.dispose();
    }
  },
});

function firstUnfrozen(baseLayers: Tfjs.layers.Layer[], params: Params): number {
  if (params.from_layer !== undefined) {
    const index = baseLayers.findIndex((layer) => layer.name === params.from_layer);
    if (index < 0) throw new StepUserError(`the base has no layer "${params.from_layer}"${didYouMean(params.from_layer, baseLayers.map((l) => l.name))}`);
    return index;
  }
  if (params.last !== undefined) return Math.max(0, baseLayers.length - params.last);
  return Math.round(baseLayers.length * (1 - params.fraction!));
}

/** Trainable parameters per block (`block_13`, `Conv_1`, the head), then the total. */
function trainableTable(model: Tfjs.LayersModel): string[] {
  const blocks = new Map<string, { trainable: number; total: number }>();
  for (const layer of computeLayers(model)) {
    const block = /^(block_\d+|mixed\d+|head)/.exec(layer.name)?.[1] ?? layer.name;
    const entry = blocks.get(block) ?? { trainable: 0, total: 0 };
    const params = layer.countParams();
    entry.total += params;
    if (layer.trainable) entry.trainable += params;
    blocks.set(block, entry);
  }
  const rows = [...blocks].filter(([, e]) => e.trainable > 0).map(([block, e]) => `  ${block.padEnd(20)} ${String(e.trainable).padStart(10)} of ${e.total}`);
  const trainable = countParams(model.trainableWeights);
  const total = trainable + countParams(model.nonTrainableWeights);
  return ['trainable parameters by block:', ...rows, `  ${'total'.padEnd(20)} ${String(trainable).padStart(10)} of ${total}`];
}

function countParams(weights: Tfjs.LayerVariable[]): number {
  return weights.reduce((sum, w) => sum + w.shape.reduce<number>((a, b) => a * (b ?? 1), 1), 0);
}
