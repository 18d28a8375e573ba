import type * as Tfjs from '@tensorflow/tfjs';
import { StepUserError } from '@headstart/core';
import { computeLayers } from './model-graph.js';

/*
 * Discriminative learning rates (fastai, ULMFiT; timm's layer_decay): a multiplier of the lr per
 * trainable variable, which fused-adam.ts applies inside Adam's update.
 */

export type LrMult = { from_layer: string; mult: number }[];

export interface LayerRateParams {
  layer_decay: number | null;
  lr_mult: LrMult | null;
}

export const LAYER_RATE_PARAMS = {
  layer_decay: {
    oneOf: [{ type: 'null' }, { type: 'number', exclusiveMinimum: 0, maximum: 1 }],
    default: null,
    description: 'lr multiplier per block from the top of the trainable layers: the head ×1, the topmost trainable block of the base ×decay, the next ×decay², … A block is MobileNetV2\'s block_N_ (or expanded_conv_) layers; in other models each layer with weights, a BatchNormalization joining the layer below it. Adam only',
  },
  lr_mult: {
    oneOf: [
      { type: 'null' },
      {
        type: 'array',
        minItems: 1,
        items: { type: 'object', additionalProperties: false, required: ['from_layer', 'mult'], properties: { from_layer: { type: 'string', minLength: 1 }, mult: { type: 'number', exclusiveMinimum: 0 } } },
      },
    ],
    default: null,
    description: 'lr multipliers by layer: the layers from from_layer upward, up to the next entry\'s from_layer, get mult (layers below the lowest entry ×1). Adam only',
  },
} as const;

/** A group of layers sharing a multiplier, as the log shows it. */
export interface RateGroup {
  name: string;
  mult: number;
  layers: Tfjs.layers.Layer[];
}

/**
 * The multiplier of each trainable variable of `model` (by variable name), or undefined when neither
 * parameter is set; `headLayers` names the head (block 0 of layer_decay).
 */
export function layerRates(model: Tfjs.LayersModel, p: LayerRateParams & { optimizer: string }, headLayers: readonly string[]): RateGroup[] | undefined {
  if (p.layer_decay !== null && p.lr_mult !== null) throw new StepUserError('give layer_decay or lr_mult, not both');
  if ((p.layer_decay !== null || p.lr_mult !== null) && p.optimizer !== 'adam') throw new StepUserError(`layer_decay and lr_mult need optimizer: adam, not ${p.optimizer}`);
  if (p.layer_decay !== null) return decayedBlocks(model, p.layer_decay, headLayers);
  if (p.lr_mult !== null) return multipliedRuns(model, p.lr_mult);
  return undefined;
}

/** Variable name → multiplier, for setLearningRateMultipliers. */
export function variableMultipliers(groups: RateGroup[]): Map<string, number> {
  const byName = new Map<string, number>();
  for (const group of groups) {
    for (const layer of group.layers) for (const weight of layer.trainableWeights) byName.set((weight.read() as Tfjs.Variable).name, group.mult);
  }
  return byName;
}

export function describeRates(groups: RateGroup[]): string {
  return `lr multipliers: ${groups.map((group) => `${group.name} ×${Number(group.mult.toPrecision(3))}`).join(', ')}`;
}

function trainableLayers(model: Tfjs.LayersModel): Tfjs.layers.Layer[] {
  return computeLayers(model).filter((layer) => layer.trainable && layer.trainableWeights.length > 0);
}

/** layer_decay: the head, then the base's blocks from the top, × decay^block. */
function decayedBlocks(model: Tfjs.LayersModel, decay: number, headLayers: readonly string[]): RateGroup[] {
  const layers = trainableLayers(model);
  const head = layers.filter((layer) => headLayers.includes(layer.name));
  const blocks: RateGroup[] = [];
  for (const layer of layers.filter((l) => !headLayers.includes(l.name))) {
    const key = blockKey(layer) ?? (layer.getClassName() === 'BatchNormalization' && blocks.length > 0 ? blocks[blocks.length - 1]!.name : layer.name);
    const last = blocks[blocks.length - 1];
    if (last?.name === key) last.layers.push(layer);
    else blocks.push({ name: key, mult: 1, layers: [layer] });
  }
  const fromTop = blocks.reverse().map((block, i) => ({ ...block, mult: decay ** (i + 1) }));
  return [...(head.length > 0 ? [{ name: 'head', mult: 1, layers: head }] : []), ...fromTop];
}

/** MobileNetV2's block of a layer: `block_13` for block_13_expand, `expanded_conv` for its first block. */
function blockKey(layer: Tfjs.layers.Layer): string | undefined {
  return /^(block_\d+|expanded_conv)_/.exec(layer.name)?.[1];
}

/** lr_mult: runs of layers from each entry's from_layer up to the next entry's. */
function multipliedRuns(model: Tfjs.LayersModel, entries: LrMult): RateGroup[] {
  const layers = computeLayers(model);
  const starts = entries
    .map((entry) => {
      const index = layers.findIndex((layer) => layer.name === entry.from_layer);
      if (index < 0) throw new StepUserError(`lr_mult: the model has no layer "${entry.from_layer}" at or above its first trainable layer (${trainableLayers(model)[0]?.name ?? 'none'})`);
      return { ...entry, index };
    })
    .sort((a, b) => a.index - b.index);
  const trainable = new Set(trainableLayers(model));
  const groups: RateGroup[] = [{ name: 'below the first entry', mult: 1, layers: [] }, ...starts.map((start) => ({ name: `from ${start.from_layer}`, mult: start.mult, layers: [] as Tfjs.layers.Layer[] }))];
  layers.forEach((layer, index) => {
    const run = starts.filter((start) => start.index <= index).length;
    if (trainable.has(layer)) groups[run]!.layers.push(layer);
  });
  return groups.filter((group) => group.layers.length > 0);
}
