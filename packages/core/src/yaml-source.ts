import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type * as Yaml from 'yaml';
import type { Document, Node } from 'yaml';
import type { Failure, Result, SourceFile, SourceRange } from './failure.js';
import { fail, ok } from './failure.js';
import { writeFileAtomic } from './util/atomic-write.js';
import { canonicalJson } from './util/canonical-json.js';
import { sha256 } from './util/digest.js';

export type YamlPath = readonly (string | number)[];

export interface ParsedYaml {
  file: SourceFile;
  value: unknown;
  /** True when the value came from a file with this exact text that passed validation before. */
  remembered: boolean;
  /** The YAML document with source positions, parsed on first use (only errors need it). */
  document(): Document;
}

const require = createRequire(import.meta.url);
/** Loading and running the `yaml` parser is a third of a fully cached run, so it is loaded on demand. */
export const yaml = (): typeof Yaml => require('yaml') as typeof Yaml;

export async function readSourceFile(path: string): Promise<Result<SourceFile>> {
  try {
    return ok({ path, text: await readFile(path, 'utf8') });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const detail = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : String(error);
    return fail([{ reason: 'missing-file', path, detail }]);
  }
}

function parseDocument(text: string): Document {
  // uniqueKeys off: duplicate stage names get a message of our own, at the second name.
  return yaml().parseDocument(text, { uniqueKeys: false, prettyErrors: false });
}

/**
 * Parses a YAML file. With `cacheDir`, a file whose exact text already passed validation is read back
 * from the JSON value stored then (see `rememberParsed`), without running the YAML parser.
 */
export function parseYaml(file: SourceFile, cacheDir?: string): Result<ParsedYaml> {
  const remembered = cacheDir ? rememberedPath(cacheDir, file) : undefined;
  if (remembered && existsSync(remembered)) {
    try {
      return ok(lazyDocument(file, JSON.parse(readFileSync(remembered, 'utf8')) as unknown));
    } catch {
      // unreadable: parse the YAML again
    }
  }
  const doc = parseDocument(file.text);
  const errors: Failure[] = doc.errors.map((error) => ({
    reason: 'invalid-yaml',
    at: { file, offset: error.pos[0], length: Math.max(1, error.pos[1] - error.pos[0]) },
    detail: error.message.split('\n')[0] ?? error.message,
  }));
  if (errors.length > 0) return fail(errors);
  return ok({ file, value: doc.toJS({ maxAliasCount: 1000 }), remembered: false, document: () => doc });
}

function lazyDocument(file: SourceFile, value: unknown): ParsedYaml {
  let doc: Document | undefined;
  return { file, value, remembered: true, document: () => (doc ??= parseDocument(file.text)) };
}

function rememberedPath(cacheDir: string, file: SourceFile): string {
  return join(cacheDir, 'parsed', `${sha256(file.text)}.json`);
}

/** Stores the value of a file that passed validation, if JSON represents it exactly. */
export async function rememberParsed(parsed: ParsedYaml, cacheDir: string): Promise<void> {
  const path = rememberedPath(cacheDir, parsed.file);
  const json = JSON.stringify(parsed.value);
  if (existsSync(path) || canonicalJson(JSON.parse(json)) !== canonicalJson(parsed.value)) return;
  mkdirSync(join(cacheDir, 'parsed'), { recursive: true });
  await writeFileAtomic(path, json).catch(() => undefined);
}

/**
 * The source range of the node at `path` (its key when `part` is 'key'), or of the deepest ancestor that
 * exists when the path goes further than the file (a value that came from a default or an override).
 */
export function locate(parsed: ParsedYaml, path: YamlPath, part: 'key' | 'value' = 'value'): SourceRange {
  let node: unknown = parsed.document().contents;
  let best: Node | undefined = node as Node | undefined;
  for (let i = 0; i < path.length; i++) {
    const segment = path[i]!;
    const isLast = i === path.length - 1;
    if (yaml().isMap(node)) {
      const { isPair, isScalar } = yaml();
      const pair = node.items.find((item) => isPair(item) && isScalar(item.key) && String(item.key.value) === String(segment));
      if (!pair) break;
      if (isLast && part === 'key') {
        best = pair.key as Node;
        break;
      }
      node = pair.value;
      best = (pair.value as Node | null) ?? (pair.key as Node);
    } else if (yaml().isSeq(node) && typeof segment === 'number') {
      node = node.items[segment];
      if (!node) break;
      best = node as Node;
    } else {
      break;
    }
  }
  return rangeOf(parsed.file, best);
}

export function rangeOf(file: SourceFile, node: Node | undefined | null): SourceRange {
  const range = node?.range;
  if (!range) return { file, offset: 0, length: 0 };
  return { file, offset: range[0], length: Math.max(0, range[1] - range[0]) };
}

/** Keys of a mapping in source order, with each key's range, duplicates included. */
export function mappingKeys(parsed: ParsedYaml, path: YamlPath): { key: string; at: SourceRange }[] {
  const node = parsed.document().getIn(path, true);
  const { isMap, isScalar } = yaml();
  if (!isMap(node)) return [];
  return node.items
    .filter((item) => isScalar(item.key))
    .map((item) => ({ key: String((item.key as { value: unknown }).value), at: rangeOf(parsed.file, item.key as Node) }));
}
