import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exitCodeOf, failureMessage, failureOf, HeadstartError, stageFailure, StepUserError, type Failure } from '../src/index.js';
import { tempDir } from './helpers.js';

/** A real error from the file system, as a step or the cache would meet it. */
function errnoError(code: string, path: string, syscall: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${syscall} '${path}'`), { code, path, syscall });
}

describe('failureOf: the one place an exception becomes a Failure', () => {
  it('keeps a HeadstartError\'s failure, and makes a StepUserError a user error inside a stage or out', () => {
    const failure: Failure = { reason: 'usage', detail: 'bad flag' };
    expect(failureOf(new HeadstartError(failure))).toBe(failure);
    expect(failureOf(new StepUserError('a.png: not a readable image'))).toEqual({ reason: 'bad-input', detail: 'a.png: not a readable image' });
    expect(failureOf(new StepUserError('no such layer'), 'head')).toEqual({ reason: 'stage-failed', stage: 'head', detail: 'no such layer', userError: true });
  });

  it('a directory we may not write is a failure naming it (a real EACCES when not root)', () => {
    const dir = join(tempDir(), 'ro');
    mkdirSync(dir, { mode: 0o555 });
    let error: unknown = errnoError('EACCES', join(dir, 'x.lock'), 'open');
    if (process.getuid?.() !== 0) {
      try {
        writeFileSync(join(dir, 'x.lock'), '');
      } catch (real) {
        error = real;
      }
    }
    const failure = failureOf(error)!;
    expect(failure).toEqual({ reason: 'no-access', path: join(dir, 'x.lock'), code: 'EACCES', syscall: 'open' });
    expect(failureMessage(failure)).toBe(`${dir}: permission denied (EACCES: cannot open x.lock)`);
    expect(exitCodeOf([failure])).toBe(2);
  });

  it('a full disk is a failure, with or without the path the write had', () => {
    expect(failureOf(errnoError('ENOSPC', '/c/objects/ab/cd', 'write'))).toEqual({ reason: 'no-space', code: 'ENOSPC', path: '/c/objects/ab/cd' });
    const pathless = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    expect(failureMessage(failureOf(pathless)!)).toBe('no space left on the device (ENOSPC); free some (`headstart gc` removes unused cache objects)');
  });

  it('a file where a directory must be (or the reverse) is a failure naming the path; EEXIST only from mkdir', () => {
    const notDir = failureOf(errnoError('ENOTDIR', '/p/file/sub', 'mkdir'))!;
    expect([failureMessage(notDir), exitCodeOf([notDir])]).toEqual(['/p/file/sub: a part of this path is a file, not a directory (ENOTDIR: cannot mkdir)', 2]);
    expect(failureMessage(failureOf(errnoError('EISDIR', '/p/dir', 'open'))!)).toBe('/p/dir: is a directory, not a file (EISDIR: cannot open)');
    expect(failureMessage(failureOf(errnoError('EEXIST', '/p/file', 'mkdir'))!)).toBe('/p/file: is a file, not a directory (EEXIST: cannot mkdir)');
    expect(failureOf(errnoError('EEXIST', '/c/x.lock', 'open'))).toBeUndefined();
  });

  it('anything else is a bug: undefined here, a stage that failed on its own in a stage', () => {
    expect(failureOf(new TypeError('x is undefined'))).toBeUndefined();
    expect(failureOf(errnoError('ENOENT', '/nowhere', 'open'))).toBeUndefined();
    expect(stageFailure('a', new TypeError('x is undefined'))).toEqual({ reason: 'stage-failed', stage: 'a', detail: 'x is undefined', userError: false });
    expect(stageFailure('a', errnoError('EROFS', '/c/x', 'mkdir'))).toMatchObject({ reason: 'no-access', code: 'EROFS' });
  });
});

describe('exitCodeOf: the one map from failures to an exit code', () => {
  const bug: Failure = { reason: 'stage-failed', stage: 'a', detail: 'exit 3', userError: false };
  const gate: Failure = { reason: 'gate-failed', stage: 'eval', detail: 'accuracy 0.5 < fail_under 0.9' };
  it('2 for any user error, else 1 for a failed stage, else 3 for a failed gate', () => {
    expect(exitCodeOf([bug, { reason: 'no-remote' }])).toBe(2);
    expect(exitCodeOf([gate, bug])).toBe(1);
    expect(exitCodeOf([gate])).toBe(3);
    expect(exitCodeOf([])).toBe(0);
  });
});
