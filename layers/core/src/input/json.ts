// Small helpers for validating parsed JSON lines and describing what was found in error messages.
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export function has(obj: JsonObject, key: string): boolean {
  return Object.hasOwn(obj, key);
}

export function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function typeName(v: Json | undefined): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/** A value for a message: strings quoted and clipped, anything else by its type. */
export function describe(v: Json | undefined): string {
  return typeof v === 'string' ? JSON.stringify(clip(v, 40)) : typeName(v);
}

export function clip(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** A line as a JSON object, or the reason it is not one (the first checks of every line reader). */
export function parseObjectLine(text: string): { ok: true; value: JsonObject } | { ok: false; reason: string } {
  if (text.trim() === '') return { ok: false, reason: 'empty line' };
  let value: Json;
  try {
    value = JSON.parse(text) as Json;
  } catch (err) {
    return { ok: false, reason: `not valid JSON: ${clip(err instanceof Error ? err.message : String(err), 200)}` };
  }
  if (!isObject(value)) return { ok: false, reason: `expected a JSON object, got ${typeName(value)}` };
  return { ok: true, value };
}
