import { execFile } from 'node:child_process';
import { relative } from 'node:path';

export interface GitState {
  commit: string;
  /** Tracked files differ from the commit (untracked files do not count). */
  dirty: boolean;
}

function git(cwd: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolvePromise) => {
    execFile('git', args, { cwd, maxBuffer: 64 * 1024 * 1024 }, (error, stdout) => resolvePromise(error ? undefined : stdout));
  });
}

/** The commit checked out at `dir` and whether the work tree has changes; undefined outside a repository. */
export async function gitState(dir: string): Promise<GitState | undefined> {
  const [commit, status] = await Promise.all([git(dir, ['rev-parse', 'HEAD']), git(dir, ['status', '--porcelain', '--untracked-files=no'])]);
  if (commit === undefined || status === undefined) return undefined;
  return { commit: commit.trim(), dirty: status.trim().length > 0 };
}

export type RevisionFile = { ok: true; text: string } | { ok: false; missing: 'repository' | 'revision' | 'file'; why: string };

/** A file's text as committed at `revision` (a commit, branch or tag): what `git show REV:path` prints. */
export async function fileAtRevision(path: string, revision: string): Promise<RevisionFile> {
  const cwd = path.slice(0, path.lastIndexOf('/')) || '/';
  const root = await git(cwd, ['rev-parse', '--show-toplevel']);
  if (root === undefined) return { ok: false, missing: 'repository', why: `${cwd} is not in a git repository` };
  if ((await git(cwd, ['rev-parse', '--verify', '--quiet', `${revision}^{commit}`])) === undefined) return { ok: false, missing: 'revision', why: `no git revision "${revision}"` };
  const inRepo = relative(root.trim(), path);
  const text = await git(cwd, ['show', `${revision}:${inRepo}`]);
  return text === undefined ? { ok: false, missing: 'file', why: `${inRepo} does not exist at ${revision}` } : { ok: true, text };
}
