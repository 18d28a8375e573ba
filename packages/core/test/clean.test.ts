import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanCache, openCache } from '../src/index.js';
import { tempDir } from './helpers.js';

describe('cleanCache', () => {
  it('refuses while a process has the cache open, naming it, and cleans once it closed it', async () => {
    const root = join(tempDir(), 'cache');
    const cache = openCache(root, () => undefined);
    const refused = await cleanCache(root);
    expect(refused).toEqual({ ok: false, error: { reason: 'cache-in-use', path: root, holder: expect.stringContaining(`process ${process.pid} on `) } });
    expect(existsSync(join(root, 'CACHEDIR.TAG'))).toBe(true);
    await cache.close();
    expect(await cleanCache(root)).toEqual({ ok: true, value: { root, existed: true, kept: [] } });
    expect(existsSync(root)).toBe(false);
  });

  it('refuses a folder without the marker that holds anything else, and an empty one', async () => {
    const root = tempDir();
    mkdirSync(join(root, 'objects'));
    writeFileSync(join(root, 'thesis.tex'), '');
    expect(await cleanCache(root)).toEqual({ ok: false, error: { reason: 'not-a-cache', path: root, detail: 'no CACHEDIR.TAG, and it holds thesis.tex' } });
    expect(readdirSync(root).sort()).toEqual(['objects', 'thesis.tex']);
    const empty = tempDir();
    expect(await cleanCache(empty)).toMatchObject({ ok: false, error: { reason: 'not-a-cache' } });
    expect(existsSync(empty)).toBe(true);
  });

  it('says so when there is no cache', async () => {
    const root = join(tempDir(), 'none');
    expect(await cleanCache(root)).toEqual({ ok: true, value: { root, existed: false, kept: [] } });
  });
});
