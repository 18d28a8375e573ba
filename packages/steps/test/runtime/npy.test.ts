import { spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { NpyReader, NpyWriter, readNpy, RuntimeUserError, writeNpy, type NpyArray } from '../../src/runtime/index.js';
import { pythonWithNumpy, tempDir } from './helpers.js';

const dir = await tempDir();
const python = pythonWithNumpy();

function ramp<T extends NpyArray>(Type: { new (n: number): T }, n: number, scale = 1): T {
  const array = new Type(n);
  for (let i = 0; i < n; i++) array[i] = (i * scale) % 251;
  return array;
}

describe('npy files', () => {
  it.each([
    ['float32', new Float32Array([1.5, -2.25, 3, 1e-7, -0, 65504]), [2, 3]],
    ['int32', Int32Array.from([-2147483648, 2147483647, 0, 7]), [4]],
    ['uint8', ramp(Uint8Array, 2 * 3 * 5), [2, 3, 5]],
    ['empty float32', new Float32Array(0), [0, 7]],
  ] as const)('round-trips %s with its shape', async (label, data, shape) => {
    const file = path.join(dir, `${label.replace(' ', '-')}.npy`);
    await writeNpy(file, data, shape);
    const back = await readNpy(file);
    expect(back.shape).toEqual(shape);
    expect(back.data.constructor).toBe(data.constructor);
    expect(Array.from(back.data)).toEqual(Array.from(data));
  });

  it('aligns the data to 64 bytes and starts with the v1.0 magic', async () => {
    const file = path.join(dir, 'aligned.npy');
    await writeNpy(file, new Float32Array(10), [10]);
    const bytes = await readFile(file);
    expect(bytes.subarray(0, 8)).toEqual(Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]));
    const headerLength = bytes.readUInt16LE(8);
    expect((10 + headerLength) % 64).toBe(0);
    expect(bytes.subarray(10, 10 + headerLength).toString('latin1')).toMatch(/^\{'descr': '<f4', 'fortran_order': False, 'shape': \(10,\), \} *\n$/);
    expect(bytes.length).toBe(10 + headerLength + 40);
  });

  it('streams batches with the leading dimension counted at close', async () => {
    const file = path.join(dir, 'streamed.npy');
    const rowSize = 16;
    const writer = await NpyWriter.create(file, { dtype: 'float32', shape: [null, rowSize] });
    const batch = 5000;
    for (let start = 0; start < 70_000; start += batch) {
      const rows = new Float32Array(batch * rowSize);
      for (let i = 0; i < rows.length; i++) rows[i] = start * rowSize + i;
      await writer.append(rows);
    }
    await expect(stat(file)).rejects.toThrow(); // invisible until closed
    expect(await writer.close()).toEqual([70_000, rowSize]);

    const reader = await NpyReader.open(file);
    expect(reader.shape).toEqual([70_000, rowSize]);
    const middle = await reader.readRows(41_234, 2);
    expect(Array.from(middle)).toEqual(Array.from({ length: 2 * rowSize }, (_, i) => 41_234 * rowSize + i));
    await reader.close();
    expect((await stat(file)).size).toBe(128 + 70_000 * rowSize * 4);
  });

  it('refuses rows of the wrong size, the wrong dtype, and a row count other than declared', async () => {
    const writer = await NpyWriter.create(path.join(dir, 'strict.npy'), { dtype: 'int32', shape: [2, 3] });
    await expect(writer.append(new Int32Array(4))).rejects.toThrow(/whole number of rows/);
    await expect(writer.append(new Float32Array(3))).rejects.toThrow(/appending float32 to a int32/);
    await writer.append(new Int32Array(3));
    await expect(writer.close()).rejects.toThrow(/1 rows written, 2 declared/);
  });

  it('leaves nothing behind when aborted', async () => {
    const sub = path.join(dir, 'aborted');
    await mkdir(sub);
    const writer = await NpyWriter.create(path.join(sub, 'x.npy'), { dtype: 'uint8', shape: [null, 2] });
    await writer.append(new Uint8Array(4));
    await writer.abort();
    expect(await readdir(sub)).toEqual([]);
  });

  it('reports a file that is not .npy as a user error', async () => {
    const file = path.join(dir, 'not.npy');
    await writeFile(file, 'hello');
    await expect(readNpy(file)).rejects.toBeInstanceOf(RuntimeUserError);
  });

  describe.skipIf(python === null)(`with numpy (${python ?? 'python3 without numpy'})`, () => {
    it('numpy.load reads what we write', async () => {
      const file = path.join(dir, 'for-numpy.npy');
      const writer = await NpyWriter.create(file, { dtype: 'float32', shape: [null, 3, 2] });
      await writer.append(Float32Array.from({ length: 12 }, (_, i) => i / 4));
      await writer.append(Float32Array.from({ length: 6 }, (_, i) => -(i + 1)));
      await writer.close();
      const out = runPython(`import numpy, json; a = numpy.load(${JSON.stringify(file)}); print(json.dumps([a.dtype.str, list(a.shape), a.flags['C_CONTIGUOUS'], a.ravel().tolist()]))`);
      expect(JSON.parse(out)).toEqual(['<f4', [3, 3, 2], true, [...Array.from({ length: 12 }, (_, i) => i / 4), -1, -2, -3, -4, -5, -6]]);
    });

    it('reads what numpy.save writes, for each dtype', async () => {
      const base = path.join(dir, 'from-numpy');
      runPython(
        `import numpy; numpy.save(${JSON.stringify(`${base}-f4.npy`)}, numpy.arange(24, dtype='<f4').reshape(2, 3, 4) / 8); ` +
          `numpy.save(${JSON.stringify(`${base}-i4.npy`)}, numpy.array([-5, 0, 70000], dtype='<i4')); ` +
          `numpy.save(${JSON.stringify(`${base}-u1.npy`)}, numpy.arange(6, dtype='u1').reshape(3, 2))`,
      );
      const f4 = await readNpy(`${base}-f4.npy`);
      expect([f4.dtype, f4.shape, Array.from(f4.data)]).toEqual(['float32', [2, 3, 4], Array.from({ length: 24 }, (_, i) => i / 8)]);
      const i4 = await readNpy(`${base}-i4.npy`);
      expect([i4.dtype, i4.shape, Array.from(i4.data)]).toEqual(['int32', [3], [-5, 0, 70000]]);
      const u1 = await readNpy(`${base}-u1.npy`);
      expect([u1.dtype, u1.shape, Array.from(u1.data)]).toEqual(['uint8', [3, 2], [0, 1, 2, 3, 4, 5]]);
    });
  });
});

function runPython(code: string): string {
  const result = spawnSync(python as string, ['-c', code], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`python failed: ${result.stderr}`);
  return result.stdout.trim();
}
