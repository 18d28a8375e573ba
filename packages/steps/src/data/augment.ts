import sharp from 'sharp';
import type { AugmentSettings } from './dataset.js';
import type { Random } from './random.js';
import { uniform } from './random.js';

/** One draw of the random transforms. */
export interface AugmentDraw {
  flip: boolean;
  /** Degrees, clockwise. */
  angle: number;
  /** > 1 zooms in. */
  zoom: number;
  brightness: number;
}

export function drawAugmentation(settings: AugmentSettings, random: Random): AugmentDraw {
  return {
    flip: settings.flip && random() < 0.5,
    angle: uniform(random, -settings.rotation, settings.rotation),
    zoom: uniform(random, 1 - settings.zoom, 1 + settings.zoom),
    brightness: uniform(random, 1 - settings.brightness, 1 + settings.brightness),
  };
}

/**
 * Applies a draw to a size × size RGB image: horizontal flip, rotation about the centre, zoom about the
 * centre, brightness scaling; the output has the same size. Areas uncovered by rotating or zooming out are
 * filled with the mean colour of the image's border (close to Keras's `fill_mode='nearest'` on the
 * plain backgrounds typical of such data, and never a colour the image does not have).
 */
export async function augmentImage(rgb: Uint8Array, size: number, draw: AugmentDraw): Promise<Uint8Array> {
  const fill = borderMean(rgb, size);
  const raw = { raw: { width: size, height: size, channels: 3 as const } };
  let image = sharp(rgb, raw);
  if (draw.flip) image = image.flop();
  if (Math.abs(draw.angle) > 1e-6) image = image.rotate(draw.angle, { background: fill });
  const rotated = await image.raw().toBuffer({ resolveWithObject: true });
  const scaled = Math.max(1, Math.round(rotated.info.width * draw.zoom));
  // sharp runs extract/extend after resize when they are chained after it.
  let zoomed = sharp(rotated.data, { raw: { width: rotated.info.width, height: rotated.info.height, channels: 3 } }).resize(scaled, scaled, { fit: 'fill' });
  zoomed = scaled >= size ? zoomed.extract(centred(scaled, size)) : zoomed.extend({ ...padding(scaled, size), background: fill });
  const out = await zoomed.raw().toBuffer();
  if (out.length !== size * size * 3) throw new Error(`bug: augmented image has ${out.length} bytes, expected ${size * size * 3}`);
  return scaleBrightness(new Uint8Array(out.buffer, out.byteOffset, out.length), draw.brightness);
}

function centred(outer: number, inner: number): { left: number; top: number; width: number; height: number } {
  const offset = Math.floor((outer - inner) / 2);
  return { left: offset, top: offset, width: inner, height: inner };
}

function padding(inner: number, outer: number): { top: number; bottom: number; left: number; right: number } {
  const before = Math.floor((outer - inner) / 2);
  const after = outer - inner - before;
  return { top: before, bottom: after, left: before, right: after };
}

function borderMean(rgb: Uint8Array, size: number): { r: number; g: number; b: number } {
  const sum = [0, 0, 0];
  let count = 0;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if (y !== 0 && y !== size - 1 && x !== 0 && x !== size - 1) continue;
      const at = (y * size + x) * 3;
      for (let c = 0; c < 3; c++) sum[c]! += rgb[at + c]!;
      count++;
    }
  }
  const [r, g, b] = sum.map((s) => Math.round(s / count)) as [number, number, number];
  return { r, g, b };
}

function scaleBrightness(rgb: Uint8Array, factor: number): Uint8Array {
  if (factor === 1) return rgb;
  const out = new Uint8Array(rgb.length);
  for (let i = 0; i < rgb.length; i++) out[i] = Math.min(255, Math.round(rgb[i]! * factor));
  return out;
}
