import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StepUserError } from '@headstart/core';
import { describe, expect, it } from 'vitest';
import { checkImageFile, toRgb, UnreadableImageError } from '../../src/data/image.js';
import { BackendUnavailableError, IntegrityError, MemoryBudgetError, RuntimeUserError } from '../../src/runtime/errors.js';

describe('unreadable images are user errors', () => {
  it('a zero-byte file fails toRgb as an UnreadableImageError, not as sharp\'s raw exception', async () => {
    const failed = toRgb(new Uint8Array(0), { size: 8, fit: 'cover', background: '#000000' });
    await expect(failed).rejects.toThrow(UnreadableImageError);
    await expect(failed).rejects.toThrow(/^not a readable image \(.+ is empty\)$/);
  });

  it('every user error of the steps is a StepUserError: one hierarchy the engine knows', () => {
    for (const error of [new UnreadableImageError('x'), new RuntimeUserError('x'), new BackendUnavailableError('tensorflow', 'x'), new MemoryBudgetError('x'), new IntegrityError('x')]) {
      expect(error, error.name).toBeInstanceOf(StepUserError);
    }
  });

  it('checkImageFile on an empty file is one too', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'headstart-image-')), 'empty.png');
    writeFileSync(file, '');
    await expect(checkImageFile(file)).rejects.toBeInstanceOf(StepUserError);
  });
});
