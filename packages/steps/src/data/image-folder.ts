import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { StepUserError } from '@headstart/core';
import type { Split } from './dataset.js';
import { IMAGE_EXTENSIONS, isImageFile } from './image.js';

/** An image found by a source, before it is checked. */
export interface FoundImage {
  /** Absolute path. */
  file: string;
  label: number;
  split: Split | null;
  /** Where it was listed, for messages ("data/labels.csv:12"). */
  listedAt?: string;
}

export interface FoundImages {
  classes: string[];
  images: FoundImage[];
  /** Files that are not images (by extension) or lie outside class folders. */
  ignoredFiles: number;
}

/** Folder names that mark predefined splits (`path/train/<class>/…`). */
const SPLIT_FOLDERS: Readonly<Record<string, Split>> = { train: 'train', val: 'val', validation: 'val', test: 'test' };

const EXTENSION_LIST = [...IMAGE_EXTENSIONS].join(', ');

/**
 * A folder with one subfolder per class, like Keras's flow_from_directory (images in folders nested in a
 * class folder belong to that class), or with train/, val/ (or validation/), test/ folders each laid out
 * so. Classes are the folder names in code-point order; hidden files and folders are ignored.
 * `show` turns an absolute path into the one messages name.
 */
export async function scanImageFolder(root: string, show: (path: string) => string): Promise<FoundImages> {
  const top = await listFolder(root, show);
  const subfolders = top.folders;
  if (subfolders.length === 0) throw new StepUserError(`${show(root)}: no class folders (expected ${show(root)}/<class>/<image>)`);
  const splitFolders = subfolders.filter((name) => name in SPLIT_FOLDERS);
  if (splitFolders.length > 0 && splitFolders.length < subfolders.length) {
    const others = subfolders.filter((name) => !(name in SPLIT_FOLDERS));
    throw new StepUserError(`${show(root)}: mixes split folders (${splitFolders.join(', ')}) with class folders (${others.join(', ')}); use either <class>/ or train|val|test/<class>/ folders`);
  }
  const layout: [string, Split | null][] = splitFolders.length > 0 ? splitFolders.map((name) => [join(root, name), SPLIT_FOLDERS[name]!]) : [[root, null]];
  const byClass: { className: string; split: Split | null; files: string[] }[] = [];
  let ignoredFiles = splitFolders.length > 0 ? top.files : 0;
  for (const [folder, split] of layout) {
    const classFolders = split === null ? top : await listFolder(folder, show);
    if (split !== null && classFolders.folders.length === 0) throw new StepUserError(`${show(folder)}: no class folders in this split folder`);
    ignoredFiles += classFolders.files;
    for (const className of classFolders.folders) {
      const found = await imagesUnder(join(folder, className));
      if (found.images.length === 0) throw new StepUserError(`${show(join(folder, className))}: no images (${EXTENSION_LIST}) in this class folder`);
      ignoredFiles += found.ignored;
      byClass.push({ className, split, files: found.images });
    }
  }
  const classes = [...new Set(byClass.map((c) => c.className))].sort(compareCodePoints);
  if (classes.length < 2) throw new StepUserError(`${show(root)}: only one class (${classes[0]}); a classifier needs at least two class folders`);
  const images = byClass.flatMap(({ className, split, files }) => files.map((file) => ({ file, label: classes.indexOf(className), split })));
  return { classes, images: images.sort((a, b) => compareCodePoints(a.file, b.file)), ignoredFiles };
}

export function compareCodePoints(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function listFolder(folder: string, show: (path: string) => string): Promise<{ folders: string[]; files: number }> {
  let entries: Dirent[];
  try {
    entries = await readdir(folder, { withFileTypes: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new StepUserError(`${show(folder)}: folder not found`);
    if (code === 'ENOTDIR') throw new StepUserError(`${show(folder)}: not a folder`);
    throw error;
  }
  const folders: string[] = [];
  let files = 0;
  for (const entry of visible(entries)) {
    if (await isFolder(folder, entry)) folders.push(entry.name);
    else files++;
  }
  return { folders: folders.sort(compareCodePoints), files };
}

/** Image files anywhere under `folder`, and how many other files there are. */
async function imagesUnder(folder: string): Promise<{ images: string[]; ignored: number }> {
  const images: string[] = [];
  let ignored = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const entry of visible(await readdir(dir, { withFileTypes: true }))) {
      const path = join(dir, entry.name);
      if (await isFolder(dir, entry)) await walk(path);
      else if (isImageFile(entry.name)) images.push(path);
      else ignored++;
    }
  };
  await walk(folder);
  return { images, ignored };
}

function visible(entries: Dirent[]): Dirent[] {
  return entries.filter((entry) => !entry.name.startsWith('.'));
}

async function isFolder(parent: string, entry: Dirent): Promise<boolean> {
  if (entry.isDirectory()) return true;
  if (!entry.isSymbolicLink()) return false;
  return (await stat(join(parent, entry.name)).catch(() => undefined))?.isDirectory() ?? false;
}
