import type { ErrorObject } from 'ajv';
import type { YamlPath } from './yaml-source.js';
import { didYouMean } from './util/suggest.js';

/** One schema violation, phrased for a user and anchored at a path of the YAML document. */
export interface SchemaProblem {
  path: YamlPath;
  part: 'key' | 'value';
  detail: string;
}

export function pointerToPath(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** Turns ajv's error objects into messages a user can act on, with "did you mean" for misspelt keys. */
export function describeSchemaError(error: ErrorObject, what: string): SchemaProblem {
  const path = pointerToPath(error.instancePath);
  const name = path.length > 0 ? `"${path.join('.')}"` : what;
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = String(error.params['additionalProperty']);
      const allowed = Object.keys((error.parentSchema?.['properties'] as object | undefined) ?? {});
      return { path: [...path, key], part: 'key', detail: `unknown key "${key}" in ${what}${didYouMean(key, allowed)}` };
    }
    case 'required':
      return { path, part: 'key', detail: `missing required key "${String(error.params['missingProperty'])}" in ${path.length > 0 ? name : what}` };
    case 'type':
      return { path, part: 'value', detail: `${name} must be ${String(error.params['type'])}` };
    case 'enum': {
      const allowed = (error.params['allowedValues'] as unknown[]).map((v) => JSON.stringify(v));
      return { path, part: 'value', detail: `${name} must be one of ${allowed.join(', ')}` };
    }
    case 'pattern': {
      // A pattern means little to a user; the schema's examples say what is expected.
      const examples = (error.parentSchema?.['examples'] as unknown[] | undefined)?.map((v) => JSON.stringify(v));
      return { path, part: 'value', detail: examples ? `${name} must look like ${examples.join(' or ')}` : `${name} ${error.message ?? 'is invalid'}` };
    }
    case 'propertyNames':
      return { path: [...path, String(error.params['propertyName'])], part: 'key', detail: `invalid name "${String(error.params['propertyName'])}" in ${what}` };
    default:
      return { path, part: 'value', detail: `${name} ${error.message ?? 'is invalid'}` };
  }
}
