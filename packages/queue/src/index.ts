// BullMQ and ioredis load only when a queue command runs (the CLI imports this package lazily).
export { QueueStageRunner } from './queue-runner.js';
export { startWorker } from './worker.js';
export type { StageWorker, WorkerOptions } from './worker.js';
export { checkRedis } from './redis.js';
export { lockSettingsFrom, QUEUE_NAME } from './settings.js';
export type { LockSettings } from './settings.js';
export type { QueuedStage, StageResult } from './job-data.js';
