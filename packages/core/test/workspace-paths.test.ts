import { chmodSync, linkSync, lstatSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { boundaryOf, ingestDirectory, materialize, openCache, workspacePathProblem } from '../src/index.js';
import { workspaceBoundary } from '../src/workspace-paths.js';
import { tempDir } from './helpers.js';

describe('workspace paths', () => {
  function project() {
    const root = tempDir();
    mkdirSync(join(root, 'project', 'data'), { recursive: true });
    mkdirSync(join(root, 'outside'));
    writeFileSync(join(root, 'project', 'headstart.yaml'), '');
    const dir = join(root, 'project');
    return { root, dir, boundary: workspaceBoundary(join(dir, 'headstart.yaml'), join(dir, '.headstart', 'cache')) };
  }

  it('accepts paths inside the project, existing or not', () => {
    const { boundary } = project();
    for (const path of ['out.txt', 'data', 'data/new/deep.txt', './data/../x', 'missing/../y']) expect(workspacePathProblem(boundary, path)).toBeUndefined();
  });

  it('refuses absolute paths, escapes, the directory itself and headstart\'s own files', () => {
    const { dir, boundary } = project();
    expect(workspacePathProblem(boundary, join(dir, 'x'))).toMatch(/is an absolute path/);
    expect(workspacePathProblem(boundary, '../outside')).toBe('"../outside" is outside the pipeline\'s directory');
    expect(workspacePathProblem(boundary, 'missing/../../outside')).toMatch(/is outside/);
    expect(workspacePathProblem(boundary, '.')).toBe('"." is the pipeline\'s directory itself');
    expect(workspacePathProblem(boundary, '')).toMatch(/directory itself/);
    expect(workspacePathProblem(boundary, 'data/..')).toMatch(/directory itself/);
    expect(workspacePathProblem(boundary, 'headstart.yaml')).toMatch(/overlaps the pipeline file/);
    expect(workspacePathProblem(boundary, 'headstart.lock')).toMatch(/overlaps its lock file/);
    expect(workspacePathProblem(boundary, '.headstart')).toMatch(/overlaps the cache directory/);
    expect(workspacePathProblem(boundary, '.headstart/cache/objects/ab')).toMatch(/overlaps the cache directory/);
  });

  it('follows links: through a linked folder, after `..` from a link, and a dangling link', () => {
    const { root, dir, boundary } = project();
    symlinkSync(join(root, 'outside'), join(dir, 'away'));
    symlinkSync('data', join(dir, 'near'));
    mkdirSync(join(root, 'outside', 'sub'));
    symlinkSync(join(root, 'outside', 'sub'), join(dir, 'data', 'deep'));
    symlinkSync(join(root, 'nowhere'), join(dir, 'dangling'));
    expect(workspacePathProblem(boundary, 'away/x')).toBe('"away/x" is outside the pipeline\'s directory (through a symbolic link)');
    expect(workspacePathProblem(boundary, 'near/x')).toBeUndefined();
    // `data/deep/..` is `outside/`, as the kernel sees it, not `data/`.
    expect(workspacePathProblem(boundary, 'data/deep/../x')).toMatch(/is outside/);
    expect(workspacePathProblem(boundary, 'dangling')).toMatch(/symbolic link that cannot be followed/);
  });

  it('a boundary built from a linked project directory compares real paths', () => {
    const { root, dir } = project();
    symlinkSync(dir, join(root, 'alias'));
    const boundary = boundaryOf(join(root, 'alias'));
    expect(workspacePathProblem(boundary, 'data/x')).toBeUndefined();
    expect(workspacePathProblem(boundary, '../outside')).toMatch(/is outside/);
  });
});

describe('storing outputs that are symbolic links', () => {
  it('stores a link inside the output directory as bytes, and never chmods a target', async () => {
    const root = tempDir();
    const cache = openCache(join(root, 'cache'), () => undefined);
    const output = join(root, 'out');
    mkdirSync(join(output, 'sub'), { recursive: true });
    writeFileSync(join(output, 'a.txt'), 'alpha');
    symlinkSync('../a.txt', join(output, 'sub', 'b.txt'));
    symlinkSync('sub', join(output, 'alias'));
    const ref = await ingestDirectory(output, cache.store, cache.hasher);
    const tree = await materialize(ref, cache.store);
    expect(readFileSync(join(tree, 'sub', 'b.txt'), 'utf8')).toBe('alpha');
    expect(readFileSync(join(tree, 'alias', 'b.txt'), 'utf8')).toBe('alpha');
    expect(lstatSync(join(tree, 'alias')).isDirectory()).toBe(true);
  });

  it('refuses a link that points outside the output directory, leaving its target as it was', async () => {
    const root = tempDir();
    const cache = openCache(join(root, 'cache'), () => undefined);
    const secret = join(root, 'secret.txt');
    writeFileSync(secret, 'secret');
    chmodSync(secret, 0o644);
    const output = join(root, 'out');
    mkdirSync(output);
    symlinkSync(secret, join(output, 'host'));
    await expect(ingestDirectory(output, cache.store, cache.hasher)).rejects.toThrow(`host is a symbolic link to ${secret}, outside its output directory`);
    expect(statSync(secret).mode & 0o777).toBe(0o644);
  });

  it('stores a copy of a file hard-linked from outside (ln data.txt out/), leaving that file writable and its own', async () => {
    const root = tempDir();
    const cache = openCache(join(root, 'cache'), () => undefined);
    const data = join(root, 'data.txt');
    writeFileSync(data, 'data');
    chmodSync(data, 0o644);
    const output = join(root, 'out');
    mkdirSync(output);
    linkSync(data, join(output, 'data.txt'));
    const ref = await ingestDirectory(output, cache.store, cache.hasher);
    const stored = join(await materialize(ref, cache.store), 'data.txt');
    expect(readFileSync(stored, 'utf8')).toBe('data');
    expect(statSync(data).mode & 0o777).toBe(0o644);
    expect(statSync(data).nlink).toBe(1);
    expect(statSync(stored).ino).not.toBe(statSync(data).ino);
  });

  it('refuses a link loop', async () => {
    const root = tempDir();
    const cache = openCache(join(root, 'cache'), () => undefined);
    const output = join(root, 'out');
    mkdirSync(join(output, 'sub'), { recursive: true });
    symlinkSync('..', join(output, 'sub', 'up'));
    await expect(ingestDirectory(output, cache.store, cache.hasher)).rejects.toThrow(/symbolic link/);
  });
});
