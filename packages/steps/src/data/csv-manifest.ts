import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { StepUserError } from '@headstart/core';
import { parse } from 'csv-parse/sync';
import type { Split } from './dataset.js';
import type { FoundImage, FoundImages } from './image-folder.js';
import { compareCodePoints } from './image-folder.js';

/**
 * A CSV file listing images (paths relative to the CSV's folder) with their labels and, optionally,
 * their splits. The first row names the columns.
 */

export interface CsvColumns {
  path: string;
  label: string;
  split?: string;
}

interface CsvRow {
  line: number;
  path: string;
  label: string;
  split: string;
}

const SPLIT_VALUES: Readonly<Record<string, Split | null>> = { train: 'train', val: 'val', validation: 'val', test: 'test', '': null };

export async function readCsvDataset(csvFile: string, columns: CsvColumns, show: (path: string) => string): Promise<FoundImages> {
  const text = await readFile(csvFile, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw error.code === 'ENOENT' ? new StepUserError(`${show(csvFile)}: file not found`) : error;
  });
  const rows = parseRows(text, columns, show(csvFile));
  const classes = sortClasses([...new Set(rows.map((row) => row.label))]);
  if (classes.length < 2) throw new StepUserError(`${show(csvFile)}: only one class (${classes[0]}); a classifier needs at least two`);
  const images: FoundImage[] = rows.map((row) => ({
    file: resolve(dirname(csvFile), row.path),
    label: classes.indexOf(row.label),
    split: splitOf(row, show(csvFile)),
    listedAt: `${show(csvFile)}:${row.line}`,
  }));
  return { classes, images, ignoredFiles: 0 };
}

/**
 * What a csv dataset's key depends on, from the step's parameters alone (the engine asks before the
 * stage runs, without a working directory): the CSV's folder, which holds the CSV and usually its
 * images; or only the CSV when it lies in the pipeline's own folder, which holds the cache itself.
 * Images elsewhere are declared with load-data's `deps:`.
 */
export function csvDependencies(csvPath: string): string[] {
  const folder = dirname(csvPath);
  return folder === '.' || folder === '' ? [csvPath] : [folder];
}

function parseRows(text: string, columns: CsvColumns, name: string): CsvRow[] {
  let records: { record: string[]; info: { lines: number } }[];
  try {
    records = parse(text, { info: true, skip_empty_lines: true, trim: true, bom: true }) as unknown as typeof records;
  } catch (error) {
    throw new StepUserError(`${name}: ${(error as Error).message}`);
  }
  const [header, ...body] = records;
  if (!header) throw new StepUserError(`${name}: the file is empty`);
  const column = (wanted: string | undefined) => {
    if (wanted === undefined) return undefined;
    const at = header.record.indexOf(wanted);
    if (at < 0) throw new StepUserError(`${name}: no "${wanted}" column (the header has ${header.record.map((c) => `"${c}"`).join(', ')})`);
    return at;
  };
  const [pathAt, labelAt, splitAt] = [column(columns.path)!, column(columns.label)!, column(columns.split)];
  if (body.length === 0) throw new StepUserError(`${name}: no rows below the header`);
  return body.map(({ record, info }) => {
    const row = { line: info.lines, path: record[pathAt] ?? '', label: record[labelAt] ?? '', split: splitAt === undefined ? '' : (record[splitAt] ?? '') };
    if (row.path === '') throw new StepUserError(`${name}:${row.line}: empty "${columns.path}"`);
    if (row.label === '') throw new StepUserError(`${name}:${row.line}: empty "${columns.label}"`);
    return row;
  });
}

function splitOf(row: CsvRow, name: string): Split | null {
  const split = SPLIT_VALUES[row.split.toLowerCase()];
  if (split === undefined) throw new StepUserError(`${name}:${row.line}: split "${row.split}" is not train, val, test or empty`);
  return split;
}

/** Code-point order, or numeric order when every label is a whole number (so "10" comes after "9"). */
function sortClasses(labels: string[]): string[] {
  if (labels.every((label) => /^\d+$/.test(label))) return labels.sort((a, b) => Number(a) - Number(b) || compareCodePoints(a, b));
  return labels.sort(compareCodePoints);
}
