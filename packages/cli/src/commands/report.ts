import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { exitWith, failWith, type CommandResult } from '../command-result.js';
import { loadForCommand, openPipelineCache, type PipelineFlags } from '../load.js';
import { stageOutputDir, stagesOfStep } from '../stage-output.js';

interface ReportFlags extends PipelineFlags {
  stage?: string;
  open?: boolean;
}

const REPORT_FILE = 'report.html';

/** Prints the path of an evaluate stage's report.html (the last evaluate stage unless --stage names one). */
export async function reportCommand(file: string, flags: ReportFlags): Promise<CommandResult> {
  const loaded = await loadForCommand(file, flags);
  if (!loaded.ok) return loaded;
  const pipeline = loaded.value;
  const stageId = flags.stage ?? stagesOfStep(pipeline, 'evaluate').at(-1);
  if (stageId === undefined) return failWith({ reason: 'no-report', path: pipeline.file.path, detail: 'no stage uses evaluate, so there is no report' });
  const cache = openPipelineCache(pipeline, flags, (message) => console.error(`warning: ${message}`));
  const output = await stageOutputDir(pipeline, cache, stageId, 'report').finally(() => cache.close());
  if (!output.ok) return failWith(output.failure);
  const report = join(output.dir, REPORT_FILE);
  if (!existsSync(report)) return failWith({ reason: 'no-report', path: output.dir, detail: `stage "${stageId}"'s report output has no ${REPORT_FILE}` });
  console.log(report);
  if (flags.open && !(await openInBrowser(report))) console.error(`no ${opener()} here to open it with`);
  return exitWith(0);
}

function opener(): string {
  return process.platform === 'darwin' ? 'open' : 'xdg-open';
}

/** Starts the desktop's opener and leaves it running; false when there is none. */
function openInBrowser(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(opener(), [path], { detached: true, stdio: 'ignore' });
    child.once('error', () => resolve(false));
    child.once('spawn', () => {
      child.unref();
      resolve(true);
    });
  });
}
