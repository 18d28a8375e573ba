import type { S3RemoteCache } from '@headstart/remote';

export interface RemoteFlags {
  remote?: string;
  push?: 'always' | 'never';
}

export type OpenedRemote = { ok: true; remote: S3RemoteCache | undefined } | { ok: false; exitCode: number };

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
export async function openRemote(flags: RemoteFlags, warn: (message: string) => void, { pipelineRemote, required = false }: RemoteChoice = {}): Promise<OpenedRemote> {
  const named = flags.remote ?? (process.env[REMOTE_ENV] || undefined) ?? pipelineRemote;
  // `none` switches off a remote the pipeline file names (offline, or without credentials).
  const url = named === 'none' ? undefined : named;
  if (!url) {
    if (!required) return { ok: true, remote: undefined };
    console.error(`no remote cache: pass --remote s3://bucket/prefix, set ${REMOTE_ENV} or add remote: to the pipeline file`);
    return { ok: false, exitCode: 2 };
  }
  const { connectRemote, RemoteError } = await import('@headstart/remote');
  try {
    return { ok: true, remote: await connectRemote({ url, push: flags.push !== 'never', warn }) };
  } catch (error) {
    if (!(error instanceof RemoteError)) throw error;
    console.error(error.message);
    return { ok: false, exitCode: 2 };
  }
}

/** A remote failure in the middle of a command: one line and exit 2, like any other user-fixable error. */
export async function remoteFailureCode(error: unknown): Promise<number> {
  const { RemoteError } = await import('@headstart/remote');
  if (!(error instanceof RemoteError)) throw error;
  console.error(error.message);
  return 2;
}
