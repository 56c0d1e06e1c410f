import { VbsError } from '../core/errors.js';

/**
 * A small XML parser for SOAP bodies, written for one property: its work is
 * linear in the size of the input, and its limits on depth, element count,
 * attributes and name length hold while it reads, so a hostile body is
 * refused after reading only as much as it takes to see it break a limit.
 * (The general-purpose parser it replaces copied lists and namespace maps:
 * 30,000 empty elements or 6,000 namespace declarations blocked a service
 * for tens of seconds, before any limit was checked.)
 *
 * It reads what SOAP needs: elements, attributes, namespaces, text, the five
 * predefined entities and character references, CDATA; it skips comments and
 * processing instructions, and refuses a DOCTYPE (no entity is ever declared).
 * Each step moves forward through the text, and each name lookup walks at
 * most `maxDepth` namespace scopes.
 */

export interface ParseLimits {
  /** Elements nested inside each other, the root counted. */
  readonly maxDepth: number;
  /** Elements in the whole document. */
  readonly maxElements: number;
  /** Attributes on one element, namespace declarations included. */
  readonly maxAttributes: number;
  /** Characters in one element or attribute name. */
  readonly maxNameLength: number;
}

/**
 * For requests: SOAP's envelope, body, operation, records and fields are a
 * handful of levels deep; the largest request (a listing's filters, 100
 * values each) has a few hundred elements.
 */
export const REQUEST_LIMITS: ParseLimits = { maxDepth: 32, maxElements: 5_000, maxAttributes: 32, maxNameLength: 256 };
/** Values in one list of a request: no operation takes more (a listing's maxResults is at most 1,000). */
export const MAX_REQUEST_LIST_ITEMS = 1_000;
/** For answers from our own services: listings can be long (their size is capped by the client). */
export const RESPONSE_LIMITS: ParseLimits = { maxDepth: 64, maxElements: Number.POSITIVE_INFINITY, maxAttributes: 64, maxNameLength: 1024 };

export const XML_NS = 'http://www.w3.org/XML/1998/namespace';

/** An element after parsing: its namespace resolved, its text and attributes decoded. */
export interface XmlElement {
  readonly local: string;
  /** The namespace URI, undefined for none. */
  readonly ns: string | undefined;
  /** Decoded attribute values by `{namespace}local` (`{}local` for no namespace); xmlns declarations excluded. */
  readonly attrs: ReadonlyMap<string, string>;
  readonly children: readonly XmlElement[];
  readonly text: string;
}

/** The prefixes one element declares, and the scope it sits in: looked up by walking out (at most maxDepth steps). */
interface Scope {
  readonly declared: ReadonlyMap<string, string>;
  readonly parent: Scope | undefined;
}

interface Open {
  readonly qname: string;
  readonly local: string;
  readonly ns: string | undefined;
  readonly attrs: Map<string, string>;
  readonly scope: Scope | undefined;
  readonly children: XmlElement[];
  readonly text: string[];
}

const NAME_START = 'A-Za-z_:\\u00C0-\\u00D6\\u00D8-\\u00F6\\u00F8-\\u02FF\\u0370-\\u037D\\u037F-\\u1FFF\\u200C-\\u200D\\u2070-\\u218F\\u2C00-\\u2FEF\\u3001-\\uD7FF\\uF900-\\uFDCF\\uFDF0-\\uFFFD';
const NAME = new RegExp(`[${NAME_START}][${NAME_START}\\-.0-9\\u00B7\\u0300-\\u036F\\u203F-\\u2040]*`, 'y');
const SPACE = /[ \t\r\n]*/y;
const ATTR_VALUE = /"([^<"]*)"|'([^<']*)'/y;

const malformed = (why = 'The request is not well-formed XML.') => new VbsError('MalformedRequest', why);

