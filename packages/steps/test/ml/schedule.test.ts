import { describe, expect, it } from 'vitest';
import { StepUserError } from '@headstart/core';
import { CONSTANT, checkSchedule, learningRateAt, learningRateOf, plateauAfterEpoch, setLearningRate, startPlateau, type Schedule } from '../../src/ml/schedule.js';
import { loadBackend } from '../../src/runtime/index.js';

const { tf } = await loadBackend('wasm');

/** Every batch's lr over `epochs` epochs of `batches` batches. */
function rates(schedule: Partial<Schedule>, epochs: number, batches: number, lr = 1): number[] {
  const s = { ...CONSTANT, ...schedule };
  return Array.from({ length: epochs * batches }, (_, i) => learningRateAt(lr, s, { epoch: Math.floor(i / batches) + 1, batch: i % batches, batchesPerEpoch: batches, epochs }));
}

describe('learningRateAt', () => {
  it('constant: the lr on every batch', () => {
    expect(rates({}, 2, 3, 0.001)).toEqual([0.001, 0.001, 0.001, 0.001, 0.001, 0.001]);
  });

  it('warmup: linear per batch up to the lr, then the schedule', () => {
    expect(rates({ warmup_epochs: 1 }, 2, 4)).toEqual([0.25, 0.5, 0.75, 1, 1, 1, 1, 1]);
    expect(rates({ warmup_epochs: 0.5 }, 1, 4)).toEqual([0.5, 1, 1, 1]);
  });

  it('cosine: from the lr to min_lr over the batches after warmup, the last one at min_lr', () => {
    const values = rates({ type: 'cosine', min_lr: 0.1, warmup_epochs: 1 }, 3, 2);
    expect(values.slice(0, 2)).toEqual([0.5, 1]);
    [1, 0.1 + 0.9 * 0.75, 0.1 + 0.9 * 0.25, 0.1].forEach((expected, i) => expect(values[2 + i]).toBeCloseTo(expected, 12));
  });

  it('one_cycle: cosine up from lr/25 over pct_start of the batches, then cosine down to min_lr (PyTorch OneCycleLR)', () => {
    const values = rates({ type: 'one_cycle', pct_start: 0.25 }, 2, 4); // 8 batches: the peak at batch 1
    [0.04, 1, 0.9330127018922193, 0.75, 0.5, 0.25, 0.0669872981077807, 0].forEach((expected, i) => expect(values[i]).toBeCloseTo(expected, 12));
  });

  it('warmup rises to the schedule\'s first value: lr/25 for one_cycle', () => {
    const values = rates({ type: 'one_cycle', warmup_epochs: 1, pct_start: 0.5 }, 3, 2); // the rise after warmup ends on its second batch
    [0.02, 0.04, 0.04, 1].forEach((expected, i) => expect(values[i]).toBeCloseTo(expected, 12));
  });

  it('cosine and one_cycle with one batch or none after warmup: the lr, never NaN or min_lr', () => {
    expect(rates({ type: 'one_cycle', min_lr: 0.1 }, 1, 1)).toEqual([1]);
    expect(rates({ type: 'one_cycle', warmup_epochs: 1 }, 1, 2)).toEqual([0.5, 1]);
    expect(rates({ type: 'cosine', warmup_epochs: 1 }, 1, 2)).toEqual([0.5, 1]);
    expect(rates({ type: 'one_cycle', warmup_epochs: 0.5 }, 1, 2)).toEqual([1, 1]);
  });

  it('step: × factor every step_epochs epochs, no lower than min_lr', () => {
    expect(rates({ type: 'step', factor: 0.5, step_epochs: 2 }, 5, 1)).toEqual([1, 1, 0.5, 0.5, 0.25]);
    expect(rates({ type: 'step', factor: 0.1, step_epochs: 1, min_lr: 0.05 }, 3, 1)).toEqual([1, 0.1, 0.05]);
  });
});

describe('checkSchedule', () => {
  it('refuses warmup_epochs ≥ epochs for cosine and one_cycle, in one line a user can act on', () => {
    for (const type of ['cosine', 'one_cycle'] as const) {
      expect(() => checkSchedule({ type, warmup_epochs: 3 }, 3), type).toThrow(StepUserError);
      expect(() => checkSchedule({ type, warmup_epochs: 3.5 }, 3), type).toThrow(`schedule: warmup_epochs (3.5) must be below epochs (3): ${type} runs over the batches after warmup`);
      expect(() => checkSchedule({ type, warmup_epochs: 2.5 }, 3), type).not.toThrow();
    }
  });

  it('lets the others warm up for all their epochs', () => {
    for (const type of ['constant', 'step', 'plateau'] as const) expect(() => checkSchedule({ type, warmup_epochs: 3 }, 3), type).not.toThrow();
    expect(() => checkSchedule(undefined, 1)).not.toThrow();
  });
});

describe('plateauAfterEpoch', () => {
  const plateau: Schedule = { ...CONSTANT, type: 'plateau', factor: 0.5, patience: 2, min_lr: 0.3 };

  it('multiplies the lr by factor after `patience` epochs without an improvement above 1e-4, down to min_lr (Keras ReduceLROnPlateau)', () => {
    const scores = [-1.0, -0.9, -0.89995, -0.95, -0.8, -0.85, -0.85, -0.9, -0.9];
    const lrs: number[] = [];
    scores.reduce((state, score) => {
      const next = plateauAfterEpoch(state, score, plateau);
      lrs.push(next.lr);
      return next;
    }, startPlateau(1));
    expect(lrs).toEqual([1, 1, 1, 0.5, 0.5, 0.5, 0.3, 0.3, 0.3]);
  });

  it('leaves the state alone for other schedules', () => {
    const state = startPlateau(1);
    expect(plateauAfterEpoch(state, -1, { ...plateau, type: 'cosine' })).toBe(state);
  });
});

describe('setLearningRate', () => {
  it.each([
    ['adam', () => tf.train.adam(1)],
    ['sgd with momentum (which keeps −lr as a tensor)', () => tf.train.momentum(1, 0)],
    ['rmsprop', () => tf.train.rmsprop(1)],
  ])('%s: the next step uses the new lr', (_name, makeOptimizer) => {
    const [before, after] = [makeOptimizer(), makeOptimizer()];
    setLearningRate(after, 0.25);
    expect(learningRateOf(after)).toBe(0.25);
    const step = (optimizer: ReturnType<typeof makeOptimizer>) => {
      const variable = tf.variable(tf.scalar(0), true);
      optimizer.applyGradients([{ name: variable.name, tensor: tf.scalar(1) }]);
      const moved = variable.dataSync()[0]!;
      variable.dispose();
      return moved;
    };
    expect(step(after) / step(before)).toBeCloseTo(0.25, 6);
  });
});
