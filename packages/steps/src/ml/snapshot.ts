import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type * as Tfjs from '@tensorflow/tfjs';
import type { StepLogger } from '@headstart/core';
import type { Tf } from '../runtime/backend.js';

/*
 * Epoch snapshots of a training loop (training.ts), so that a stage killed mid-training resumes at the
 * next epoch with the same bits it would have had: every weight of the model, the optimizer's state,
 * the best epoch's weights and the loop's own state (JSON). One file per epoch in the stage's
 * ctx.snapshotDir, written to a temporary name, fsynced and renamed; its body carries a SHA-256, and a
 * file whose bytes do not match it is ignored, never trusted.
 */

/** Where a training loop keeps its snapshots, and where it says what it found. */
export interface SnapshotOptions {
  tf: Tf;
  dir: string;
  log: StepLogger;
}

/** A snapshot read back: the loop's state, and the best epoch's weights when the snapshot kept them apart. */
export interface Resumed<S> {
  state: S;
  bestWeights: Tfjs.Tensor[] | undefined;
}

const MAGIC = Buffer.from('headstart training snapshot 1\n');
const DIGEST_BYTES = 32;
const FILE = /^epoch-(\d+)\.snapshot$/;

type Group = 'weights' | 'best' | 'optimizer' | 'adam';

interface TensorEntry {
  group: Group;
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32';
  bytes: number;
}

interface Header<S> {
  backend: string;
  epoch: number;
  state: S;
  tensors: TensorEntry[];
}

/** The state tfjs's Adam keeps beyond its `getWeights` (which `setWeights` recomputes with pow(), not bit for bit). */
interface AdamAccumulators {
  accBeta1: Tfjs.Variable;
  accBeta2: Tfjs.Variable;
}

export function snapshotName(epoch: number): string {
  return `epoch-${epoch}.snapshot`;
}

/**
 * Writes the snapshot after `epoch`: `model`'s weights and optimizer, `bestWeights` (undefined: the best
 * are the current ones, or none are kept) and `state`, then removes the older snapshots.
 */
export async function saveSnapshot<S>(o: SnapshotOptions, epoch: number, model: Tfjs.LayersModel, state: S, bestWeights: Tfjs.Tensor[] | undefined): Promise<void> {
  const tensors: { entry: TensorEntry; data: Buffer }[] = [];
  const add = (group: Group, name: string, tensor: Tfjs.Tensor) => {
    const values = tensor.dataSync() as Float32Array | Int32Array;
    const data = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
    tensors.push({ entry: { group, name, shape: tensor.shape, dtype: tensor.dtype as 'float32', bytes: data.length }, data });
  };
  model.getWeights().forEach((weight, i) => add('weights', String(i), weight));
  bestWeights?.forEach((weight, i) => add('best', String(i), weight));
  const optimizerWeights = await model.optimizer.getWeights();
  try {
    for (const { name, tensor } of optimizerWeights) add('optimizer', name, tensor);
  } finally {
    optimizerWeights[0]?.tensor.dispose(); // the iteration count, made for the occasion; the rest are the optimizer's own variables
  }
  const adam = adamAccumulators(model.optimizer);
  if (adam) for (const name of ['accBeta1', 'accBeta2'] as const) add('adam', name, adam[name]);
  const header: Header<S> = { backend: o.tf.getBackend(), epoch, state, tensors: tensors.map((t) => t.entry) };
  const json = Buffer.from(JSON.stringify(header, encodeNonFinite));
  const length = Buffer.alloc(4);
  length.writeUInt32LE(json.length);
  const body = [length, json, ...tensors.map((t) => t.data)];
  const digest = body.reduce((hash, part) => hash.update(part), createHash('sha256')).digest();
  await writeAtomically(o.dir, snapshotName(epoch), [MAGIC, digest, ...body]);
  await removeOlder(o.dir, epoch);
}

/**
 * The newest intact snapshot in `o.dir` that fits `model` (same weights, same backend), restored into
 * the model and its optimizer; undefined when there is none. A damaged or foreign file is logged and
 * ignored.
 */
export async function loadSnapshot<S>(o: SnapshotOptions, model: Tfjs.LayersModel): Promise<(Resumed<S> & { epoch: number }) | undefined> {
  for (const name of await snapshotFiles(o.dir)) {
    const read = await readSnapshot<S>(join(o.dir, name), o.tf, model).catch((error: unknown) => `it cannot be read (${error instanceof Error ? error.message : String(error)})`);
    if (typeof read === 'string') {
      o.log.warn(`ignoring the training snapshot ${name}: ${read}`);
      continue;
    }
    return await restore(o.tf, model, read);
  }
  return undefined;
}

/** Snapshot files in `dir`, newest epoch first. */
async function snapshotFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const epochOf = (name: string) => Number(FILE.exec(name)![1]);
  return names.filter((name) => FILE.test(name)).sort((a, b) => epochOf(b) - epochOf(a));
}

interface ReadSnapshot<S> {
  header: Header<S>;
  tensors: Map<Group, { entry: TensorEntry; tensor: Tfjs.Tensor }[]>;
}

