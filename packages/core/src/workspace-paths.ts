import { lstatSync, realpathSync } from 'node:fs';
import { copyFile, lstat, mkdir, readdir, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { StepUserError } from './failure.js';
import { lockfilePath } from './lockfile.js';
import type { StepDefinition, WorkspacePath } from './step.js';

/**
 * The workspace boundary: a pipeline may only name, and a step may only delete, write or restore, paths
 * inside the pipeline file's directory, never that directory itself, and never the files headstart
 * keeps there (the pipeline file, its lock file, the cache).
 */
export interface WorkspaceBoundary {
  /** The pipeline's directory, as given (messages) and after realpath (comparisons). */
  root: string;
  realRoot: string;
  /** Paths no step may touch, after realpath of their deepest existing ancestor. */
  reserved: readonly { realPath: string; what: string }[];
}

export function workspaceBoundary(pipelineFile: string, cacheDir: string): WorkspaceBoundary {
  const root = dirname(pipelineFile);
  return boundaryOf(root, [
    { path: pipelineFile, what: 'the pipeline file' },
    { path: lockfilePath({ file: { path: pipelineFile, text: '' }, dir: root }), what: 'its lock file' },
    { path: cacheDir, what: 'the cache directory' },
  ]);
}

/** A boundary for a step at run time, which knows its working directory and perhaps the cache's. */
export function boundaryOf(root: string, reserved: readonly { path: string; what: string }[] = []): WorkspaceBoundary {
  const realRoot = physicalPath(resolve(root)) ?? resolve(root);
  const reservedPaths = reserved.flatMap(({ path, what }) => {
    const realPath = physicalPath(resolve(path));
    return realPath ? [{ realPath, what }] : [];
  });
  return { root, realRoot, reserved: reservedPaths };
}

/** Why `path` (relative to the pipeline's directory) is not a safe workspace path; undefined when it is. */
export function workspacePathProblem(boundary: WorkspaceBoundary, path: string): string | undefined {
  if (isAbsolute(path)) return `"${path}" is an absolute path; use a path relative to the pipeline's directory`;
  // Not join(): it would fold `link/..` before the link is followed.
  const realPath = physicalPath(`${boundary.realRoot}${sep}${path}`);
  if (realPath === undefined) return `"${path}" goes through a symbolic link that cannot be followed`;
  if (realPath === boundary.realRoot) return `"${path}" is the pipeline's directory itself`;
  if (!isInside(realPath, boundary.realRoot)) {
    const lexicallyInside = isInside(resolve(boundary.realRoot, path), boundary.realRoot);
    return `"${path}" is outside the pipeline's directory${lexicallyInside ? ' (through a symbolic link)' : ''}`;
  }
  const overlap = boundary.reserved.find((reserved) => realPath === reserved.realPath || isInside(realPath, reserved.realPath) || isInside(reserved.realPath, realPath));
  return overlap && `"${path}" overlaps ${overlap.what} (${relative(boundary.realRoot, overlap.realPath) || '.'})`;
}

/** Every unsafe path a step declares for these parameters, with where `with:` holds it. */
export function unsafeWorkspacePaths<P>(step: StepDefinition<P>, params: P, boundary: WorkspaceBoundary): (WorkspacePath & { problem: string })[] {
  return (step.workspacePaths?.(params) ?? []).flatMap((declared) => {
    const problem = workspacePathProblem(boundary, declared.path);
    return problem ? [{ ...declared, problem }] : [];
  });
}

/** Throws a StepUserError when `path` is unsafe: for steps, right before they delete or write it. */
export function assertInsideWorkspace(boundary: WorkspaceBoundary, path: string): void {
  const problem = workspacePathProblem(boundary, path);
  if (problem) throw new StepUserError(problem);
}

/**
 * The path with every symbolic link resolved, component by component, as far as it exists (the rest is
 * appended as written, so a `..` after a link goes up from the link's target, as the kernel would).
 * Undefined when a component is a link that cannot be followed (dangling, or a loop).
 */
function physicalPath(absolute: string): string | undefined {
  let current: string = sep;
  for (const part of absolute.split(sep)) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      current = dirname(current);
      continue;
    }
    const next = join(current, part);
    try {
      current = realpathSync(next);
    } catch {
      if (isSymbolicLink(next)) return undefined;
      current = next;
    }
  }
  return current;
}

function isSymbolicLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Whether `path` is strictly below `dir` (both absolute and normalized). */
export function isInside(path: string, dir: string): boolean {
  return path.startsWith(dir.endsWith(sep) ? dir : dir + sep);
}

/**
 * Copies a file or folder like `cp -r`, except that a symbolic link is replaced by a copy of what it
 * points to, which must lie strictly inside `within` (after realpath). Nothing is copied as a link, and
 * nothing outside `within` is ever read through one.
 */
export async function copyResolvingLinks(source: string, destination: string, within: string, withinName = within): Promise<void> {
  const realWithin = await realpath(within);
  await copyEntry(source, destination, { realWithin, within, withinName }, new Set());
}

interface CopyBounds {
  realWithin: string;
  within: string;
  withinName: string;
}

async function copyEntry(source: string, destination: string, bounds: CopyBounds, ancestors: ReadonlySet<string>): Promise<void> {
  const shown = () => relative(bounds.within, source) || source;
  let from = source;
  let stat = await lstat(source);
  if (stat.isSymbolicLink()) {
    const target = await realpath(source).catch(() => undefined);
    if (target === undefined) throw new StepUserError(`${shown()} is a symbolic link that cannot be followed`);
    if (!isInside(target, bounds.realWithin)) throw new StepUserError(`${shown()} is a symbolic link to ${target}, outside ${bounds.withinName}`);
    from = target;
    stat = await lstat(target);
  }
  if (stat.isFile()) {
    await copyFile(from, destination);
  } else if (stat.isDirectory()) {
    const real = await realpath(from);
    if (ancestors.has(real)) throw new StepUserError(`${shown()} is a symbolic link to a folder that contains it`);
    await mkdir(destination, { recursive: true });
    const below = new Set(ancestors).add(real);
    for (const name of await readdir(from)) await copyEntry(join(source, name), join(destination, name), bounds, below);
  } else {
    throw new StepUserError(`${shown()} is neither a file nor a folder`);
  }
}
