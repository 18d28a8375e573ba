import { predictImages, type ImagePrediction, type PredictSummary } from '@headstart/steps';
import { locateModel } from '../model-source.js';
import { exitWith, type CommandResult } from '../command-result.js';
import type { PipelineFlags } from '../load.js';
import { clearProgressLine, progressLine, runStepCommand } from '../step-command.js';
import { stepSettings } from '../step-settings.js';

interface PredictFlags extends PipelineFlags {
  model: string;
  pipeline: string;
  topK: number;
  json?: boolean;
  batchSize: number;
  tta?: 'flip';
  workers?: number;
  backend?: string;
}

/** `headstart predict --model <stage|folder> IMAGE|FOLDER…`: the top classes of each image. */
export async function predictCommand(paths: string[], flags: PredictFlags): Promise<CommandResult> {
  const located = await locateModel(flags.model, flags.pipeline, flags);
  if (!located.ok) return located;
  return runStepCommand(async (signal) => {
    const progress = progressLine('predicting');
    const summary = await predictImages({
      ...located.value, paths, topK: flags.topK, batchSize: flags.batchSize, ...(flags.tta ? { tta: { flip: true } } : {}), settings: stepSettings(flags), signal, log: logOnTty, ...(progress ? { onProgress: progress } : {}),
    });
    clearProgressLine();
    printPredictions(summary, flags);
    return exitWith(0);
  });
}

function printPredictions({ predictions, decoding, assumed, backend, threads }: PredictSummary, flags: PredictFlags): void {
  console.error(`${predictions.length} images on the ${backend} backend${threads > 1 ? ` (${threads} threads)` : ''}${flags.tta ? ', each averaged with its mirror image (--tta flip)' : ''}`);
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
