import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanCache, failureOf, openCache } from '../src/index.js';
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

  it('refuses an unmarked folder of generic names alone (downloads/, tmp/): without index.json or objects/ it is not ours', async () => {
    const root = tempDir();
    mkdirSync(join(root, 'downloads'));
    writeFileSync(join(root, 'downloads', 'paper.pdf'), 'pdf');
    mkdirSync(join(root, 'tmp'));
    expect(await cleanCache(root)).toEqual({ ok: false, error: { reason: 'not-a-cache', path: root, detail: 'no CACHEDIR.TAG, index.json or objects/' } });
    expect(readFileSync(join(root, 'downloads', 'paper.pdf'), 'utf8')).toBe('pdf');
    expect(readdirSync(root).sort()).toEqual(['downloads', 'tmp']);
  });

  it('says so when there is no cache', async () => {
    const root = join(tempDir(), 'none');
    expect(await cleanCache(root)).toEqual({ ok: true, value: { root, existed: false, kept: [] } });
  });
});

/** A pid no process has any more. */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString());
}

function refusal(open: () => unknown): unknown {
  try {
    open();
  } catch (error) {
    return failureOf(error);
  }
  return undefined;
}

describe('openCache claims only a folder that is a cache', () => {
  it('refuses a user folder before marking it or deleting anything in it', () => {
    const root = tempDir();
    writeFileSync(join(root, 'thesis.tex'), 'mine');
    const scratch = join(root, 'tmp', `draft-${deadPid()}-0123abcd`);
    mkdirSync(scratch, { recursive: true });
    expect(refusal(() => openCache(root, () => undefined))).toEqual({ reason: 'not-a-cache', path: root, detail: 'no CACHEDIR.TAG, and it holds thesis.tex' });
    expect(readdirSync(root).sort()).toEqual(['thesis.tex', 'tmp']);
    expect(existsSync(scratch)).toBe(true);
  });

  it('refuses a folder of generic names alone, so that a read-only command never makes it cleanable', async () => {
    const root = tempDir();
    mkdirSync(join(root, 'downloads'));
    writeFileSync(join(root, 'downloads', 'paper.pdf'), 'pdf');
    expect(refusal(() => openCache(root, () => undefined))).toMatchObject({ reason: 'not-a-cache', detail: 'no CACHEDIR.TAG, index.json or objects/' });
    expect(existsSync(join(root, 'CACHEDIR.TAG'))).toBe(false);
    expect(await cleanCache(root)).toMatchObject({ ok: false, error: { reason: 'not-a-cache' } });
    expect(readFileSync(join(root, 'downloads', 'paper.pdf'), 'utf8')).toBe('pdf');
  });

  it('marks a new folder, an empty one, one that loading the pipeline just wrote to, and a cache from before the marker', async () => {
    const empty = tempDir();
    const begun = tempDir();
    mkdirSync(join(begun, 'parsed'));
    const old = tempDir();
    writeFileSync(join(old, 'index.json'), '{}');
    mkdirSync(join(old, 'downloads'));
    for (const root of [join(tempDir(), 'new'), empty, begun, old]) {
      await openCache(root, () => undefined).close();
      expect(readFileSync(join(root, 'CACHEDIR.TAG'), 'utf8')).toMatch(/^Signature: 8a477f597d28d172789f06886806bc55/);
    }
  });
});
