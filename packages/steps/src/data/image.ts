import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import sharp from 'sharp';
import { sha256, StepUserError } from '@headstart/core';
import type { Fit } from './dataset.js';

// libvips's operation cache only helps when the same image is processed again, which a dataset never
// does; without it each small image costs about a third less.
sharp.cache(false);

/** File types load-data takes from a folder (by extension, case-insensitive). */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set(['.jpg', '.jpeg', '.png', '.webp']);

export function isImageFile(name: string): boolean {
  return IMAGE_EXTENSIONS.has(extname(name).toLowerCase());
}

/**
 * An image sharp could not read (corrupt, truncated, empty, not an image); `reason` is sharp's message.
 * A user error even when it escapes a caller that would have named the file.
 */
export class UnreadableImageError extends StepUserError {
  override readonly name: string = 'UnreadableImageError';
  constructor(readonly reason: string) {
    super(`not a readable image (${reason})`);
  }
}

/** Reads a file's bytes and decodes them fully once (a truncated image fails here); returns the bytes' hash. */
export async function checkImageFile(file: string): Promise<string> {
  const bytes = await readFile(file);
  try {
    // A full decode finds truncated files; .raw() is ~25× cheaper than .stats() (measured: 0.34 vs 9.7 ms).
    await sharp(bytes).raw().toBuffer();
  } catch (error) {
    throw new UnreadableImageError((error as Error).message);
  }
  return sha256(bytes);
}

/** Grayscale pixels (one byte each, row-major), as the npm dataset packages give them. */
export interface GrayPixels {
  pixels: Uint8Array;
  width: number;
  height: number;
}

export interface RgbOptions {
  size: number;
  fit: Fit;
  /** CSS colour for transparent pixels and `contain` padding. */
  background: string;
}

/**
 * Decodes an image (encoded bytes or gray pixels) to size × size RGB uint8, row-major: EXIF orientation
 * applied, alpha flattened onto the background, gray turned into three equal channels.
 */
export async function toRgb(input: Uint8Array | GrayPixels, options: RgbOptions): Promise<Uint8Array> {
  let data: Buffer;
  try {
    // sharp's constructor throws too (an empty file: "Input Buffer is empty"), so it is inside the try.
    const image = input instanceof Uint8Array
      ? sharp(input).rotate()
      : sharp(input.pixels, { raw: { width: input.width, height: input.height, channels: 1 } });
    data = await image
      .flatten({ background: options.background })
      .resize(options.size, options.size, { fit: options.fit, background: options.background })
      .toColourspace('srgb')
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer();
  } catch (error) {
    throw new UnreadableImageError((error as Error).message);
  }
  if (data.length !== options.size * options.size * 3) throw new Error(`bug: decoded ${data.length} bytes for a ${options.size}² RGB image`);
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

/** True when sharp understands `colour` (a CSS name, #rgb, #rrggbb, rgb(...)). */
export async function isColour(colour: string): Promise<boolean> {
  try {
    await sharp({ create: { width: 1, height: 1, channels: 3, background: colour } }).raw().toBuffer();
    return true;
  } catch {
    return false;
  }
}

/** Gray pixels as PNG bytes. */
export async function grayPng(input: GrayPixels): Promise<Buffer> {
  return sharp(input.pixels, { raw: { width: input.width, height: input.height, channels: 1 } }).png().toBuffer();
}
