import { readFile } from 'node:fs/promises';
import { isMap, isPair, isScalar, isSeq, parseDocument, type Document, type Node } from 'yaml';
import type { Failure, Result, SourceFile, SourceRange } from './failure.js';
import { fail, ok } from './failure.js';

export type YamlPath = readonly (string | number)[];

export interface ParsedYaml {
  file: SourceFile;
  doc: Document;
  value: unknown;
}

export async function readSourceFile(path: string): Promise<Result<SourceFile>> {
  try {
    return ok({ path, text: await readFile(path, 'utf8') });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const detail = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : String(error);
    return fail([{ reason: 'missing-file', path, detail }]);
  }
}

export function parseYaml(file: SourceFile): Result<ParsedYaml> {
  // uniqueKeys off: duplicate stage names get a message of our own, at the second name.
  const doc = parseDocument(file.text, { uniqueKeys: false, prettyErrors: false });
  const errors: Failure[] = doc.errors.map((error) => ({
    reason: 'invalid-yaml',
    at: { file, offset: error.pos[0], length: Math.max(1, error.pos[1] - error.pos[0]) },
    detail: error.message.split('\n')[0] ?? error.message,
  }));
  if (errors.length > 0) return fail(errors);
  return ok({ file, doc, value: doc.toJS({ maxAliasCount: 1000 }) });
}

/**
 * The source range of the node at `path` (its key when `part` is 'key'), or of the deepest ancestor that
 * exists when the path goes further than the file (a value that came from a default or an override).
 */
export function locate(parsed: ParsedYaml, path: YamlPath, part: 'key' | 'value' = 'value'): SourceRange {
  let node: unknown = parsed.doc.contents;
  let best: Node | undefined = node as Node | undefined;
  for (let i = 0; i < path.length; i++) {
    const segment = path[i]!;
    const isLast = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((item) => isPair(item) && isScalar(item.key) && String(item.key.value) === String(segment));
      if (!pair) break;
      if (isLast && part === 'key') {
        best = pair.key as Node;
        break;
      }
      node = pair.value;
      best = (pair.value as Node | null) ?? (pair.key as Node);
    } else if (isSeq(node) && typeof segment === 'number') {
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
  const node = parsed.doc.getIn(path, true);
  if (!isMap(node)) return [];
  return node.items
    .filter((item) => isScalar(item.key))
    .map((item) => ({ key: String((item.key as { value: unknown }).value), at: rangeOf(parsed.file, item.key as Node) }));
}
