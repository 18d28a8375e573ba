import type { Failure, Result } from '@headstart/core';
import type { S3RemoteCache } from '@headstart/remote';

export interface RemoteFlags {
  remote?: string;
  push?: 'always' | 'never';
}

const REMOTE_ENV = 'HEADSTART_REMOTE';

interface RemoteChoice {
  /** The pipeline file's `remote:`, used when neither the flag nor the environment names one. */
  pipelineRemote?: string | undefined;
  required?: boolean;
}

/**
 * The remote cache named by `--remote`, $HEADSTART_REMOTE or the pipeline's `remote:` (in that order),
 * checked usable before the local cache is opened. Its package (and the AWS SDK behind it) is loaded only
 * when a remote is named.
 */
export async function openRemote(flags: RemoteFlags, warn: (message: string) => void, { pipelineRemote, required = false }: RemoteChoice = {}): Promise<Result<S3RemoteCache | undefined, Failure[]>> {
  const named = flags.remote ?? (process.env[REMOTE_ENV] || undefined) ?? pipelineRemote;
  // `none` switches off a remote the pipeline file names (offline, or without credentials).
  const url = named === 'none' ? undefined : named;
  if (!url) return required ? { ok: false, error: [{ reason: 'no-remote' }] } : { ok: true, value: undefined };
  const { connectRemote } = await import('@headstart/remote');
  try {
    return { ok: true, value: await connectRemote({ url, push: flags.push !== 'never', warn }) };
  } catch (error) {
    return { ok: false, error: [await remoteFailure(error)] };
  }
}

/** A remote that fails in the middle of a command: a user-fixable failure, like one that fails to open. */
export async function remoteFailure(error: unknown): Promise<Failure> {
  const { RemoteError } = await import('@headstart/remote');
  if (!(error instanceof RemoteError)) throw error;
  return { reason: 'remote-unavailable', detail: error.message };
}
