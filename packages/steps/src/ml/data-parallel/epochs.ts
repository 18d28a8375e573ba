import type * as Tfjs from '@tensorflow/tfjs';
import type { Tf } from '../../runtime/backend.js';
import { fitEpochs, type EpochTrainer, type TensorSplit } from '../training.js';
import { planTraining, type PlanInput } from './plan.js';
import { DataParallelTrainer } from './trainer.js';

export interface EpochTrainerOptions extends Omit<PlanInput, 'samples'> {
  /** Per class (tfjs `fit`'s classWeight): the weight of a row's training loss. */
  classWeight?: Record<number, number> | undefined;
  log?(line: string): void;
}

/**
 * The epoch trainer `planTraining` picks for `model`: batches in slices shared between threads, or
 * tfjs's `fit` on this thread; it logs why one thread where the split had work for more. Threads
 * that cannot start (a layer only this thread knows, say) leave the slices to this thread.
 */
export async function startEpochTrainer(tf: Tf, model: Tfjs.LayersModel, splits: { train: TensorSplit; val?: TensorSplit | undefined }, o: EpochTrainerOptions): Promise<EpochTrainer> {
  const plan = planTraining(tf, model, { ...o, samples: splits.train.count });
  if (plan.oneThreadBecause) o.log?.(`training on one thread: ${plan.oneThreadBecause}`);
  if (!plan.sliced) return fitEpochs(tf, model, splits, o);
  const trainer = await startSlicedTrainer(tf, model, splits, { threads: plan.threads, batchSize: o.batchSize, classWeights: classWeightList(o.classWeight), log: o.log });
  return slicedEpochs(trainer, splits, o.batchSize);
}

/**
 * `DataParallelTrainer.start` on `o.threads` threads, or on this thread alone when the threads cannot
 * start (a layer only this thread knows, say); logs which, as every training step words it.
 */
export async function startSlicedTrainer(
  tf: Tf,
  model: Tfjs.LayersModel,
  splits: { train: TensorSplit; val?: TensorSplit | undefined },
  o: { threads: number; batchSize: number; classWeights?: readonly number[] | undefined; log?: ((line: string) => void) | undefined },
): Promise<DataParallelTrainer> {
  let trainer: DataParallelTrainer;
  try {
    trainer = await DataParallelTrainer.start(tf, model, splits, o.threads, o.batchSize, o.classWeights);
  } catch (error) {
    const reason = (error instanceof Error ? error.message : String(error)).split('\n')[0];
    o.log?.(`training on one thread: the training threads could not start (${reason})`);
    trainer = await DataParallelTrainer.start(tf, model, splits, 1, o.batchSize, o.classWeights);
  }
  if (trainer.threads > 1) o.log?.(`training on ${trainer.threads} threads, each batch shared between them`);
  return trainer;
}

/** `fit`'s classWeight map as a list by class (a class it leaves out weighs 0). */
function classWeightList(classWeight: Record<number, number> | undefined): number[] | undefined {
  if (!classWeight) return undefined;
  const classes = Math.max(...Object.keys(classWeight).map(Number)) + 1;
  return Array.from({ length: classes }, (_, label) => classWeight[label] ?? 0);
}

/** Epochs as `fitEpochs` trains them (same order, batches, loss and accuracy), each batch in slices shared between threads. */
function slicedEpochs(trainer: DataParallelTrainer, splits: { train: TensorSplit; val?: TensorSplit | undefined }, batchSize: number): EpochTrainer {
  return {
    trainCount: splits.train.count,
    batchSize,
    async trainEpoch(order, signal, beforeBatch) {
      let [loss, correct] = [0, 0];
      for (let start = 0; start < order.length; start += batchSize) {
        signal.throwIfAborted();
        beforeBatch(start / batchSize);
        const rows = order.subarray(start, start + batchSize);
        const batch = await trainer.trainBatch(rows);
        loss += batch.loss * rows.length;
        correct += batch.correct;
      }
      return { loss: loss / splits.train.count, accuracy: correct / splits.train.count };
    },
    async validate() {
      if (!splits.val) return undefined;
      const validation = await trainer.evaluate(batchSize);
      return { val_loss: validation.loss, val_accuracy: validation.accuracy };
    },
    close: () => trainer.close(),
  };
}
