import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { loadBackend, type Tf } from '../../src/runtime/index.js';

const require = createRequire(import.meta.url);

/** Tests run on wasm, what CI has. */
export async function wasm(): Promise<Tf> {
  return (await loadBackend('wasm')).tf;
}

/** A fresh directory, removed after the file's tests. */
export async function tempDir(prefix = 'headstart-runtime-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  afterAll(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export interface Digits {
  /** [n, 28, 28, 1] pixel values 0..255, row-major. */
  pixels: Float32Array;
  labels: number[];
  count: number;
}

/**
 * MNIST digits from the `mnist` package. `from: 'end'` takes each digit's last samples: the test
 * split mnist_cnn was not trained on (it trained on the first 80 %).
 */
export function mnistDigits(digits: readonly number[], perDigit: number, from: 'start' | 'end' = 'end'): Digits {
  const pixels = new Float32Array(digits.length * perDigit * 784);
  const labels: number[] = [];
  digits.forEach((digit, d) => {
    const raw = (require(`mnist/src/digits/${digit}.json`) as { data: number[] }).data;
    const available = Math.floor(raw.length / 784);
    const start = from === 'start' ? 0 : available - perDigit;
    for (let i = 0; i < perDigit; i++) {
      const row = d * perDigit + i;
      for (let p = 0; p < 784; p++) pixels[row * 784 + p] = (raw[(start + i) * 784 + p] ?? 0) * 255;
      labels.push(d);
    }
  });
  return { pixels, labels, count: labels.length };
}

/** A python that can `import numpy`: the one on PATH, or Debian's (where `apt-get install python3-numpy` puts it). */
export function pythonWithNumpy(): string | null {
  for (const python of ['python3', '/usr/bin/python3']) {
    const result = spawnSync(python, ['-c', 'import numpy'], { stdio: 'ignore' });
    if (result.status === 0) return python;
  }
  return null;
}
