import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadForCommand, openPipelineCache, type PipelineFlags } from '../load.js';
import { stageOutputDir, stagesOfStep } from '../stage-output.js';

interface ReportFlags extends PipelineFlags {
  stage?: string;
  open?: boolean;
}

const REPORT_FILE = 'report.html';

/** Prints the path of an evaluate stage's report.html (the last evaluate stage unless --stage names one). */
export async function reportCommand(file: string, flags: ReportFlags): Promise<number> {
  const loaded = await loadForCommand(file, flags);
  if (!loaded.ok) return loaded.exitCode;
  const { pipeline } = loaded;
  const stageId = flags.stage ?? stagesOfStep(pipeline, 'evaluate').at(-1);
  if (stageId === undefined) {
    console.error(`${pipeline.file.path}: no stage uses evaluate, so there is no report`);
    return 2;
  }
  const cache = openPipelineCache(pipeline, flags, (message) => console.error(message));
  const output = await stageOutputDir(pipeline, cache, stageId, 'report').finally(() => cache.close());
  if (!output.ok) {
    console.error(output.message);
    return 2;
  }
  const report = join(output.dir, REPORT_FILE);
  if (!existsSync(report)) {
    console.error(`stage "${stageId}"'s report output has no ${REPORT_FILE}`);
    return 2;
  }
  console.log(report);
  if (flags.open && !(await openInBrowser(report))) console.error(`no ${opener()} here to open it with`);
  return 0;
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
