import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StepUserError, type StepContext } from '@headstart/core';
import { builtinSteps } from '../../src/index.js';
import { readSuggestedLr, withInputLearningRate, type LrParams } from '../../src/ml/lr-input.js';

function lrDir(text?: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'lr-input-'));
  if (text !== undefined) writeFileSync(join(dir, 'lr.json'), text);
  return dir;
}

function context(params: LrParams, inputs: Record<string, string>, logged: string[] = []): StepContext<LrParams> {
  return { params, inputs, log: { info: (line: string) => logged.push(line), warn: () => {} } } as unknown as StepContext<LrParams>;
}

describe('the lr input', () => {
  it('sets lr to the suggestion × lr_scale, in a new context, and logs the value used', async () => {
    const params = { lr: 0.1, lr_scale: 0.25 };
    const logged: string[] = [];
    const ctx = await withInputLearningRate(context(params, { lr: lrDir('{ "lr": 0.004, "curve": [] }') }, logged));
    expect(ctx.params).toEqual({ lr: 0.001, lr_scale: 0.25 });
    expect(params.lr).toBe(0.1);
    expect(logged).toEqual(['lr 0.001 = input lr 0.004 (lr.json) × lr_scale 0.25']);
  });

  it('leaves the context as it is when the stage does not wire it', async () => {
    const ctx = context({ lr: 0.1, lr_scale: 1 }, {});
    expect(await withInputLearningRate(ctx)).toBe(ctx);
  });

  it('a missing, unparsable or non-positive lr.json is a one-line user error naming the file', async () => {
    const problems = [
      [undefined, 'input "lr" has no lr.json: wire an lr-find stage\'s lr, or a folder with lr.json holding { "lr": number }'],
      ['{ "lr": 0.1,\n', /^lr\.json of input "lr" is not valid JSON: [^\n]+$/],
      ['{ "lr": -1 }', 'lr.json of input "lr": "lr" must be a number > 0, found -1'],
      ['{ "suggestion": 0.1 }', 'lr.json of input "lr": "lr" must be a number > 0, found nothing'],
      ['[0.1]', 'lr.json of input "lr": "lr" must be a number > 0, found nothing'],
    ] as const;
    for (const [text, message] of problems) {
      const error = await readSuggestedLr(lrDir(text)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StepUserError);
      expect((error as Error).message).toMatch(message);
    }
  });

  it('train-head, train and fine-tune take it, with lr_scale (default 1)', async () => {
    for (const name of ['train-head', 'train', 'fine-tune']) {
      const step = await builtinSteps.steps.get(name)!.load();
      expect(step.optionalInputs).toEqual(['lr']);
      expect(step.paramInputs).toEqual({ lr: { input: 'lr', file: 'lr.json', field: 'lr', scale: 'lr_scale' } });
      expect((step.params['properties'] as Record<string, { default?: unknown }>)['lr_scale']).toMatchObject({ default: 1, exclusiveMinimum: 0 });
    }
  });
});
