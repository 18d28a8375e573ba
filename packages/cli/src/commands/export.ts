import { displayPath } from '@headstart/core';
import { exportModel } from '@headstart/steps';
import { exitWith, type CommandResult } from '../command-result.js';
import { locateStageModel } from '../model-source.js';
import type { PipelineFlags } from '../load.js';
import { stepSettings } from '../step-settings.js';

interface ExportFlags extends PipelineFlags {
  stage: string;
  out: string;
}

/** `headstart export --stage S --out DIR [pipeline]`: a stage's model for plain TensorFlow.js (the browser). */
export async function exportCommand(file: string, flags: ExportFlags): Promise<CommandResult> {
  const located = await locateStageModel(file, flags.stage, flags);
  if (!located.ok) return located;
  const exported = await exportModel({ ...located.value, out: flags.out, settings: stepSettings({}), log: logOnTty });
  if (exported.assumed) console.error(`warning: stage "${flags.stage}" has no preprocess stage upstream in the cache; preprocessing.json assumes preprocess's defaults`);
  const { image } = exported.preprocessing;
  console.log(`${displayPath(exported.out, process.cwd())}: model.json, weights.bin, labels.json (${exported.classes.length} classes), preprocessing.json (${image.size}×${image.size}, fit ${image.fit}), README.md`);
  return exitWith(0);
}

/** Which backend runs is worth a line on a terminal; piped output stays quiet. */
function logOnTty(line: string): void {
  if (process.stderr.isTTY) console.error(line);
}
