import { StepUserError } from '@headstart/core';
import { predictImages, type ImagePrediction, type PredictSummary } from '@headstart/steps';
import { locateModel } from '../model-source.js';
import type { PipelineFlags } from '../load.js';

interface PredictFlags extends PipelineFlags {
  model: string;
  pipeline: string;
  topK: number;
  json?: boolean;
  batchSize: number;
  workers?: number;
  backend?: string;
}

/** `headstart predict --model <stage|folder> IMAGE|FOLDER…`: the top classes of each image. */
export async function predictCommand(paths: string[], flags: PredictFlags): Promise<number> {
  if (flags.backend) process.env['HEADSTART_BACKEND'] = flags.backend;
  if (flags.workers) process.env['HEADSTART_WORKERS'] = String(flags.workers);
  const located = await locateModel(flags.model, flags.pipeline, flags);
  if (!located.ok) return located.exitCode;
  const controller = new AbortController();
  const interrupt = () => controller.abort();
  process.once('SIGINT', interrupt);
  try {
    const summary = await predictImages({
      ...located.source, paths, topK: flags.topK, batchSize: flags.batchSize, signal: controller.signal,
      log: logOnTty,
      ...(process.stderr.isTTY ? { onProgress: (done: number, total: number) => process.stderr.write(`\rpredicting ${done}/${total} images`) } : {}),
    });
    if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
    printPredictions(summary, flags);
    return 0;
  } catch (error) {
    if (controller.signal.aborted) return 130;
    if (!(error instanceof StepUserError)) throw error;
    console.error(error.message);
    return 2;
  } finally {
    process.off('SIGINT', interrupt);
  }
}

function printPredictions({ predictions, decoding, assumed, backend, workers }: PredictSummary, flags: PredictFlags): void {
  console.error(`${predictions.length} images on the ${backend} backend${workers > 1 ? ` (${workers} worker threads)` : ''}`);
  if (assumed) console.error(`warning: ${flags.model}: no record of how its training images were resized; assumed preprocess's defaults (${decoding.size}×${decoding.size}, fit ${decoding.fit}, background ${decoding.background})`);
  if (flags.json) process.stdout.write(`${JSON.stringify(predictions, null, 2)}\n`);
  else for (const prediction of predictions) console.log(predictionLine(prediction));
}

/** `path  class (0.93)  class2 (0.05)` */
function predictionLine(prediction: ImagePrediction): string {
  return [prediction.path, ...prediction.top.map((score) => `${score.class} (${score.probability.toFixed(2)})`)].join('  ');
}

/** Which backend runs is worth a line on a terminal; piped output stays quiet. */
function logOnTty(line: string): void {
  if (process.stderr.isTTY) console.error(line);
}
