import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StepUserError, type ParamInput, type StepContext } from '@headstart/core';

/** The file an `lr` input holds (what lr-find writes); only its `lr` is read. */
export const LR_FILE = 'lr.json';

/**
 * What a training step spreads into its definition: the optional `lr` input (`inputs: { lr: find.lr }`),
 * and for `status` / `--dry-run`, that it sets the `lr` param, scaled by `lr_scale`.
 */
export const LR_INPUT = {
  optionalInputs: ['lr'],
  paramInputs: { lr: { input: 'lr', file: LR_FILE, field: 'lr', scale: 'lr_scale' } satisfies ParamInput },
} as const;

export const LR_SCALE_PARAM = {
  type: 'number',
  exclusiveMinimum: 0,
  default: 1,
  description: 'with the `lr` input wired (an lr-find stage): the learning rate is its suggestion × lr_scale, and `lr` is not set',
} as const;

export interface LrParams {
  lr: number;
  lr_scale: number;
}

/**
 * The context with `params.lr` replaced by the `lr` input's suggestion × `lr_scale` when the stage wires
 * that input; unchanged otherwise. A new object: `ctx.params` is the stage's own and must stay as keyed.
 */
export async function withInputLearningRate<P extends LrParams>(ctx: StepContext<P>): Promise<StepContext<P>> {
  const dir = ctx.inputs['lr'];
  if (dir === undefined) return ctx;
  const suggested = await readSuggestedLr(dir);
  const lr = suggested * ctx.params.lr_scale;
  ctx.log.info(`lr ${lr} = input lr ${suggested} (${LR_FILE}) × lr_scale ${ctx.params.lr_scale}`);
  return { ...ctx, params: { ...ctx.params, lr } };
}

/** The `lr` number of the input's lr.json; a missing, unparsable or non-positive one is the user's to fix. */
export async function readSuggestedLr(dir: string): Promise<number> {
  const where = `${LR_FILE} of input "lr"`;
  let text: string;
  try {
    text = await readFile(join(dir, LR_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new StepUserError(`input "lr" has no ${LR_FILE}: wire an lr-find stage's lr, or a folder with ${LR_FILE} holding { "lr": number }`);
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new StepUserError(`${where} is not valid JSON: ${(error as Error).message.replace(/\s+/g, ' ')}`);
  }
  const lr = parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>)['lr'] : undefined;
  if (typeof lr !== 'number' || !Number.isFinite(lr) || lr <= 0) throw new StepUserError(`${where}: "lr" must be a number > 0, found ${JSON.stringify(lr) ?? 'nothing'}`);
  return lr;
}
