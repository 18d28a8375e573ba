import { open, rename, rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import os from 'node:os';
import { tempSibling } from '@headstart/core';
import { RuntimeUserError } from './errors.js';

/**
 * NumPy `.npy` files (format v1.0: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html),
 * C order, little-endian float32 / int32 / uint8, so any Python user can `np.load` our tensors.
 */
export type NpyDType = 'float32' | 'int32' | 'uint8';
export type NpyArray = Float32Array | Int32Array | Uint8Array;

export interface NpyHeader {
  dtype: NpyDType;
  shape: number[];
  /** Byte offset of the data: the header's length. */
  dataOffset: number;
}

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
const ALIGN = 64;
/** numpy reserves this many digits for the leading dimension so the header can be patched in place. */
const GROWTH_AXIS_DIGITS = 21;

const DESCR: Record<NpyDType, string> = { float32: '<f4', int32: '<i4', uint8: '|u1' };
const DTYPE_OF_DESCR: Record<string, NpyDType> = { '<f4': 'float32', '<i4': 'int32', '|u1': 'uint8', '<u1': 'uint8' };
const ARRAY_TYPES = { float32: Float32Array, int32: Int32Array, uint8: Uint8Array } as const;

if (os.endianness() !== 'LE') throw new Error('the .npy writer assumes a little-endian machine');

export function dtypeOf(array: NpyArray): NpyDType {
  if (array instanceof Float32Array) return 'float32';
  if (array instanceof Int32Array) return 'int32';
  return 'uint8';
}

/** Encodes a v1.0 header, padded so the data starts on a 64-byte boundary, with room to grow shape[0]. */
export function encodeNpyHeader(dtype: NpyDType, shape: readonly number[]): Buffer {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  const dict = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': (${dims}), }`;
  const leading = String(shape[0] ?? '');
  const unpadded = MAGIC.length + 4 + dict.length + (GROWTH_AXIS_DIGITS - leading.length) + 1;
  const total = Math.ceil(unpadded / ALIGN) * ALIGN;
  const text = dict.padEnd(total - MAGIC.length - 4 - 1, ' ') + '\n';
  const prefix = Buffer.alloc(4);
  prefix.writeUInt8(1, 0);
  prefix.writeUInt8(0, 1);
  prefix.writeUInt16LE(text.length, 2);
  return Buffer.concat([MAGIC, prefix, Buffer.from(text, 'latin1')]);
}

export function parseNpyHeader(bytes: Buffer, file = 'npy file'): NpyHeader {
  if (bytes.length < 10 || !bytes.subarray(0, 6).equals(MAGIC)) throw new RuntimeUserError(`${file} is not a .npy file`);
  const major = bytes.readUInt8(6);
  const lengthBytes = major === 1 ? 2 : 4;
  const headerLength = major === 1 ? bytes.readUInt16LE(8) : bytes.readUInt32LE(8);
  const dataOffset = 8 + lengthBytes + headerLength;
  if (bytes.length < dataOffset) throw new RuntimeUserError(`${file}: truncated .npy header`);
  const text = bytes.subarray(8 + lengthBytes, dataOffset).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(text)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(text)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new RuntimeUserError(`${file}: malformed .npy header ${JSON.stringify(text.trim())}`);
  }
  const dtype = DTYPE_OF_DESCR[descr];
  if (!dtype) throw new RuntimeUserError(`${file}: dtype ${descr} is not supported (float32, int32, uint8 only)`);
  if (fortran === 'True') throw new RuntimeUserError(`${file}: Fortran-order arrays are not supported`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  return { dtype, shape, dataOffset };
}

/**
 * Streams an array to a `.npy` file batch by batch. The leading dimension may be left open (null) and
 * is then written into the header at close. The file appears under its name only when closed.
 */
export class NpyWriter {
  private rowsWritten = 0;
  private position: number;
  private closed = false;

  private constructor(
    readonly file: string,
    readonly dtype: NpyDType,
    private readonly shape: readonly (number | null)[],
    private readonly handle: FileHandle,
    private readonly tmp: string,
    headerLength: number,
  ) {
    this.position = headerLength;
  }

  /** `shape[0]` null: counted from the appended rows. */
  static async create(file: string, options: { dtype: NpyDType; shape: readonly (number | null)[] }): Promise<NpyWriter> {
    const { dtype, shape } = options;
    if (shape.length === 0) throw new Error('NpyWriter streams arrays of rank 1 or more');
    if (shape.slice(1).some((d) => d === null || !Number.isInteger(d) || d < 0)) {
      throw new Error(`only the leading dimension may be open: ${JSON.stringify(shape)}`);
    }
    const tmp = tempSibling(file);
    const handle = await open(tmp, 'wx');
    const header = encodeNpyHeader(dtype, [shape[0] ?? 0, ...(shape.slice(1) as number[])]);
    await writeFully(handle, header, 0);
    return new NpyWriter(file, dtype, shape, handle, tmp, header.length);
  }

  get rows(): number {
    return this.rowsWritten;
  }

  /** Elements per leading index. */
  get rowSize(): number {
    return (this.shape.slice(1) as number[]).reduce((n, d) => n * d, 1);
  }

  /** Appends whole rows (C order); the array's type must match the dtype. */
  async append(data: NpyArray): Promise<void> {
    if (this.closed) throw new Error(`${this.file}: append after close`);
    if (dtypeOf(data) !== this.dtype) throw new Error(`${this.file}: appending ${dtypeOf(data)} to a ${this.dtype} array`);
    const rowSize = this.rowSize;
    if (rowSize === 0 ? data.length !== 0 : data.length % rowSize !== 0) {
      throw new Error(`${this.file}: ${data.length} elements is not a whole number of rows of ${rowSize}`);
    }
    const expected = this.shape[0];
    const rows = rowSize === 0 ? 0 : data.length / rowSize;
    if (expected != null && this.rowsWritten + rows > expected) {
      throw new Error(`${this.file}: more than the ${expected} rows declared`);
    }
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    await writeFully(this.handle, bytes, this.position);
    this.position += bytes.length;
    this.rowsWritten += rows;
  }

  /** Writes the final header, syncs and renames into place. Returns the array's shape. */
  async close(): Promise<number[]> {
    if (this.closed) throw new Error(`${this.file}: closed twice`);
    const expected = this.shape[0];
    if (expected != null && this.rowsWritten !== expected) {
      await this.abort();
      throw new Error(`${this.file}: ${this.rowsWritten} rows written, ${expected} declared`);
    }
    const shape = [this.rowsWritten, ...(this.shape.slice(1) as number[])];
    this.closed = true;
    try {
      const header = encodeNpyHeader(this.dtype, shape);
      await writeFully(this.handle, header, 0);
      await this.handle.sync();
      await this.handle.close();
      await rename(this.tmp, this.file);
    } catch (error) {
      await rm(this.tmp, { force: true });
      throw error;
    }
    return shape;
  }

  /** Discards what was written; the target file is left as it was. */
  async abort(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.handle.close();
    }
    await rm(this.tmp, { force: true });
  }
}