/** Parses a whole document and returns its root element. */
export function parseXml(xml: string, limits: ParseLimits = REQUEST_LIMITS): XmlElement {
  const stack: Open[] = [];
  let root: XmlElement | undefined;
  let elements = 0;
  let i = xml.charCodeAt(0) === 0xfeff ? 1 : 0;

  const skipSpace = (): void => {
    SPACE.lastIndex = i;
    SPACE.exec(xml);
    i = SPACE.lastIndex;
  };
  const name = (): string => {
    NAME.lastIndex = i;
    const m = NAME.exec(xml);
    if (!m) throw malformed();
    if (m[0].length > limits.maxNameLength) throw malformed(`A name in the request is longer than ${limits.maxNameLength} characters.`);
    i = NAME.lastIndex;
    return m[0];
  };
  /** Moves past `end`, which must come later. */
  const skipPast = (end: string): string => {
    const j = xml.indexOf(end, i);
    if (j < 0) throw malformed();
    const inside = xml.slice(i, j);
    i = j + end.length;
    return inside;
  };

  while (i < xml.length) {
    const top = stack.at(-1);
    if (xml.charCodeAt(i) !== 0x3c /* < */) {
      const j = xml.indexOf('<', i);
      const end = j < 0 ? xml.length : j;
      const raw = xml.slice(i, end);
      i = end;
      if (top) top.text.push(decodeReferences(raw));
      else if (raw.trim() !== '') throw malformed('The request must have exactly one root element.');
      continue;
    }
    if (xml.startsWith('<!--', i)) {
      i += 4;
      skipPast('-->');
    } else if (xml.startsWith('<![CDATA[', i)) {
      if (!top) throw malformed();
      i += 9;
      top.text.push(skipPast(']]>'));
    } else if (xml.startsWith('<?', i)) {
      i += 2;
      skipPast('?>');
    } else if (xml.startsWith('<!', i)) {
      throw malformed('DOCTYPE and entity declarations are not allowed.');
    } else if (xml.startsWith('</', i)) {
      i += 2;
      const qname = name();
      skipSpace();
      if (xml[i] !== '>' || !top || top.qname !== qname) throw malformed();
      i++;
      stack.pop();
      close(top);
    } else {
      i++;
      if (root || stack.length >= limits.maxDepth) {
        throw malformed(root ? 'The request must have exactly one root element.' : `The request nests elements deeper than ${limits.maxDepth}.`);
      }
      if (++elements > limits.maxElements) throw malformed(`The request has more than ${limits.maxElements} elements.`);
      const qname = name();
      const raw: [string, string][] = [];
      for (;;) {
        const before = i;
        skipSpace();
        if (xml.startsWith('/>', i) || xml[i] === '>') break;
        if (i === before) throw malformed(); // attributes are separated by white space
        const attr = name();
        skipSpace();
        if (xml[i] !== '=') throw malformed();
        i++;
        skipSpace();
        ATTR_VALUE.lastIndex = i;
        const m = ATTR_VALUE.exec(xml);
        if (!m) throw malformed();
        i = ATTR_VALUE.lastIndex;
        if (raw.length >= limits.maxAttributes) throw malformed(`An element in the request has more than ${limits.maxAttributes} attributes.`);
        raw.push([attr, decodeReferences(m[1] ?? m[2] ?? '')]);
      }
      const open = start(qname, raw, top?.scope);
      if (xml[i] === '/') {
        i += 2;
        close(open);
      } else {
        i++;
        stack.push(open);
      }
    }
  }
  if (!root || stack.length) throw malformed(root ? undefined : 'The request must have exactly one root element.');
  return root;

  function close(el: Open): void {
    const done: XmlElement = { local: el.local, ns: el.ns, attrs: el.attrs, children: el.children, text: el.text.join('') };
    const parent = stack.at(-1);
    if (parent) parent.children.push(done);
    else root = done;
  }
}

/** An element just opened: its declarations make its scope, then its own name and attributes resolve in it. */
function start(qname: string, raw: readonly [string, string][], outer: Scope | undefined): Open {
  const seen = new Set<string>();
  let declared: Map<string, string> | undefined;
  for (const [k, v] of raw) {
    if (seen.has(k)) throw malformed(`The attribute ${k.slice(0, 32)} appears twice on one element.`);
    seen.add(k);
    if (k === 'xmlns' || k.startsWith('xmlns:')) (declared ??= new Map()).set(k === 'xmlns' ? '' : k.slice(6), v);
  }
  const scope = declared ? { declared, parent: outer } : outer;
  const [prefix, local] = split(qname);
  const attrs = new Map<string, string>();
  for (const [k, v] of raw) {
    if (k === 'xmlns' || k.startsWith('xmlns:')) continue;
    const [p, l] = split(k);
    const key = `{${p === undefined ? '' : uriOf(p, scope)}}${l}`;
    if (attrs.has(key)) throw malformed(`The attribute ${l.slice(0, 32)} appears twice on one element.`);
    attrs.set(key, v);
  }
  const ns = prefix === undefined ? lookup('', scope) || undefined : uriOf(prefix, scope);
  return { qname, local, ns, attrs, scope, children: [], text: [] };
}

function split(qname: string): [string | undefined, string] {
  const i = qname.indexOf(':');
  if (i === 0 || i === qname.length - 1) throw malformed();
  return i < 0 ? [undefined, qname] : [qname.slice(0, i), qname.slice(i + 1)];
}

function lookup(prefix: string, scope: Scope | undefined): string | undefined {
  for (let s = scope; s; s = s.parent) {
    const uri = s.declared.get(prefix);
    if (uri !== undefined) return uri;
  }
  return undefined;
}

function uriOf(prefix: string, scope: Scope | undefined): string {
  if (prefix === 'xml') return XML_NS;
  const uri = lookup(prefix, scope);
  if (!uri) throw malformed(`The namespace prefix ${prefix.slice(0, 32)} is not declared.`);
  return uri;
}

/**
 * Decodes the five predefined entities and character references, in one
 * pass (so `&amp;#65;` stays the text "&#65;"). Any other `&` is refused: a
 * bare one, or an entity no DOCTYPE could have declared.
 */
export function decodeReferences(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(
    /&(lt|gt|amp|quot|apos);|&#([0-9]{1,7});|&#x([0-9a-fA-F]{1,6});|&([A-Za-z_:][\w.:-]{0,63});|&/g,
    (_m, named: string | undefined, dec: string | undefined, hex: string | undefined, entity: string | undefined) => {
      if (named) return { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" }[named as 'lt']!;
      if (entity !== undefined) throw malformed(`The entity &${entity}; is not declared.`);
      if (dec === undefined && hex === undefined) throw malformed('A bare & is not allowed in XML; write &amp;.');
      const cp = dec !== undefined ? Number(dec) : parseInt(hex!, 16);
      if (cp > 0x10ffff) throw malformed('A character reference is beyond Unicode.');
      // A reference to a character XML cannot carry is decoded as it is and
      // refused by the field it lands in (decodeValue), naming the parameter.
      return String.fromCodePoint(cp);
    },
  );
}
