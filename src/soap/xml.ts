import { XMLParser } from 'fast-xml-parser';
import { VbsError } from '../core/errors.js';
import type { Field, ServiceDefinition } from './schema.js';

/** XML text escaping for element content. */
export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&${{ '<': 'lt', '>': 'gt', '&': 'amp', '"': 'quot', "'": 'apos' }[c]};`);
}

/** Only characters XML 1.0 allows; anything else would make a malformed document. */
// eslint-disable-next-line no-control-regex
const NOT_XML_CHAR = /[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/u;

export type Value = string | number | boolean | Date | null | undefined | Record | Value[];
export interface Record {
  [k: string]: Value;
}

/** Serializes `value` as the children of a record or operation element, in field order. */
export function encodeFields(def: ServiceDefinition, fields: readonly Field[], value: Record): string {
  let out = '';
  for (const f of fields) {
    const v = value[f.name];
    const items = f.many ? (Array.isArray(v) ? v : v == null ? [] : [v]) : v == null ? [] : [v];
    for (const item of items) {
      if (item == null) continue;
      let inner: string;
      if (typeof f.type === 'object') inner = encodeFields(def, def.types[f.type.record]!, item as Record);
      else if (item instanceof Date) inner = item.toISOString();
      else {
        const s = String(item);
        if (NOT_XML_CHAR.test(s)) throw new VbsError('InternalError', `value of ${f.name} cannot be written as XML`);
        inner = escapeXml(s);
      }
      out += `<tns:${f.name}>${inner}</tns:${f.name}>`;
    }
  }
  return out;
}

export function envelope(namespace: string, body: string): string {
  return (
    `<?xml version="1.0" encoding="UTF-8"?>` +
    `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:tns="${namespace}">` +
    `<soap:Body>${body}</soap:Body></soap:Envelope>`
  );
}

const parser = new XMLParser({
  ignoreAttributes: true,
  removeNSPrefix: true,
  parseTagValue: false,
  trimValues: false,
  processEntities: true, // only the five predefined entities; DOCTYPEs are refused before parsing
  htmlEntities: false,
  isArray: () => true,
});

type Tree = { [k: string]: Tree[] | string | undefined; '#text'?: string };

/**
 * Parses a SOAP 1.1 envelope and returns the single element inside Body:
 * its local name and its child tree. Anything else is a client fault.
 */
export function parseEnvelope(xml: string): { name: string; content: Tree } {
  if (/<!DOCTYPE|<!ENTITY/i.test(xml)) throw new VbsError('MalformedRequest', 'DOCTYPE and entity declarations are not allowed.');
  let doc: Tree;
  try {
    doc = parser.parse(xml, true) as Tree;
  } catch {
    throw new VbsError('MalformedRequest', 'The request is not well-formed XML.');
  }
  const env = only(doc, 'Envelope');
  const body = env && only(env, 'Body');
  if (!body) throw new VbsError('MalformedRequest', 'The request is not a SOAP envelope with a Body.');
  const names = Object.keys(body).filter((k) => k !== '#text');
  if (names.length !== 1 || (body[names[0]!] as Tree[]).length !== 1) {
    throw new VbsError('MalformedRequest', 'The SOAP Body must hold exactly one operation element.');
  }
  const name = names[0]!;
  const content = (body[name] as Tree[])[0]!;
  return { name, content: typeof content === 'object' ? content : {} };
}

function only(t: Tree, name: string): Tree | undefined {
  const v = t[name];
  return Array.isArray(v) && v.length === 1 && typeof v[0] === 'object' ? v[0] : undefined;
}

/**
 * Decodes children against their field list: unknown elements, repeated single
 * elements and wrongly typed values are refused (node-soap would let them pass).
 * Missing required fields are refused as MissingParameter.
 */
export function decodeFields(def: ServiceDefinition, fields: readonly Field[], tree: Tree, where: string): Record {
  const out: Record = {};
  const known = new Set(fields.map((f) => f.name));
  for (const k of Object.keys(tree)) {
    if (k === '#text') {
      if (String(tree[k]).trim() !== '') throw new VbsError('MalformedRequest', `Unexpected text in ${where}.`);
      continue;
    }
    if (!known.has(k)) throw new VbsError('InvalidParameterValue', `Unknown element ${k} in ${where}.`);
  }
  for (const f of fields) {
    const raw = (tree[f.name] as (Tree | string)[] | undefined) ?? [];
    if (!f.many && raw.length > 1) throw new VbsError('InvalidParameterValue', `Element ${f.name} may appear only once.`);
    const values = raw.map((r) => decodeValue(def, f, r, where));
    if (f.many) out[f.name] = values;
    else if (values.length === 1) out[f.name] = values[0];
    else if (!f.optional) throw new VbsError('MissingParameter', `The request must contain the parameter ${f.name}.`);
  }
  return out;
}

function decodeValue(def: ServiceDefinition, f: Field, raw: Tree | string, where: string): Value {
  if (typeof f.type === 'object') {
    return decodeFields(def, def.types[f.type.record]!, typeof raw === 'object' ? raw : {}, `${where}/${f.name}`);
  }
  const text = typeof raw === 'string' ? raw : textOf(raw, f.name);
  switch (f.type) {
    case 'string':
      return text;
    case 'int':
    case 'long': {
      const t = text.trim();
      const n = /^[+-]?[0-9]{1,18}$/.test(t) ? Number(t) : NaN;
      const limit = f.type === 'int' ? 2 ** 31 : Number.MAX_SAFE_INTEGER;
      if (!Number.isSafeInteger(n) || Math.abs(n) >= limit) {
        throw new VbsError('InvalidParameterValue', `Value for parameter ${f.name} must be an integer.`);
      }
      return n;
    }
    case 'boolean': {
      const t = text.trim();
      if (t === 'true' || t === '1') return true;
      if (t === 'false' || t === '0') return false;
      throw new VbsError('InvalidParameterValue', `Value for parameter ${f.name} must be true or false.`);
    }
    case 'dateTime': {
      const d = new Date(text.trim());
      if (Number.isNaN(d.getTime())) throw new VbsError('InvalidParameterValue', `Value for parameter ${f.name} must be a date.`);
      return d;
    }
  }
}

function textOf(t: Tree, name: string): string {
  const elements = Object.keys(t).filter((k) => k !== '#text');
  if (elements.length) throw new VbsError('InvalidParameterValue', `Element ${name} must hold text, not elements.`);
  const text = t['#text'];
  return Array.isArray(text) ? text.join('') : (text ?? '');
}
