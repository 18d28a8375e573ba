import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { BackendUnavailableError } from './errors.js';
import { loadSimdKernels } from './simd-kernels.js';
import type { Tf } from './tf.js';
import { registerWasmKernels } from './wasm-kernels.js';
import type * as WasmBackend from '@tensorflow/tfjs-backend-wasm';

export type { Tf } from './tf.js';

/** Fastest first: the order `loadBackend()` tries them in. */
export const BACKEND_NAMES = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export interface LoadedBackend {
  tf: Tf;
  backend: BackendName;
  /** Why no faster backend is used ("as requested" when one was named). */
  reason: string;
}

export interface LoadBackendOptions {
  /** Told once per process, on one line, which backend runs and why not a faster one. */
  log?: (line: string) => void;
}

/** Tries to make one backend active; returns why it cannot (one short phrase), or null on success. */
type Attempt = (tf: Tf) => Promise<string | null>;

const require = createRequire(import.meta.url);
const memo = new Map<string, Promise<LoadedBackend>>();
let announced = false;

/**
 * Loads TensorFlow.js with the fastest backend that works here, or the one named by `requested` (a
 * step's: `backendSetting(ctx.settings.backend)`). Native load failures make it fall back; a named
 * backend that cannot load throws BackendUnavailableError. Memoised per process.
 */
export async function loadBackend(requested: BackendName | 'auto' = 'auto', options: LoadBackendOptions = {}): Promise<LoadedBackend> {
  const choice = requested;
  let pending = memo.get(choice);
  if (!pending) {
    pending = choice === 'auto' ? loadFastest() : loadNamed(choice);
    memo.set(choice, pending);
    pending.catch(() => memo.delete(choice));
  }
  const loaded = await pending;
  await activate(loaded);
  if (!announced) {
    announced = true;
    options.log?.(`using ${loaded.backend} backend (${loaded.reason})`);
  }
  return loaded;
}

/**
 * The backend a step's `ctx.settings.backend` names (`--backend`, else $HEADSTART_BACKEND); an unknown
 * name is a user error, not a silent fallback.
 */
export function backendSetting(setting: string | undefined): BackendName | 'auto' {
  const value = setting?.trim();
  if (!value || value === 'auto') return 'auto';
  if (isBackendName(value)) return value;
  throw new BackendUnavailableError(value, `--backend (or HEADSTART_BACKEND) must be one of ${BACKEND_NAMES.join(', ')} or auto`);
}

export function isBackendName(value: string): value is BackendName {
  return (BACKEND_NAMES as readonly string[]).includes(value);
}

/** The name tfjs registers the backend under (both native packages register `tensorflow`). */
export function tfjsBackendName(backend: BackendName): string {
  return backend === 'tensorflow-gpu' ? 'tensorflow' : backend;
}

async function loadFastest(): Promise<LoadedBackend> {
  const tf = await importTf();
  const skipped: Skipped[] = [];
  for (const backend of BACKEND_NAMES) {
    const failure = await ATTEMPTS[backend](tf);
    if (failure === null) {
      const chosen = confirmGpu(tf, backend, skipped);
      return { tf, backend: chosen, reason: skipped.length > 0 ? describeSkipped(skipped) : 'fastest available' };
    }
    skipped.push({ backend, failure });
  }
  throw new Error(`no TensorFlow.js backend could load (${describeSkipped(skipped)})`);
}

interface Skipped {
  backend: string;
  failure: string;
}

/** "tensorflow-gpu, tensorflow: libtensorflow not installed …": backends failing alike share a phrase. */
function describeSkipped(skipped: Skipped[]): string {
  const byFailure = new Map<string, string[]>();
  for (const { backend, failure } of skipped) byFailure.set(failure, [...(byFailure.get(failure) ?? []), backend]);
  return [...byFailure].map(([failure, backends]) => `${backends.join(', ')}: ${failure}`).join('; ');
}

async function loadNamed(backend: BackendName): Promise<LoadedBackend> {
  const tf = await importTf();
  const failure = await ATTEMPTS[backend](tf);
  if (failure !== null) throw new BackendUnavailableError(backend, failure);
  return { tf, backend, reason: 'as requested' };
}

/** libtensorflow's GPU build runs on the CPU when it finds no GPU; say so rather than claim a GPU. */
function confirmGpu(tf: Tf, backend: BackendName, skipped: Skipped[]): BackendName {
  if (backend !== 'tensorflow-gpu') return backend;
  const usingGpu = (tf.backend() as { isUsingGpuDevice?: boolean }).isUsingGpuDevice;
  if (usingGpu !== false) return backend;
  skipped.push({ backend, failure: 'libtensorflow found no GPU device, so it runs on the CPU' });
  return 'tensorflow';
}

async function activate(loaded: LoadedBackend): Promise<void> {
  const name = tfjsBackendName(loaded.backend);
  if (loaded.tf.getBackend() === name) return;
  if (!(await loaded.tf.setBackend(name))) throw new Error(`backend ${name} was loaded but can no longer be activated`);
  await loaded.tf.ready();
}

