import { displayPath } from '@headstart/core';
import { exitWith, type CommandResult } from '../command-result.js';
import { loadForCommand, type PipelineFlags } from '../load.js';

export async function validateCommand(file: string, flags: PipelineFlags): Promise<CommandResult> {
  const loaded = await loadForCommand(file, flags);
  if (!loaded.ok) return loaded;
  console.log(`${displayPath(loaded.value.file.path, process.cwd())}: ok (${loaded.value.stages.size} stages)`);
  return exitWith(0);
}