/** The snapshot at `path`, or why it cannot be trusted. */
async function readSnapshot<S>(path: string, tf: Tf, model: Tfjs.LayersModel): Promise<ReadSnapshot<S> | string> {
  const bytes = await readFile(path);
  if (bytes.length < MAGIC.length + DIGEST_BYTES + 4 || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) return 'not a snapshot of this format';
  const body = bytes.subarray(MAGIC.length + DIGEST_BYTES);
  if (!createHash('sha256').update(body).digest().equals(bytes.subarray(MAGIC.length, MAGIC.length + DIGEST_BYTES))) return 'its checksum does not match (a partial or damaged file)';
  const jsonLength = body.readUInt32LE(0);
  const header = JSON.parse(body.subarray(4, 4 + jsonLength).toString('utf8'), decodeNonFinite) as Header<S>;
  if (header.backend !== tf.getBackend()) return `it was written on the ${header.backend} backend, this run uses ${tf.getBackend()}`;
  const problem = mismatch(header.tensors.filter((t) => t.group === 'weights'), model.weights.map((w) => w.shape as number[]));
  if (problem) return problem;
  const tensors = new Map<Group, { entry: TensorEntry; tensor: Tfjs.Tensor }[]>();
  let offset = 4 + jsonLength;
  for (const entry of header.tensors) {
    const copy = body.buffer.slice(body.byteOffset + offset, body.byteOffset + offset + entry.bytes);
    offset += entry.bytes;
    const values = entry.dtype === 'int32' ? new Int32Array(copy) : new Float32Array(copy);
    tensors.set(entry.group, [...(tensors.get(entry.group) ?? []), { entry, tensor: tf.tensor(values, entry.shape, entry.dtype) }]);
  }
  return { header, tensors };
}

/** Why weights of `saved` shapes do not fit a model of `shapes`; undefined when they do. */
function mismatch(saved: TensorEntry[], shapes: number[][]): string | undefined {
  if (saved.length !== shapes.length) return `it holds ${saved.length} weights, the model has ${shapes.length}`;
  const at = saved.findIndex((entry, i) => entry.shape.join('×') !== shapes[i]!.join('×'));
  return at < 0 ? undefined : `weight ${at} is ${saved[at]!.shape.join('×')}, the model's is ${shapes[at]!.join('×')}`;
}

async function restore<S>(tf: Tf, model: Tfjs.LayersModel, read: ReadSnapshot<S>): Promise<Resumed<S> & { epoch: number }> {
  const group = (name: Group) => (read.tensors.get(name) ?? []).map((t) => t.tensor);
  const weights = group('weights');
  model.setWeights(weights);
  tf.dispose(weights);
  const optimizer = read.tensors.get('optimizer') ?? [];
  await model.optimizer.setWeights(optimizer.map(({ entry, tensor }) => ({ name: entry.name, tensor })));
  tf.dispose(optimizer.map((t) => t.tensor));
  const adam = adamAccumulators(model.optimizer);
  for (const { entry, tensor } of read.tensors.get('adam') ?? []) {
    adam?.[entry.name as keyof AdamAccumulators].assign(tensor as Tfjs.Scalar);
    tensor.dispose();
  }
  const best = group('best');
  return { epoch: read.header.epoch, state: read.header.state, bestWeights: best.length > 0 ? best : undefined };
}

function adamAccumulators(optimizer: Tfjs.Optimizer): AdamAccumulators | undefined {
  return optimizer.getClassName() === 'Adam' ? (optimizer as unknown as AdamAccumulators) : undefined;
}

/** Writes `parts` to `dir/name` so that the name only ever holds the whole file: temporary name, fsync, rename, fsync of the folder. */
async function writeAtomically(dir: string, name: string, parts: Buffer[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  const temporary = join(dir, `${name}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const file = await open(temporary, 'w');
  try {
    for (const part of parts) await file.write(part);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temporary, join(dir, name));
  const folder = await open(dir, 'r');
  try {
    await folder.sync();
  } finally {
    await folder.close();
  }
}

/**
 * Removes the snapshots of epochs before `epoch` and this process's interrupted writes. Another process
 * may run the same key (queue workers take no stage lock): its files being written are left alone, and
 * a file it removed first is no error.
 */
async function removeOlder(dir: string, epoch: number): Promise<void> {
  const ownTemporary = new RegExp(`^epoch-\\d+\\.snapshot\\.tmp-${process.pid}-`);
  for (const name of await readdir(dir).catch(ignoreMissing([]))) {
    const older = FILE.exec(name);
    if ((older && Number(older[1]) < epoch) || ownTemporary.test(name)) await rm(join(dir, name), { force: true });
  }
}

/** A catch handler that answers `fallback` for ENOENT and rethrows anything else. */
function ignoreMissing<T>(fallback: T): (error: unknown) => T {
  return (error) => {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return fallback;
    throw error;
  };
}

/** JSON has no Infinity or NaN (plateau's first best is −Infinity, a diverged loss NaN): written as tagged strings. */
const NON_FINITE = 'headstart:number:';

function encodeNonFinite(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? `${NON_FINITE}${value}` : value;
}

function decodeNonFinite(_key: string, value: unknown): unknown {
  return typeof value === 'string' && value.startsWith(NON_FINITE) ? Number(value.slice(NON_FINITE.length)) : value;
}
