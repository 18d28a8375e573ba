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

/** Past this depth a file is refused: no pipeline nests so deep, and the parser would overflow the stack. */
export const MAX_NESTING = 64;

/** Keys that would reach Object.prototype through a plain object: refused everywhere in a file and in `--set`. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** Bumped when the checks of a file's text change, so that a file remembered by older checks is checked again. */
const REMEMBERED_VERSION = 2;

export async function readSourceFile(path: string): Promise<Result<SourceFile>> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const detail = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : String(error);
    return fail([{ reason: 'missing-file', path, detail }]);
  }
  return decodeUtf8(path, bytes);
}

/** The file's text, or where its first byte that is not UTF-8 is (a lenient decoder would run changed text). */
function decodeUtf8(path: string, bytes: Uint8Array): Result<SourceFile> {
  try {
    return ok({ path, text: new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes) });
  } catch {
    const bad = firstInvalidUtf8(bytes);
    const before = new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes.subarray(0, bad));
    const file = { path, text: new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes) };
    const byte = bytes[bad]!.toString(16).padStart(2, '0');
    return fail([{ reason: 'invalid-yaml', at: { file, offset: before.length, length: 1 }, detail: `the file is not valid UTF-8 (byte 0x${byte}); save it as UTF-8` }]);
  }
}

/** Offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629). */
function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const length = sequenceLength(bytes, i);
    if (length === 0) return i;
    i += length;
  }
  return bytes.length;
}

function sequenceLength(bytes: Uint8Array, i: number): number {
  const lead = bytes[i]!;
  if (lead < 0x80) return 1;
  // [length, range of the second byte]; the bytes after it are 0x80-0xbf.
  const shape: [number, number, number] | undefined =
    lead >= 0xc2 && lead <= 0xdf ? [2, 0x80, 0xbf]
      : lead === 0xe0 ? [3, 0xa0, 0xbf]
        : lead === 0xed ? [3, 0x80, 0x9f]
          : lead >= 0xe1 && lead <= 0xef ? [3, 0x80, 0xbf]
            : lead === 0xf0 ? [4, 0x90, 0xbf]
              : lead >= 0xf1 && lead <= 0xf3 ? [4, 0x80, 0xbf]
                : lead === 0xf4 ? [4, 0x80, 0x8f]
                  : undefined;
  if (!shape) return 0;
  const [length, low, high] = shape;
  const second = bytes[i + 1];
  if (second === undefined || second < low || second > high) return 0;
  for (let k = 2; k < length; k++) {
    const next = bytes[i + k];
    if (next === undefined || next < 0x80 || next > 0xbf) return 0;
  }
  return length;
}

function parseDocument(text: string): Document {
  // uniqueKeys off: duplicate keys get a message of our own (see checkKeys).
  return yaml().parseDocument(text, { uniqueKeys: false, prettyErrors: false });
}

/**
 * Parses the text into a document if it nests at most MAX_NESTING deep. The concrete syntax tree is built
 * without recursion, so it is measured before the (recursive) composer sees it.
 */
function composeDocument(file: SourceFile): Result<Document> {
  const { Composer, Parser } = yaml();
  const tokens = [...new Parser().parse(file.text)];
  const tooDeep = tooDeepAt(tokens);
  if (tooDeep !== undefined) {
    return fail([{ reason: 'invalid-yaml', at: { file, offset: tooDeep, length: 1 }, detail: `nested more than ${MAX_NESTING} levels deep` }]);
  }
  const documents = [...new Composer({ uniqueKeys: false, prettyErrors: false }).compose(tokens, true, file.text.length)];
  const second = tokens.filter((token) => token.type === 'document')[1];
  if (second) {
    return fail([{ reason: 'invalid-yaml', at: { file, offset: second.offset, length: 1 }, detail: 'a second YAML document (after `---`); a pipeline file holds one' }]);
  }
  return ok(documents[0] ?? parseDocument(file.text));
}

type CstToken = ReturnType<Yaml.Parser['parse']> extends Iterable<infer T> ? T : never;

/** The offset of the first collection deeper than MAX_NESTING, if any (an explicit stack: no recursion). */
function tooDeepAt(tokens: readonly CstToken[]): number | undefined {
  const pending: [CstToken, number][] = tokens.map((token) => [token, 0]);
  while (pending.length > 0) {
    const [token, depth] = pending.pop()!;
    if (depth > MAX_NESTING) return token.offset;
    const children = token.type === 'document' ? [token.value] : 'items' in token ? token.items.flatMap((item) => [item.key, item.value]) : [];
    for (const child of children) if (child && typeof child === 'object' && 'type' in child) pending.push([child as CstToken, token.type === 'document' ? depth : depth + 1]);
  }
  return undefined;
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
  const composed = composeDocument(file);
  if (!composed.ok) return composed;
  const doc = composed.value;
  const errors: Failure[] = doc.errors.map((error) => ({
    reason: 'invalid-yaml',
    at: { file, offset: error.pos[0], length: Math.max(1, error.pos[1] - error.pos[0]) },
    detail: error.message.split('\n')[0] ?? error.message,
  }));
  if (errors.length === 0) errors.push(...checkKeys(file, doc));
  if (errors.length > 0) return fail(errors);
  const value = toValue(file, doc);
  return value.ok ? ok({ file, value: value.value, remembered: false, document: () => doc }) : value;
}

/** The document as plain data; an alias expanded past the limit (a "billion laughs" file) is refused. */
function toValue(file: SourceFile, doc: Document): Result<unknown> {
  try {
    return ok(doc.toJS({ maxAliasCount: 1000 }));
  } catch (error) {
    if (!(error instanceof ReferenceError)) throw error;
    let alias: Node | undefined;
    yaml().visit(doc, { Alias: (_key, node) => ((alias = node), yaml().visit.BREAK) });
    return fail([{ reason: 'invalid-yaml', at: rangeOf(file, alias), detail: 'aliases expand to too much data (more than 1000 aliased nodes)' }]);
  }
}

/**
 * Every mapping's keys are distinct (a repeated key would silently win over the first) and none of them
 * reaches Object.prototype. A repeated stage name has a message of its own.
 */
function checkKeys(file: SourceFile, doc: Document): Failure[] {
  const { isMap, isScalar, visit } = yaml();
  const stages = isMap(doc.contents) ? (doc.contents.get('stages', true) as unknown) : undefined;
  const failures: Failure[] = [];
  visit(doc, {
    Map: (_key, map) => {
      const seen = new Set<string>();
      for (const pair of map.items) {
        if (!isScalar(pair.key)) continue;
        const key = String(pair.key.value);
        const at = rangeOf(file, pair.key);
        if (FORBIDDEN_KEYS.has(key)) failures.push({ reason: 'invalid-pipeline', at, detail: `"${key}" cannot be a key` });
        else if (seen.has(key)) failures.push(map === stages ? { reason: 'duplicate-stage', at, stage: key } : { reason: 'invalid-yaml', at, detail: `duplicate key "${key}" (an earlier one in the same mapping would be ignored)` });
        seen.add(key);
      }
    },
  });
  return failures;
}

function lazyDocument(file: SourceFile, value: unknown): ParsedYaml {
  let doc: Document | undefined;
  return { file, value, remembered: true, document: () => (doc ??= parseDocument(file.text)) };
}

function rememberedPath(cacheDir: string, file: SourceFile): string {
  return join(cacheDir, 'parsed', `v${REMEMBERED_VERSION}-${sha256(file.text)}.json`);
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
