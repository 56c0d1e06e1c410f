import { VbsError } from '../core/errors.js';
import { NOT_XML_CHAR, NOT_XML_CHARS } from '../core/xml-chars.js';
import type { Field, ServiceDefinition } from './schema.js';
import { parseXml, REQUEST_LIMITS, type ParseLimits, type XmlElement } from './xml-parse.js';

export const SOAP11_ENV = 'http://schemas.xmlsoap.org/soap/envelope/';
export const SOAP12_ENV = 'http://www.w3.org/2003/05/soap-envelope';
export const XSI = 'http://www.w3.org/2001/XMLSchema-instance';
/** SOAP 1.1's "next" actor: a header with it (or with no actor) is addressed to us. */
const ACTOR_NEXT = 'http://schemas.xmlsoap.org/soap/actor/next';

/** XML text escaping for element content. */
export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&${{ '<': 'lt', '>': 'gt', '&': 'amp', '"': 'quot', "'": 'apos' }[c]};`);
}


/** `s` with every character XML cannot carry replaced by U+FFFD. */
export function xmlSafe(s: string): string {
  return s.replace(NOT_XML_CHARS, '\ufffd');
}

export type Value = string | number | boolean | Date | null | undefined | Record | Value[];
export interface Record {
  [k: string]: Value;
}

/**
 * Serializes `value` as the children of a record or operation element, in field order.
 * A string holding a character XML cannot carry (it should never have been
 * stored) is written with U+FFFD in its place and reported to `onUnwritable`:
 * one bad record must not turn a whole listing into an internal error.
 */
export function encodeFields(def: ServiceDefinition, fields: readonly Field[], value: Record, onUnwritable?: (field: string) => void): string {
  let out = '';
  for (const f of fields) {
    const v = value[f.name];
    const items = f.many ? (Array.isArray(v) ? v : v == null ? [] : [v]) : v == null ? [] : [v];
    for (const item of items) {
      if (item == null) continue;
      let inner: string;
      if (typeof f.type === 'object') inner = encodeFields(def, def.types[f.type.record]!, item as Record, onUnwritable);
      else if (item instanceof Date) inner = item.toISOString();
      else {
        let s = String(item);
        if (NOT_XML_CHAR.test(s)) {
          onUnwritable?.(f.name);
          s = s.replace(NOT_XML_CHARS, '\ufffd');
        }
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
    `<soap:Envelope xmlns:soap="${SOAP11_ENV}" xmlns:tns="${namespace}">` +
    `<soap:Body>${body}</soap:Body></soap:Envelope>`
  );
}

// ---------------------------------------------------------------------------
// Reading: bytes -> text -> elements with resolved namespaces.

/**
 * The request's bytes as text, in the encoding it says it is in: a byte order
 * mark first, else the charset of its Content-Type (RFC 7303 gives it
 * precedence), else the XML declaration's encoding, else UTF-8. Bytes that are
 * not valid in that encoding, or an encoding we cannot decode, are refused:
 * never guessed at, never replaced.
 */
export function decodeBody(body: Buffer, contentType?: string): string {
  let label: string | undefined;
  let start = 0;
  if (body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf) [label, start] = ['utf-8', 3];
  else if (body[0] === 0xff && body[1] === 0xfe) [label, start] = ['utf-16le', 2];
  else if (body[0] === 0xfe && body[1] === 0xff) [label, start] = ['utf-16be', 2];
  label ??= charsetOf(contentType) ?? declaredEncoding(body) ?? 'utf-8';
  let decoder: TextDecoder;
  try {
    decoder = new TextDecoder(label, { fatal: true, ignoreBOM: true });
  } catch {
    throw new VbsError('MalformedRequest', `The character encoding ${label.slice(0, 40)} is not supported; send UTF-8.`);
  }
  try {
    return decoder.decode(body.subarray(start));
  } catch {
    throw new VbsError('MalformedRequest', `The request is not valid ${decoder.encoding} text.`);
  }
}

function charsetOf(contentType: string | undefined): string | undefined {
  return /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(contentType ?? '')?.[1];
}

function declaredEncoding(body: Buffer): string | undefined {
  const head = body.subarray(0, 256).toString('latin1');
  return /^<\?xml\s[^>]*?\bencoding\s*=\s*["']([A-Za-z][A-Za-z0-9._-]*)["']/.exec(head)?.[1];
}

export type { XmlElement, ParseLimits } from './xml-parse.js';
export { MAX_REQUEST_LIST_ITEMS, parseXml, REQUEST_LIMITS, RESPONSE_LIMITS } from './xml-parse.js';

const isTrue = (v: string | undefined): boolean => v !== undefined && ['1', 'true'].includes(v.trim());

/**
 * Parses a SOAP 1.1 envelope and returns the single element inside Body.
 * Another envelope version is a VersionMismatch fault; a header addressed to
 * us with mustUnderstand="1" is a MustUnderstand fault (VBS defines no
 * headers); anything else that is not an envelope is a client fault.
 */
export function parseEnvelope(xml: string, limits: ParseLimits = REQUEST_LIMITS): { name: string; ns: string | undefined; content: XmlElement } {
  const env = parseXml(xml, limits);
  if (env.local !== 'Envelope') throw new VbsError('MalformedRequest', 'The request is not a SOAP envelope with a Body.');
  if (env.ns !== SOAP11_ENV) {
    const which = env.ns === SOAP12_ENV ? 'a SOAP 1.2 envelope' : 'an envelope of an unknown SOAP version';
    throw new VbsError('VersionMismatch', `This service speaks SOAP 1.1 (${SOAP11_ENV}); the request is ${which}.`);
  }
  const parts = env.children.filter((c) => c.ns === SOAP11_ENV);
  const bodies = parts.filter((c) => c.local === 'Body');
  if (bodies.length !== 1) throw new VbsError('MalformedRequest', 'The request is not a SOAP envelope with a Body.');
  for (const header of parts.filter((c) => c.local === 'Header')) {
    for (const block of header.children) {
      const actor = block.attrs.get(`{${SOAP11_ENV}}actor`);
      if (isTrue(block.attrs.get(`{${SOAP11_ENV}}mustUnderstand`)) && (actor === undefined || actor === ACTOR_NEXT)) {
        throw new VbsError('MustUnderstand', `The header ${block.local.slice(0, 64)} (${(block.ns ?? 'no namespace').slice(0, 128)}) is not understood by this service.`);
      }
    }
  }
  const body = bodies[0]!;
  if (body.children.length !== 1 || body.text.trim() !== '') {
    throw new VbsError('MalformedRequest', 'The SOAP Body must hold exactly one operation element.');
  }
  const op = body.children[0]!;
  return { name: op.local, ns: op.ns, content: op };
}

/** xsi:nil="true": the element stands for no value. */
function isNil(el: XmlElement): boolean {
  return isTrue(el.attrs.get(`{${XSI}}nil`));
}

/**
 * Decodes children against their field list: unknown elements, repeated single
 * elements and wrongly typed values are refused (node-soap would let them pass).
 * Missing required fields are refused as MissingParameter; an element sent as
 * xsi:nil="true" counts as absent. Children are in the service's namespace
 * (elementFormDefault qualified) or, leniently, in none. A list longer than
 * `maxItems` is refused as soon as it is counted, before any value is decoded.
 */
export function decodeFields(def: ServiceDefinition, fields: readonly Field[], el: XmlElement, where: string, maxItems = Number.POSITIVE_INFINITY): Record {
  if (el.text.trim() !== '') throw new VbsError('MalformedRequest', `Unexpected text in ${where}.`);
  const byName = new Map<string, XmlElement[]>();
  const known = new Set(fields.map((f) => f.name));
  for (const child of el.children) {
    if (!known.has(child.local) || (child.ns !== undefined && child.ns !== def.namespace)) {
      throw new VbsError('InvalidParameterValue', `Unknown element ${child.local.slice(0, 64)} in ${where}.`);
    }
    const same = byName.get(child.local);
    if (same && same.length >= maxItems) throw new VbsError('InvalidParameterValue', `Element ${child.local.slice(0, 64)} may appear at most ${maxItems} times.`);
    if (same) same.push(child);
    else byName.set(child.local, [child]);
  }
  const out: Record = {};
  for (const f of fields) {
    const raw = byName.get(f.name) ?? [];
    if (!f.many && raw.length > 1) throw new VbsError('InvalidParameterValue', `Element ${f.name} may appear only once.`);
    const values = raw.filter((r) => !isNil(r)).map((r) => decodeValue(def, f, r, where, maxItems));
    if (f.many) out[f.name] = values;
    else if (values.length === 1) out[f.name] = values[0];
    else if (!f.optional) throw new VbsError('MissingParameter', `The request must contain the parameter ${f.name}.`);
  }
  return out;
}

function decodeValue(def: ServiceDefinition, f: Field, el: XmlElement, where: string, maxItems: number): Value {
  if (typeof f.type === 'object') return decodeFields(def, def.types[f.type.record]!, el, `${where}/${f.name}`, maxItems);
  if (el.children.length) throw new VbsError('InvalidParameterValue', `Element ${f.name} must hold text, not elements.`);
  const text = el.text;
  switch (f.type) {
    case 'string':
      // Stored as given and written back in every listing: a character XML
      // cannot carry would break every response that shows it.
      if (NOT_XML_CHAR.test(text)) throw new VbsError('InvalidParameterValue', `Value for parameter ${f.name} is invalid: it holds a character XML 1.0 does not allow.`);
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
