import sharp from 'sharp';
import { NpyReader } from '../runtime/npy.js';
import { escapeMarkup } from './escape.js';

export interface Mistake {
  /** Row of the image in the split. */
  index: number;
  label: number;
  predicted: number;
  /** The predicted class's probability. */
  probability: number;
}

/** The predicted class: the most probable, ties to the lower index (as the metrics count it). */
export function predictedClass(probabilities: Float32Array, row: number, classCount: number): number {
  let best = 0;
  for (let c = 1; c < classCount; c++) {
    if (probabilities[row * classCount + c]! > probabilities[row * classCount + best]!) best = c;
  }
  return best;
}

/** Every misclassified image, the most confident mistakes first (ties by row). */
export function findMistakes(labels: Int32Array, probabilities: Float32Array, classCount: number): Mistake[] {
  const mistakes: Mistake[] = [];
  for (let index = 0; index < labels.length; index++) {
    const predicted = predictedClass(probabilities, index, classCount);
    if (predicted !== labels[index]) mistakes.push({ index, label: labels[index]!, predicted, probability: probabilities[index * classCount + predicted]! });
  }
  return mistakes.sort((a, b) => b.probability - a.probability || a.index - b.index);
}

/** Thumbnails are at least this wide: small images are enlarged by whole pixels, large ones shrunk to it. */
const MIN_THUMBNAIL = 64;
const MAX_THUMBNAIL = 96;

export function thumbnailSize(imageSize: number): number {
  if (imageSize >= MIN_THUMBNAIL) return Math.min(imageSize, MAX_THUMBNAIL);
  return imageSize * Math.ceil(MIN_THUMBNAIL / imageSize);
}

/** PNG thumbnails of the given rows of a split's `images.npy` (uint8 [N, size, size, 3]). */
export async function thumbnails(imagesFile: string, rows: readonly number[]): Promise<{ size: number; pngs: Buffer[] }> {
  const reader = await NpyReader.open(imagesFile);
  try {
    const [, height, width, channels] = reader.shape;
    if (reader.dtype !== 'uint8' || height !== width || channels !== 3) throw new Error(`${imagesFile}: expected uint8 [N, S, S, 3] images, found ${reader.dtype} [${reader.shape.join(', ')}]`);
    const size = thumbnailSize(width!);
    const pngs: Buffer[] = [];
    for (const row of rows) {
      const pixels = await reader.readRows(row, 1);
      const image = sharp(pixels, { raw: { width: width!, height: width!, channels: 3 } }).resize(size, size, { kernel: size > width! ? 'nearest' : 'lanczos3' });
      pngs.push(await image.png({ compressionLevel: 9 }).toBuffer());
    }
    return { size, pngs };
  } finally {
    await reader.close();
  }
}

export interface Tile {
  png: Buffer;
  trueClass: string;
  predictedClass: string;
  probability: number;
}

const COLUMNS = 8;
const PAD = 6;
const CAPTION_HEIGHT = 32;
const MIN_TILE_WIDTH = 120;
/** About the widest a character of the 11 px caption font is, on average over a label. */
const CHAR_WIDTH = 6.5;

/** The tiles on one white PNG, COLUMNS to a row, each with its true and predicted class underneath. */
export async function composeGrid(tiles: readonly Tile[], thumbnail: number): Promise<Buffer> {
  const tileWidth = Math.max(thumbnail, MIN_TILE_WIDTH) + 2 * PAD;
  const tileHeight = thumbnail + CAPTION_HEIGHT + 2 * PAD;
  const columns = Math.min(COLUMNS, tiles.length);
  const width = columns * tileWidth;
  const height = Math.ceil(tiles.length / COLUMNS) * tileHeight;
  const at = (i: number) => ({ left: (i % COLUMNS) * tileWidth, top: Math.floor(i / COLUMNS) * tileHeight });
  const fit = (name: string, prefix: string, suffix = '') => escapeMarkup(`${prefix}${shorten(name, Math.floor(tileWidth / CHAR_WIDTH) - prefix.length - suffix.length)}${suffix}`);
  const captions = tiles.map((tile, i) => {
    const { left, top } = at(i);
    const x = left + Math.floor(tileWidth / 2);
    const y = top + PAD + thumbnail + 14;
    return `<text x="${x}" y="${y}">${fit(tile.trueClass, 'true ')}</text><text x="${x}" y="${y + 14}">${fit(tile.predictedClass, 'pred ', ` (${tile.probability.toFixed(2)})`)}</text>`;
  });
  const overlay = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><g font-family="DejaVu Sans, sans-serif" font-size="11" text-anchor="middle" fill="#222">${captions.join('')}</g></svg>`;
  const images = tiles.map((tile, i) => ({ input: tile.png, left: at(i).left + Math.floor((tileWidth - thumbnail) / 2), top: at(i).top + PAD }));
  return sharp({ create: { width, height, channels: 3, background: '#ffffff' } })
    .composite([...images, { input: Buffer.from(overlay), left: 0, top: 0 }])
    .png({ compressionLevel: 9 })
    .toBuffer();
}

/** A class name cut to fit its caption, the cut marked. */
function shorten(text: string, maxChars: number): string {
  return text.length <= maxChars ? text : `${text.slice(0, maxChars - 1)}…`;
}
