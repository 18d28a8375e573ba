import { displayPath } from '@headstart/core';
import { initPipeline, type InitTemplate } from '@headstart/steps';
import { exitWith, type CommandResult } from '../command-result.js';

/** `headstart init [DIR] [--template image-folder] [--data PATH] [--fine-tune]`: a headstart.yaml for an image folder. */
export async function initCommand(dir: string, flags: { template: InitTemplate; data?: string; fineTune?: boolean }): Promise<CommandResult> {
  const show = (path: string) => displayPath(path, process.cwd());
  const summary = await initPipeline({ dir, template: flags.template, ...(flags.data ? { data: flags.data } : {}), fineTune: flags.fineTune === true, show });
  const layout = summary.splits.length > 0 ? `${summary.splits.join('/')} folders` : 'one folder per class';
  console.log(`${show(summary.file)}: ${summary.classes.length} classes (${summary.classes.slice(0, 10).join(', ')}${summary.classes.length > 10 ? ', …' : ''}), ${summary.images} images in ${summary.data} (${layout})`);
  console.log(`next: headstart run ${show(summary.file)}`);
  return exitWith(0);
}
