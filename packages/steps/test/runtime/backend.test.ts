import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { backendSetting, describeNativeFailure, loadBackend } from '../../src/runtime/backend.js';
import { BackendUnavailableError, RuntimeUserError } from '../../src/runtime/index.js';

const require = createRequire(import.meta.url);

/** Whether a native package's install got its libtensorflow addon (it does not without internet). */
function nativeAddonInstalled(specifier: string): boolean {
  try {
    const lib = path.join(path.dirname(require.resolve(`${specifier}/package.json`)), 'lib');
    return existsSync(lib) && readdirSync(lib).some((d) => existsSync(path.join(lib, d, 'tfjs_binding.node')));
  } catch {
    return false;
  }
}
const nativeMissing = !nativeAddonInstalled('@tensorflow/tfjs-node') && !nativeAddonInstalled('@tensorflow/tfjs-node-gpu');

describe('loadBackend', () => {
  it.runIf(nativeMissing)('falls back past the native backends and says why, once, on one line', async () => {
    const lines: string[] = [];
    const first = await loadBackend(undefined, { log: (line) => lines.push(line) });
    const again = await loadBackend(undefined, { log: (line) => lines.push(line) });
    expect(first.backend).toBe('wasm');
    expect(again).toBe(first);
    expect(first.tf.getBackend()).toBe('wasm');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toBe('using wasm backend (tensorflow-gpu, tensorflow: libtensorflow not installed — its install could not download it)');
  });

  it.runIf(nativeMissing)('throws BackendUnavailableError for a named backend that cannot load', async () => {
    const error = await loadBackend('tensorflow').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendUnavailableError);
    expect(error).toBeInstanceOf(RuntimeUserError);
    expect((error as Error).message).toBe('backend tensorflow is not available: libtensorflow not installed — its install could not download it');
  });

  it('switches to a named backend and back, sharing one tfjs-core', async () => {
    const cpu = await loadBackend('cpu');
    expect(cpu.tf.getBackend()).toBe('cpu');
    const wasm = await loadBackend('wasm');
    expect(wasm.tf).toBe(cpu.tf);
    expect(wasm.tf.getBackend()).toBe('wasm');
    expect(wasm.tf.tensor1d([1, 2, 3]).sum().dataSync()[0]).toBe(6);
  });

  it('reads ctx.settings.backend and rejects unknown values', () => {
    expect(backendSetting(undefined)).toBe('auto');
    expect(backendSetting(' wasm ')).toBe('wasm');
    expect(() => backendSetting('gpu')).toThrow(BackendUnavailableError);
    expect(() => backendSetting('gpu')).toThrow(/--backend \(or HEADSTART_BACKEND\) must be one of tensorflow-gpu, tensorflow, wasm, cpu or auto/);
  });

  it('turns native load errors into short reasons', () => {
    const missing = Object.assign(new Error("Cannot find package '@tensorflow/tfjs-node'"), { code: 'ERR_MODULE_NOT_FOUND' });
    expect(describeNativeFailure(missing)).toBe('package not installed');
    expect(describeNativeFailure(new Error('The Node.js native addon module (tfjs_binding.node) can not be found at path: /x'))).toBe(
      'libtensorflow not installed — its install could not download it',
    );
    expect(describeNativeFailure(new Error('libcudart.so.11.0: cannot open shared object file: No such file or directory'))).toBe(
      'native library libcudart.so.11.0 not found',
    );
  });
});