/** Writes a whole array at once. */
export async function writeNpy(file: string, data: NpyArray, shape: readonly number[]): Promise<void> {
  const writer = await NpyWriter.create(file, { dtype: dtypeOf(data), shape });
  try {
    await writer.append(data);
  } catch (error) {
    await writer.abort();
    throw error;
  }
  await writer.close();
}

/** Reads `.npy` rows on demand, so a 70,000-row feature file need not be in memory at once. */
export class NpyReader {
  private constructor(
    readonly file: string,
    readonly dtype: NpyDType,
    readonly shape: number[],
    private readonly dataOffset: number,
    private readonly handle: FileHandle,
  ) {}

  static async open(file: string): Promise<NpyReader> {
    const handle = await open(file, 'r');
    try {
      const { size } = await handle.stat();
      const head = Buffer.alloc(Math.min(size, 65536 + 12));
      await readFully(handle, head, 0);
      const header = parseNpyHeader(head, file);
      const reader = new NpyReader(file, header.dtype, header.shape, header.dataOffset, handle);
      const expected = header.dataOffset + reader.size * ARRAY_TYPES[header.dtype].BYTES_PER_ELEMENT;
      if (size < expected) throw new RuntimeUserError(`${file}: truncated (${size} bytes, header says ${expected})`);
      return reader;
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  get rows(): number {
    return this.shape[0] ?? 1;
  }

  get rowSize(): number {
    return this.shape.slice(1).reduce((n, d) => n * d, 1);
  }

  get size(): number {
    return this.shape.reduce((n, d) => n * d, 1);
  }

  async readRows(start: number, count: number): Promise<NpyArray> {
    const end = Math.min(this.rows, start + count);
    if (start < 0 || start > end) throw new RangeError(`${this.file}: rows ${start}..${start + count} out of range`);
    const elements = (end - start) * this.rowSize;
    const array = new ARRAY_TYPES[this.dtype](elements);
    const offset = this.dataOffset + start * this.rowSize * array.BYTES_PER_ELEMENT;
    const bytes = Buffer.from(array.buffer, array.byteOffset, array.byteLength);
    await readFully(this.handle, bytes, offset);
    return array;
  }

  async readAll(): Promise<NpyArray> {
    return this.shape.length === 0 ? this.readScalar() : this.readRows(0, this.rows);
  }

  private async readScalar(): Promise<NpyArray> {
    const array = new ARRAY_TYPES[this.dtype](1);
    await readFully(this.handle, Buffer.from(array.buffer), this.dataOffset);
    return array;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

export async function readNpy(file: string): Promise<{ dtype: NpyDType; shape: number[]; data: NpyArray }> {
  const reader = await NpyReader.open(file);
  try {
    return { dtype: reader.dtype, shape: reader.shape, data: await reader.readAll() };
  } finally {
    await reader.close();
  }
}

async function writeFully(handle: FileHandle, bytes: Buffer, position: number): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

async function readFully(handle: FileHandle, bytes: Buffer, position: number): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const { bytesRead } = await handle.read(bytes, done, bytes.length - done, position + done);
    if (bytesRead === 0) throw new RuntimeUserError('unexpected end of .npy file');
    done += bytesRead;
  }
}
