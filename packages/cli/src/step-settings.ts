import type { StepSettings } from '@headstart/core';

const BACKEND_ENV = 'HEADSTART_BACKEND';
const THREADS_ENV = 'HEADSTART_WORKERS';

export interface StepSettingFlags {
  backend?: string;
  workers?: number;
}

/**
 * The steps' `ctx.settings`: `--backend` and `--workers`, else the user's defaults in $HEADSTART_BACKEND and
 * $HEADSTART_WORKERS. The one place those variables are read; the steps read only `ctx.settings`.
 */
export function stepSettings(flags: StepSettingFlags, env: Readonly<Record<string, string | undefined>> = process.env): StepSettings {
  const backend = flags.backend || env[BACKEND_ENV] || undefined;
  const threads = flags.workers ?? threadsFrom(env[THREADS_ENV]);
  return { ...(backend !== undefined ? { backend } : {}), ...(threads !== undefined ? { threads } : {}) };
}

/** Unset is "one per core"; anything else that is not a count of 2 or more means one thread, as the steps take it. */
function threadsFrom(value: string | undefined): number | undefined {
  return value === undefined ? undefined : Number(value);
}
