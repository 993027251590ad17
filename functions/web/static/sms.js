// The compose counter: characters, encoding and parts of a text, computed exactly as the server's
// preview computes them (layers/common/parley/domain/encoding.py), so the count a person sees while
// typing is the count the send will be billed for. tests/vectors/sms_segments.json holds the cases
// that the Python tests, this module (in the browser tests) and the live preview must all agree on.
//
// The rules, as the server applies them:
// * GSM-7 iff every code point is in the default alphabet or its extension table; a raw ESC
//   (U+001B) is not a character of the alphabet, so it forces UCS-2.
// * An extension character costs ESC + code = 2 septets and that pair is never split across parts;
//   in UCS-2 a surrogate pair (a code point above U+FFFF) is never split either. `segments` is the
//   number of parts actually built, which can be one more than ceil(units / 153).
// * One part holds 160 septets or 70 UCS-2 units; a part of a longer text 153 or 67. An empty text
//   is one empty GSM-7 part.
// * Smart encoding is all-or-nothing: look-alikes are replaced only if the whole result is then
//   GSM-7 and takes no more parts than the original; otherwise the original text goes as UCS-2.
// The file is ASCII only (every other character is written as an escape), whatever charset it is
// served with.

export const GSM7_SINGLE = 160;
export const GSM7_CONCAT = 153;
export const UCS2_SINGLE = 70;
export const UCS2_CONCAT = 67;

const ESC = "\u001b";

// The default alphabet indexed by septet value. Index 0x1B is ESC, which is not a character; 0x09
// is capital C-cedilla (small c-cedilla is UCS-2).
const GSM_BASIC_TABLE =
  "@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5" + // 0x00
  "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\u001b\u00c6\u00e6\u00df\u00c9" + // 0x10
  " !\"#\u00a4%&'()*+,-./" + // 0x20
  "0123456789:;<=>?" + // 0x30
  "\u00a1ABCDEFGHIJKLMNO" + // 0x40
  "PQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7" + // 0x50
  "\u00bfabcdefghijklmno" + // 0x60
  "pqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0"; // 0x70

// The extension table: each costs 2 septets. Form feed is here too.
const GSM_EXTENSION_CHARS = "\f^{}\\[~]|\u20ac";

const GSM_BASIC = new Set([...GSM_BASIC_TABLE].filter((ch) => ch !== ESC));
const GSM_EXTENSION = new Set(GSM_EXTENSION_CHARS);
const GSM_ALL = new Set([...GSM_BASIC, ...GSM_EXTENSION]);

/** Look-alike -> GSM-7 replacement, the server's table entry for entry. */
function buildSmartTable() {
  const groups = [
    // Double quotes, guillemets and primes.
    ['"', "\u00ab\u00bb\u201c\u201d\u201e\u201f\u02ba\u02ee\u275d\u275e\u301d\u301e\u2033"],
    // Single quotes, apostrophes, accents used as apostrophes.
    ["'", "\u2018\u2019\u201a\u201b\u02b9\u02bb\u02bc\u02bd\u02c8\u02ca\u02cb\u00b4`\u275b\u275c\u2032"],
    // Hyphens, dashes, bullet, minus sign.
    ["-", "\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2022\u2212"],
    ["<", "\u2039"],
    [">", "\u203a"],
    // Unicode spaces become one space each.
    [" ", "\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"],
    // Zero-width and invisible format characters are dropped.
    ["", "\u200b\u200c\u200d\u2060\ufeff\u00ad"],
  ];
  const table = new Map();
  for (const [replacement, chars] of groups) {
    for (const ch of chars) table.set(ch, replacement);
  }
  table.set("\u2026", "...");
  // Fullwidth ASCII forms U+FF01..U+FF5E sit 0xFEE0 above their ASCII twins.
  for (let code = 0xff01; code < 0xff5f; code += 1) {
    const ch = String.fromCodePoint(code);
    if (!table.has(ch)) table.set(ch, String.fromCodePoint(code - 0xfee0));
  }
  // Resolve chains (fullwidth grave -> ` -> ') so every replacement is GSM-7 in one pass.
  const resolved = new Map();
  for (const [ch, replacement] of table) {
    resolved.set(ch, [...replacement].map((c) => (table.has(c) ? table.get(c) : c)).join(""));
  }
  for (const [ch, replacement] of resolved) {
    if (GSM_ALL.has(ch) || !isGsm7(replacement)) {
      throw new Error(`smart-encoding table is inconsistent at U+${ch.codePointAt(0).toString(16)}`);
    }
  }
  return resolved;
}

/** True if every code point is in the GSM-7 default alphabet or its extension table. */
export function isGsm7(text) {
  for (const ch of text) {
    if (!GSM_ALL.has(ch)) return false;
  }
  return true;
}

const SMART_TABLE = buildSmartTable();

/** Replace Unicode look-alikes with GSM-7 characters; other characters are left as they are. */
export function smartEncode(text) {
  let out = "";
  for (const ch of text) {
    const replacement = SMART_TABLE.get(ch);
    out += replacement === undefined ? ch : replacement;
  }
  return out;
}

/** Greedy fill; an atom that does not fit starts the next part (a pair is never split). */
function split(weights, capacity) {
  const parts = [];
  let current = 0;
  for (const weight of weights) {
    if (current + weight > capacity) {
      parts.push(current);
      current = weight;
    } else {
      current += weight;
    }
  }
  parts.push(current);
  return parts;
}

/**
 * What a text costs, as the server's preview says: `chars` (code points of the text sent), `encoding`
 * ("GSM-7" or "UCS-2"), `segments` (parts built), `units` (septets or UTF-16 units) and
 * `smart_applied`; also `text` (what is sent), `parts` (units per part) and `non_gsm` (the distinct
 * characters that force UCS-2, in order of first appearance).
 */
export function countSms(text, { smart = false } = {}) {
  const original = text == null ? "" : String(text);
  if (smart && !isGsm7(original)) {
    const candidate = smartEncode(original);
    if (isGsm7(candidate)) {
      const replaced = count(candidate, true);
      // "..." for an ellipsis grows the text: keep it only if it takes no more parts
      if (replaced.segments <= count(original, false).segments) return replaced;
    }
  }
  return count(original, false);
}

function count(sent, applied) {
  const atoms = [...sent]; // code points; a lone surrogate is one atom, as in a Python str
  let encoding;
  let single;
  let concat;
  let weights;
  let nonGsm = [];
  if (atoms.every((ch) => GSM_ALL.has(ch))) {
    encoding = "GSM-7";
    single = GSM7_SINGLE;
    concat = GSM7_CONCAT;
    weights = atoms.map((ch) => (GSM_EXTENSION.has(ch) ? 2 : 1));
  } else {
    encoding = "UCS-2";
    single = UCS2_SINGLE;
    concat = UCS2_CONCAT;
    weights = atoms.map((ch) => ch.length); // UTF-16 units: 2 for a code point above U+FFFF
    nonGsm = [...new Set(atoms.filter((ch) => !GSM_ALL.has(ch)))];
  }
  const units = weights.reduce((sum, weight) => sum + weight, 0);
  const parts = units <= single ? [units] : split(weights, concat);
  return {
    chars: atoms.length,
    encoding,
    segments: parts.length,
    units,
    smart_applied: applied,
    text: sent,
    parts,
    non_gsm: nonGsm,
  };
}
