import { exitWith, failWith, type CommandResult } from '../command-result.js';
import { openPipelineCache, loadForCommand, unknownTargets } from '../load.js';
import { openRemote, remoteFailure } from '../remote-option.js';
import { planStages, warn, type TransferFlags } from './push.js';

/**
 * Downloads into the local cache every current stage result the remote has and this cache lacks, each
 * object verified by hash. Workspace outputs (a shell step's `outs`) are restored by the next `run`.
 */
export async function pullCommand(file: string, flags: TransferFlags): Promise<CommandResult> {
  const loaded = await loadForCommand(file, flags);
  if (!loaded.ok) return loaded;
  const pipeline = loaded.value;
  const badTargets = unknownTargets(pipeline, flags.stage);
  if (badTargets.length > 0) return failWith(...badTargets);
  const opened = await openRemote({ ...flags, push: 'never' }, warn, { pipelineRemote: pipeline.remote, required: true });
  if (!opened.ok) return opened;
  const remote = opened.value!;
  const cache = openPipelineCache(pipeline, flags, warn);
  try {
    const plan = await planStages(pipeline, flags, { cache, remote });
    if (!plan.ok) return plan;
    let failedPulls = 0;
    for (const outcome of plan.value.stages) {
      if (outcome.remote && outcome.record) {
        const pulled = await remote.pull(outcome.record, cache);
        console.log(pulled ? `↓ ${outcome.id}: pulled` : `✗ ${outcome.id}: not pulled (the remote copy is damaged)`);
        if (!pulled) failedPulls++;
      } else {
        console.log(outcome.status === 'cached' ? `· ${outcome.id}: already in the local cache` : `- ${outcome.id}: not on the remote`);
      }
    }
    return exitWith(failedPulls > 0 ? 1 : 0);
  } catch (error) {
    return failWith(await remoteFailure(error));
  } finally {
    remote.close();
    await cache.close();
  }
}
