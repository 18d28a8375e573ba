import cliProgress from 'cli-progress';

/**
 * One bar per running stage (cli-progress), with count, throughput and ETA, on stderr. Lines printed
 * meanwhile go above the bars.
 */
export function createProgressBars() {
  const multi = new cliProgress.MultiBar(
    {
      stream: process.stderr,
      format: '[{stage}] {bar} {value}/{total} {unit} | {rate}/s | ETA {eta_formatted}',
      hideCursor: true,
      clearOnComplete: true,
      barsize: 24,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_grey,
  );
  const bars = new Map<string, { bar: cliProgress.SingleBar; started: number }>();
  return {
    update(stage: string, done: number, total: number | undefined, unit = '') {
      let entry = bars.get(stage);
      if (!entry) {
        entry = { bar: multi.create(total ?? 0, 0, { stage, unit, rate: '0' }), started: performance.now() };
        bars.set(stage, entry);
      }
      const seconds = (performance.now() - entry.started) / 1000;
      if (total !== undefined) entry.bar.setTotal(total);
      entry.bar.update(done, { stage, unit, rate: seconds > 0 ? (done / seconds).toFixed(1) : '0' });
    },
    finish(stage: string) {
      const entry = bars.get(stage);
      if (!entry) return;
      multi.remove(entry.bar);
      bars.delete(stage);
      if (bars.size === 0) multi.stop();
    },
    log(stream: NodeJS.WriteStream, text: string) {
      if (bars.size === 0) stream.write(`${text}\n`);
      else multi.log(`${text}\n`);
    },
  };
}
