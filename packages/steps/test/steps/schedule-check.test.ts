import path from 'node:path';
import { StepUserError } from '@headstart/core';
import { describe, expect, it } from 'vitest';
import fineTune from '../../src/steps/fine-tune.js';
import trainHead from '../../src/steps/train-head.js';
import train from '../../src/steps/train.js';
import { runStep, tempDir } from '../data/fixtures.js';

describe('a schedule with no batches after warmup', () => {
  it('is refused by every training step before it loads anything (its inputs here do not even exist)', async () => {
    const workdir = await tempDir('headstart-schedule-check-');
    const missing = path.join(workdir, 'missing');
    const inputs = { features: missing, model: missing, dataset: missing };
    const schedule = { type: 'one_cycle', warmup_epochs: 2 };
    for (const step of [trainHead, train, fineTune] as const) {
      const run = runStep(step as typeof trainHead, { epochs: 2, schedule }, { workdir, inputs });
      const error = await run.catch((e: unknown) => e);
      expect(error, step.name).toBeInstanceOf(StepUserError);
      expect((error as Error).message).toBe('schedule: warmup_epochs (2) must be below epochs (2): one_cycle runs over the batches after warmup');
    }
  });
});