async function importTf(): Promise<Tf> {
  return (await import('@tensorflow/tfjs')) as Tf;
}

const ATTEMPTS: Record<BackendName, Attempt> = {
  'tensorflow-gpu': (tf) => tryNative(tf, '@tensorflow/tfjs-node-gpu'),
  tensorflow: (tf) => tryNative(tf, '@tensorflow/tfjs-node'),
  wasm: tryWasm,
  cpu: tryCpu,
};

async function tryNative(tf: Tf, specifier: string): Promise<string | null> {
  const packageDir = resolvePackageDir(specifier);
  if (!packageDir) return 'package not installed';
  // Its install downloads libtensorflow; without it the import would fail after registering its
  // kernels, so a second native package would warn about every kernel twice.
  if (!hasNativeBinding(packageDir)) return 'libtensorflow not installed — its install could not download it';
  if (!sharesTfjsCore(packageDir)) return `${specifier} resolves another copy of @tensorflow/tfjs-core`;
  try {
    await withoutDuplicateKernelWarnings(() => import(specifier));
  } catch (error) {
    return describeNativeFailure(error);
  }
  return (await setBackend(tf, 'tensorflow')) ? null : 'libtensorflow failed to initialise';
}

async function tryWasm(tf: Tf): Promise<string | null> {
  const packageDir = resolvePackageDir('@tensorflow/tfjs-backend-wasm');
  if (!packageDir) return 'package not installed';
  if (!sharesTfjsCore(packageDir)) return '@tensorflow/tfjs-backend-wasm resolves another copy of @tensorflow/tfjs-core';
  let wasm: typeof WasmBackend;
  try {
    wasm = await import('@tensorflow/tfjs-backend-wasm');
  } catch (error) {
    return `@tensorflow/tfjs-backend-wasm did not load (${firstLine(error)})`;
  }
  wasm.setWasmPaths(path.join(packageDir, 'dist') + path.sep);
  if (!(await setBackend(tf, 'wasm'))) return 'the WebAssembly module failed to initialise';
  registerWasmKernels(tf);
  // Without the SIMD kernels (wabt missing, a shared-memory build) the kernels built from tf ops
  // remain: slower, not wrong. The runtime tests check that they load here.
  await loadSimdKernels(tf).catch(() => undefined);
  return null;
}

async function tryCpu(tf: Tf): Promise<string | null> {
  if (!(await setBackend(tf, 'cpu'))) return 'the cpu backend failed to initialise';
  // Stops tfjs's "install our node backend" banner: we print our own line about backends.
  (tf.backend() as { firstUse?: boolean }).firstUse = false;
  return null;
}

async function setBackend(tf: Tf, name: string): Promise<boolean> {
  try {
    const ok = await tf.setBackend(name);
    if (ok) await tf.ready();
    return ok;
  } catch {
    return false;
  }
}

function resolvePackageDir(specifier: string): string | null {
  try {
    return path.dirname(require.resolve(`${specifier}/package.json`));
  } catch {
    return null;
  }
}

/** node-pre-gyp puts the addon at lib/napi-v<N>/tfjs_binding.node. */
function hasNativeBinding(packageDir: string): boolean {
  const lib = path.join(packageDir, 'lib');
  if (!existsSync(lib)) return false;
  return readdirSync(lib).some((dir) => existsSync(path.join(lib, dir, 'tfjs_binding.node')));
}

/** A backend registers itself in the tfjs-core it resolves; it must be the one `@tensorflow/tfjs` uses. */
function sharesTfjsCore(packageDir: string): boolean {
  const ours = coreFrom(path.dirname(require.resolve('@tensorflow/tfjs/package.json')));
  return ours !== null && coreFrom(packageDir) === ours;
}

function coreFrom(packageDir: string): string | null {
  try {
    return realpathSync(createRequire(path.join(packageDir, 'package.json')).resolve('@tensorflow/tfjs-core'));
  } catch {
    return null;
  }
}

async function withoutDuplicateKernelWarnings<T>(load: () => Promise<T>): Promise<T> {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (!/is already registered/.test(String(args[0]))) warn(...args);
  };
  try {
    return await load();
  } finally {
    console.warn = warn;
  }
}

/** Turns a native package's load error into one short phrase. */
export function describeNativeFailure(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: string } | null)?.code;
  if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') return 'package not installed';
  if (/tfjs_binding\.node/.test(message) && /can ?not be found|cannot find/i.test(message)) {
    return 'libtensorflow not installed — its install could not download it';
  }
  const missingLib = /(lib[\w.+-]+\.so[\w.]*): cannot open shared object file/.exec(message);
  if (missingLib) return `native library ${missingLib[1]} not found`;
  return firstLine(error);
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const line = message.split('\n').find((l) => l.trim() !== '') ?? 'unknown error';
  return line.length > 160 ? `${line.slice(0, 157)}...` : line.trim();
}
