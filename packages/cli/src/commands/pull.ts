import { openPipelineCache, loadForCommand, printFailures, unknownTargets } from '../load.js';
import { openRemote, remoteFailureCode } from '../remote-option.js';
import { planStages, warn, type TransferFlags } from './push.js';

/**
 * Downloads into the local cache every current stage result the remote has and this cache lacks, each
 * object verified by hash. Workspace outputs (a shell step's `outs`) are restored by the next `run`.
 */
export async function pullCommand(file: string, flags: TransferFlags): Promise<number> {
  const loaded = await loadForCommand(file, flags);
  if (!loaded.ok) return loaded.exitCode;
  const { pipeline } = loaded;
  const badTargets = unknownTargets(pipeline, flags.stage);
  if (badTargets.length > 0) return printFailures(badTargets);
  const opened = await openRemote({ ...flags, push: 'never' }, warn, { pipelineRemote: pipeline.remote, required: true });
  if (!opened.ok) return opened.exitCode;
  const remote = opened.remote!;
  const cache = openPipelineCache(pipeline, flags, warn);
  try {
    const plan = await planStages(pipeline, flags, { cache, remote });
    if (plan.failed) return plan.failed;
    let failedPulls = 0;
    for (const outcome of plan.summary.stages) {
      if (outcome.remote && outcome.record) {
        const pulled = await remote.pull(outcome.record, cache);
        console.log(pulled ? `↓ ${outcome.id}: pulled` : `✗ ${outcome.id}: not pulled (the remote copy is damaged)`);
        if (!pulled) failedPulls++;
      } else {
        console.log(outcome.status === 'cached' ? `· ${outcome.id}: already in the local cache` : `- ${outcome.id}: not on the remote`);
      }
    }
    return failedPulls > 0 ? 1 : 0;
  } catch (error) {
    return await remoteFailureCode(error);
  } finally {
    remote.close();
    await cache.close();
  }
}
