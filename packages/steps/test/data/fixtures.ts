import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll } from 'vitest';
import type { StepContext, StepDefinition, StepSettings } from '@headstart/core';

/** A fresh directory, removed after the file's tests. */
export async function tempDir(prefix = 'headstart-data-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  afterAll(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export type Format = 'png' | 'jpg' | 'webp';

export interface ImageSpec {
  colour: { r: number; g: number; b: number; alpha?: number };
  size?: number;
  /** Overrides size for a non-square image. */
  width?: number;
  format?: Format;
  /** Save as a single-channel grayscale image. */
  gray?: boolean;
  /** A filled square of another colour in the top-left quarter, so images are not uniform. */
  mark?: { r: number; g: number; b: number };
}

/** Writes a small synthetic image; returns its path. */
export async function makeImage(file: string, spec: ImageSpec): Promise<string> {
  const size = spec.size ?? 32;
  await mkdir(path.dirname(file), { recursive: true });
  const channels = spec.colour.alpha === undefined ? 3 : 4;
  let image = sharp({ create: { width: spec.width ?? size, height: size, channels, background: spec.colour } });
  if (spec.mark) {
    const half = Math.floor(size / 2);
    const mark = await sharp({ create: { width: half, height: half, channels: 3, background: spec.mark } }).png().toBuffer();
    image = sharp(await image.composite([{ input: mark, left: 0, top: 0 }]).png().toBuffer());
  }
  if (spec.gray) image = image.toColourspace('b-w');
  const format = spec.format ?? (path.extname(file).slice(1) as Format);
  const encoded = format === 'jpg' ? image.jpeg({ quality: 95 }) : format === 'webp' ? image.webp({ lossless: true }) : image.png();
  await encoded.toFile(file);
  return file;
}

export interface Recorded {
  warnings: string[];
  infos: string[];
  progress: [number, number | undefined][];
}

/** A step context on temporary folders, as the engine would build it; logs and progress are recorded. */
export async function contextFor<P>(params: P, options: { workdir: string; inputs?: Record<string, string>; outputs: readonly string[]; seed?: number; settings?: StepSettings }): Promise<{ ctx: StepContext<P>; recorded: Recorded; outputs: Record<string, string> }> {
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'headstart-ctx-'));
  afterAll(() => rm(scratch, { recursive: true, force: true }));
  const outputs: Record<string, string> = {};
  for (const name of options.outputs) {
    outputs[name] = path.join(scratch, 'out', name);
    await mkdir(outputs[name]!, { recursive: true });
  }
  const recorded: Recorded = { warnings: [], infos: [], progress: [] };
  const ctx: StepContext<P> = {
    stage: 'test',
    params,
    inputs: options.inputs ?? {},
    outputs,
    workdir: options.workdir,
    tmpdir: path.join(scratch, 'tmp'),
    cacheDir: path.join(scratch, 'cache'),
    snapshotDir: path.join(scratch, 'snapshots'),
    seed: options.seed ?? 0,
    signal: new AbortController().signal,
    log: { info: (m) => recorded.infos.push(m), warn: (m) => recorded.warnings.push(m) },
    settings: options.settings ?? {},
    progress: (done, total) => recorded.progress.push([done, total]),
  };
  return { ctx, recorded, outputs };
}

type Ajv = { compile(schema: object): ((data: unknown) => boolean) & { errors?: unknown } };
const coreRequire = createRequire(path.resolve(import.meta.dirname, '../../../core/package.json'));
const { Ajv2020 } = coreRequire('ajv/dist/2020.js') as { Ajv2020: new (options: object) => Ajv };
const ajv = new Ajv2020({ allErrors: true, useDefaults: true, strict: false });

/** A stage's `with:` after the engine's check: validated against the step's schema, defaults filled in. */
export function paramsFor<P>(step: StepDefinition<P>, params: Record<string, unknown>): P {
  const copy = structuredClone(params);
  const validate = ajv.compile(step.params);
  if (!validate(copy)) throw new Error(`invalid params for ${step.name}: ${JSON.stringify(validate.errors)}`);
  return copy as P;
}

/** Runs a step on a context and returns what the test needs. */
export async function runStep<P>(step: StepDefinition<P>, params: Record<string, unknown>, options: { workdir: string; inputs?: Record<string, string>; seed?: number; settings?: StepSettings }) {
  const outputNames = typeof step.outputs === 'function' ? step.outputs(paramsFor(step, params)) : step.outputs;
  const { ctx, recorded, outputs } = await contextFor(paramsFor(step, params), { ...options, outputs: outputNames });
  const result = await step.run(ctx);
  return { result, recorded, outputs };
}
