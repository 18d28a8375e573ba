import { describe, expect, it } from 'vitest';
import { augmentImage, drawAugmentation } from '../../src/data/augment.js';
import { seededRandom } from '../../src/data/random.js';

const SIZE = 16;

/** Black background, a white vertical bar in the left quarter. */
function bar(): Uint8Array {
  const rgb = new Uint8Array(SIZE * SIZE * 3);
  for (let y = 2; y < 14; y++) for (let x = 2; x < 5; x++) rgb.fill(255, (y * SIZE + x) * 3, (y * SIZE + x) * 3 + 3);
  return rgb;
}

const at = (rgb: Uint8Array, y: number, x: number) => rgb[(y * SIZE + x) * 3]!;
const IDENTITY = { flip: false, angle: 0, zoom: 1, brightness: 1 };

describe('augmentImage', () => {
  it('leaves the image as it is for the identity draw', async () => {
    expect(await augmentImage(bar(), SIZE, IDENTITY)).toEqual(bar());
  });

  it('mirrors left-right', async () => {
    const flipped = await augmentImage(bar(), SIZE, { ...IDENTITY, flip: true });
    expect(at(flipped, 8, 3)).toBe(0);
    expect(at(flipped, 8, SIZE - 1 - 3)).toBe(255);
  });

  it('rotates and zooms about the centre, keeps the size, and fills with the border colour', async () => {
    for (const draw of [{ ...IDENTITY, angle: 90 }, { ...IDENTITY, angle: 17, zoom: 1.2 }, { ...IDENTITY, zoom: 0.7 }]) {
      const out = await augmentImage(bar(), SIZE, draw);
      expect(out.length).toBe(SIZE * SIZE * 3);
      expect(at(out, 0, 0)).toBe(0);
      expect(out).not.toEqual(bar());
    }
    const rotated = await augmentImage(bar(), SIZE, { ...IDENTITY, angle: 90 });
    expect(at(rotated, 3, 8)).toBe(255);
    expect(at(rotated, 8, 3)).toBe(0);
  });

  it('scales brightness and clips at 255', async () => {
    const gray = new Uint8Array(SIZE * SIZE * 3).fill(200);
    expect(new Set(await augmentImage(gray, SIZE, { ...IDENTITY, brightness: 0.5 }))).toEqual(new Set([100]));
    expect(new Set(await augmentImage(gray, SIZE, { ...IDENTITY, brightness: 1.5 }))).toEqual(new Set([255]));
  });
});

describe('drawAugmentation', () => {
  const settings = { flip: true, rotation: 15, zoom: 0.1, brightness: 0.2, copies: 1 };

  it('draws within the ranges, the same for the same seed', () => {
    const draws = Array.from({ length: 200 }, (_, i) => drawAugmentation(settings, seededRandom(3, i)));
    expect(draws.every((d) => Math.abs(d.angle) <= 15 && Math.abs(d.zoom - 1) <= 0.1 && Math.abs(d.brightness - 1) <= 0.2)).toBe(true);
    expect(draws.filter((d) => d.flip).length).toBeGreaterThan(60);
    expect(draws.filter((d) => d.flip).length).toBeLessThan(140);
    expect(drawAugmentation(settings, seededRandom(3, 0))).toEqual(draws[0]);
    expect(drawAugmentation({ ...settings, flip: false, rotation: 0, zoom: 0, brightness: 0 }, seededRandom(3, 0))).toEqual(IDENTITY);
  });
});
