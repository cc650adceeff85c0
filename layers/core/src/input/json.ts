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
