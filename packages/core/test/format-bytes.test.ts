import { describe, expect, it } from 'vitest';
import { formatBytes } from '../src/index.js';

describe('formatBytes', () => {
  it('says bytes in binary units, as the memory messages and push do', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(3.4 * 1024 ** 2)).toBe('3.4 MiB');
    expect(formatBytes(3 * 1024 ** 3)).toBe('3.00 GiB');
    expect(formatBytes(2 * 1024 ** 4)).toBe('2.00 TiB');
  });
});
