import type { BackendName } from '../../runtime/backend.js';

/*
 * What the main thread and a replica thread of data-parallel training (trainer.ts, replica-thread.ts)
 * send each other, and the shared memory they both read and write: the trainable weights, one after
 * another in `model.trainableWeights` order, and per replica thread a block of that size per slice
 * it computes, its gradients in the same order.
 */

/** A split in shared memory: every thread reads the rows it needs without a copy of the whole split. */
export interface SharedSplit {
  x: Float32Array;
  y: Float32Array;
  count: number;
}

/** What a thread needs to hold a replica of the model being trained (its `workerData`). */
export interface ReplicaSetup {
  backend: BackendName;
  /** `model.toJSON()`: layers, their wiring and which are trainable. */
  topology: object;
  loss: string;
  metrics: string[];
  /** The loss's label smoothing (slices.ts `smoothLabels`). */
  labelSmoothing: number;
  /** Per class: the weight of a row's training loss. */
  classWeights?: number[];
  /** Every weight of the model (`model.weights` order), copied once. */
  weights: { shape: number[]; values: Float32Array }[];
  /** Shared: the trainable weights as the main thread last published them. */
  trainable: Float32Array;
  /** Shared: where this thread writes the gradients of its slices, block `gradientBlock(i, …)` for its i-th. */
  grads: Float32Array;
  train: SharedSplit;
  val?: SharedSplit;
}

/**
 * `weights`: the version of `trainable` to compute with (the thread reloads it when it changed).
 * A step computes slices [first, end) of the batch `rows`; an evaluation, chunks [first, end) of
 * `chunkRows` rows of the validation split.
 */
export type StepRequest = { kind: 'step'; weights: number; rows: Int32Array; first: number; end: number };
export type EvaluateRequest = { kind: 'evaluate'; weights: number; first: number; end: number; chunkRows: number };
export type ReplicaRequest = StepRequest | EvaluateRequest;

/** The reply: per slice or chunk, in order, its loss sum and its correct predictions. */
export type Sums = { loss: number[]; correct: number[] };

/** Where a thread's `block`-th slice's gradients start in its `grads`. */
export function gradientBlock(block: number, trainableSize: number): number {
  return block * trainableSize;
}

export function sharedFloats(length: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(length * Float32Array.BYTES_PER_ELEMENT));
}
