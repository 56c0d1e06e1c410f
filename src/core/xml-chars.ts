/**
 * The characters XML 1.0 can carry (its Char production): tab, LF, CR, and
 * U+0020..U+D7FF, U+E000..U+FFFD, U+10000..U+10FFFF. Anything else (NUL and
 * other C0 controls, lone surrogates, U+FFFE, U+FFFF) cannot be written in any
 * SOAP response, so no such value may be accepted, let alone stored.
 */
// eslint-disable-next-line no-control-regex
export const NOT_XML_CHAR = /[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/u;
// eslint-disable-next-line no-control-regex
export const NOT_XML_CHARS = /[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/gu;
