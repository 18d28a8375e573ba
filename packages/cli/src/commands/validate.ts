import { displayPath } from '@headstart/core';
import { loadForCommand, type PipelineFlags } from '../load.js';

export async function validateCommand(file: string, flags: PipelineFlags): Promise<number> {
  const loaded = await loadForCommand(file, flags);
  if (!loaded.ok) return loaded.exitCode;
  console.log(`${displayPath(loaded.pipeline.file.path, process.cwd())}: ok (${loaded.pipeline.stages.size} stages)`);
  return 0;
}
