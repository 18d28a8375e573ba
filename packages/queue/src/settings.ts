/** The BullMQ queue every coordinator and worker of one Redis shares. */
export const QUEUE_NAME = 'headstart-stages';

/** Lock and stall settings; tests shorten them through the environment. */
export interface LockSettings {
  lockDuration: number;
  stalledInterval: number;
  maxStalledCount: number;
}

export function lockSettingsFrom(env: NodeJS.ProcessEnv = process.env): LockSettings {
  return {
    lockDuration: positiveNumber(env['HEADSTART_QUEUE_LOCK_MS'], 90_000),
    stalledInterval: positiveNumber(env['HEADSTART_QUEUE_STALLED_MS'], 30_000),
    maxStalledCount: 2,
  };
}

function positiveNumber(text: string | undefined, fallback: number): number {
  const value = Number(text);
  return text && Number.isFinite(value) && value > 0 ? value : fallback;
}
