import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { failureMessage, type Failure, type Pipeline, type Result, type StageInput } from '@headstart/core';
import { loadForCommand, openPipelineCache, type PipelineFlags } from './load.js';
import { stageOutputDir } from './stage-output.js';

/** A model artifact, and the preprocessed dataset it was trained on when the pipeline says which. */
export interface ModelSource {
  model: string;
  dataset?: string;
}

/**
 * `--model`: a folder holding model.json, else (a bare name, as stage ids are) a stage of the pipeline
 * whose `model` output is meant.
 */
export async function locateModel(ref: string, pipelineFile: string, flags: PipelineFlags): Promise<Result<ModelSource, Failure[]>> {
  if (existsSync(join(ref, 'model.json'))) return { ok: true, value: { model: ref } };
  if (/^\.|[\\/]/.test(ref)) {
    const problem = statSync(ref, { throwIfNoEntry: false })?.isDirectory() ? 'no model.json in this folder' : 'not found';
    return { ok: false, error: [{ reason: 'bad-model-reference', ref, problem }] };
  }
  return locateStageModel(pipelineFile, ref, flags);
}

/** The stage's recorded `model` output, and the output of the nearest preprocess stage upstream of it. */
export async function locateStageModel(pipelineFile: string, stageId: string, flags: PipelineFlags): Promise<Result<ModelSource, Failure[]>> {
  const loaded = await loadForCommand(pipelineFile, flags);
  if (!loaded.ok) return loaded;
  const pipeline = loaded.value;
  const cache = openPipelineCache(pipeline, flags, (message) => console.error(`warning: ${message}`));
  try {
    const model = await stageOutputDir(pipeline, cache, stageId, 'model');
    if (!model.ok) return { ok: false, error: [model.failure] };
    const prep = nearestUpstream(pipeline, stageId, 'preprocess');
    const dataset = prep ? await stageOutputDir(pipeline, cache, prep.stage, prep.output) : undefined;
    // Without the dataset, predict assumes preprocess's defaults and says so: a warning, not a failure.
    if (dataset && !dataset.ok) console.error(`warning: ${failureMessage(dataset.failure)}`);
    return { ok: true, value: { model: model.dir, ...(dataset?.ok ? { dataset: dataset.dir } : {}) } };
  } finally {
    await cache.close();
  }
}

/** The input nearest upstream of `stageId` (breadth first through inputs) that a stage using `step` produced. */
function nearestUpstream(pipeline: Pipeline, stageId: string, step: string): StageInput | undefined {
  const queue = [stageId];
  const seen = new Set(queue);
  for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
    for (const input of Object.values(pipeline.stages.get(id)!.inputs)) {
      if (pipeline.stages.get(input.stage)!.uses === step) return input;
      if (!seen.has(input.stage)) {
        seen.add(input.stage);
        queue.push(input.stage);
      }
    }
  }
  return undefined;
}
