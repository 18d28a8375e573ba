import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { keyedSecrets, redactSecrets, type Failure, type RunRecord } from '@headstart/core';
import type { ChildMessage, ChildRequest } from './job-data.js';

const CHILD = fileURLToPath(new URL('./stage-child.js', import.meta.url));
const STDERR_LINES = 20;

/** The stage itself failed (or the worker refused it): retrying elsewhere would fail the same way. */
export class StageFailed extends Error {
  override name = 'StageFailed';
  constructor(readonly failure: Failure) {
    super(failure.reason === 'stage-failed' ? failure.detail : failure.reason);
  }
}

/** A stage that failed on its own (a bug) keeps the child's last stderr lines; a user error stays one line. */
function withStderr(failure: Failure, tail: string): Failure {
  return failure.reason === 'stage-failed' && !failure.userError ? { ...failure, detail: `${failure.detail}${tail}` } : failure;
}

/**
 * Runs the request's job in a child process against the cache at its `cacheRoot`. Resolves with the record;
 * rejects with StageFailed when the step fails or is refused, and with a plain Error when the child dies (retryable).
 */
export function runInChild(request: ChildRequest, log: (line: string) => void): Promise<RunRecord> {
  const child = fork(CHILD, [], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  const stderrTail: string[] = [];
  log(`stage process ${child.pid}`);
  child.stdout!.setEncoding('utf8').on('data', (text: string) => log(text.trimEnd()));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => {
    stderrTail.push(...text.trimEnd().split('\n'));
    stderrTail.splice(0, Math.max(0, stderrTail.length - STDERR_LINES));
  });
  return new Promise((resolve, reject) => {
    let answer: ChildMessage | undefined;
    child.on('message', (message: ChildMessage) => {
      if (message.type === 'log') log(message.message);
      else answer = message;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (answer?.type === 'done') return resolve(answer.record);
      // Masked here, not on the coordinator: what the worker returns is stored in Redis.
      const tail = stderrTail.length > 0 ? `\n${redactSecrets(stderrTail.join('\n'), keyedSecrets(request.job.keyDocument, process.env))}` : '';
      if (answer?.type === 'failed') return reject(new StageFailed(withStderr(answer.failure, tail)));
      reject(new Error(`the stage's process died (${signal ?? `exit code ${code}`})${tail}`));
    });
    child.send(request);
  });
}
