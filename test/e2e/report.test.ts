import { chmodSync, copyFileSync, existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { REPO, Rig } from './rig.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const CHARTS = ['curves', 'confusion', 'per-class', 'roc'];

let rig: Rig;
let reportPath: string;
let browser: Browser | undefined;

let runLog: string;

/** How many test images the eval stage's log line says it got wrong. */
function misclassifiedCount(): number {
  const [, count, accuracy] = /\[eval\] test: (\d+) images, accuracy (\d\.\d{4})/.exec(runLog)!;
  return Math.round(Number(count) * (1 - Number(accuracy)));
}

/** Width and height from a PNG's IHDR chunk. */
function pngSize(file: string): { bytes: number; width: number; height: number } {
  const png = readFileSync(file);
  expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
  return { bytes: png.length, width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

beforeAll(async () => {
  rig = new Rig();
  copyFileSync(join(REPO, 'pipelines/mnist-tiny.yaml'), join(rig.dir, 'headstart.yaml'));
  const notYet = await rig.run('report');
  expect(notYet.exitCode).toBe(2);
  expect(notYet.stderr.trim()).toMatch(/^\S*headstart\.lock: stage "eval" has not run yet: run `headstart run .*--stage eval`$/);
  const run = await rig.run('run');
  expect(run.exitCode, run.stderr).toBe(0);
  runLog = run.stdout;
}, 120_000);

afterAll(async () => {
  await browser?.close();
});

describe('headstart report', () => {
  it('prints the path of the last evaluate stage\'s report.html', async () => {
    const result = await rig.run('report');
    expect(result.exitCode, result.stderr).toBe(0);
    reportPath = result.stdout.trim();
    expect(reportPath).toMatch(/report\.html$/);
    expect(existsSync(reportPath)).toBe(true);
    for (const chart of [...CHARTS, 'misclassified']) expect(pngSize(join(dirname(reportPath), `${chart}.png`)).width, chart).toBeGreaterThan(200);
    expect((await rig.run('report', '--stage', 'eval')).stdout.trim()).toBe(reportPath);
  });

  it('says in one line what is wrong with --stage, exit 2', async () => {
    const notEvaluate = await rig.run('report', '--stage', 'head');
    expect([notEvaluate.exitCode, notEvaluate.stderr.trim()]).toEqual([2, 'stage "head" has no output "report" (it has: head, history, model)']);
    const unknown = await rig.run('report', '--stage', 'evl');
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr.trim()).toBe(`${join(rig.dir, 'headstart.yaml')}: no stage "evl" (did you mean "eval"?)`);
  });

  it('--open hands the path to xdg-open, and only prints it where there is none', async () => {
    const opened = join(rig.dir, 'opened.txt');
    const bin = rig.write('bin/xdg-open', `#!/bin/sh\nprintf '%s' "$1" > '${opened}'\n`);
    chmodSync(bin, 0o755);
    const withOpener = await rig.runWith({ PATH: `${dirname(bin)}:/usr/bin:/bin` }, 'report', '--open');
    expect([withOpener.exitCode, withOpener.stdout.trim()]).toEqual([0, reportPath]);
    await vi.waitFor(() => expect(readFileSync(opened, 'utf8')).toBe(reportPath), { timeout: 10_000 });
    const without = await rig.runWith({ PATH: join(rig.dir, 'nothing-here') }, 'report', '--open');
    expect([without.exitCode, without.stdout.trim(), without.stderr.trim()]).toEqual([0, reportPath, 'no xdg-open here to open it with']);
  });

  it('shows every chart and the misclassified images in Chromium, requesting nothing', async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') problems.push(`console ${message.type()}: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('requestfailed', (request) => problems.push(`failed request: ${request.url().slice(0, 80)}`));
    const pageUrl = pathToFileURL(reportPath).href;
    page.on('request', (request) => {
      if (request.url() !== pageUrl && !request.url().startsWith('data:')) problems.push(`request: ${request.url()}`);
    });
    await page.goto(pageUrl, { waitUntil: 'load' });

    for (const chart of CHARTS) {
      const svg = page.locator(`#chart-${chart} > svg`);
      await expect.poll(() => svg.isVisible(), { timeout: 5_000 }).toBe(true);
      const box = await svg.boundingBox();
      expect(box!.width, chart).toBeGreaterThan(150);
      expect(box!.height, chart).toBeGreaterThan(150);
    }
    const images = await page.$$eval('.mistakes img', (all) => all.map((img) => ({ complete: (img as HTMLImageElement).complete, width: (img as HTMLImageElement).naturalWidth })));
    const mistakes = misclassifiedCount();
    expect(mistakes).toBeGreaterThan(0);
    expect(images).toEqual(Array.from({ length: Math.min(48, mistakes) }, () => ({ complete: true, width: 84 })));

    const screenshot = join(rig.dir, 'report-screenshot.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    const shot = pngSize(screenshot);
    expect(shot.width).toBe(1280);
    expect(shot.height).toBeGreaterThan(2000);
    expect(shot.bytes).toBeGreaterThan(100_000);
    expect(problems).toEqual([]);
  });
});
