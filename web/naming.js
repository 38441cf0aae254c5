// Naming rules, mirrored from chalicelib/domain/naming.py so the form can show the
// customer prefix, directory name and description BEFORE a batch is submitted.
// The server stays the authority: it assigns batch-N and re-applies these rules.
// Both copies are tested against tests/vectors/naming.json.

export const DEFAULT_PREFIX = "MISC";
const PREFIX_RE = /^([A-Za-z]+_[A-Za-z]+)/;
const MAX_PREFIX_LENGTH = 64;

const nfc = (name) => String(name).normalize("NFC");

/** "PL_DXB191_Front.png" -> "PL_DXB"; null when the name has no LETTERS_LETTERS start. */
export function prefixOf(fileName) {
  const match = PREFIX_RE.exec(nfc(fileName));
  return match ? match[1].slice(0, MAX_PREFIX_LENGTH).toUpperCase() : null;
}

/** Most common prefix; ties go to the one seen first; MISC when none matches. */
export function customerPrefix(fileNames) {
  const found = fileNames.map(prefixOf).filter(Boolean);
  if (!found.length) return DEFAULT_PREFIX;
  const counts = new Map();
  for (const p of found) counts.set(p, (counts.get(p) || 0) + 1);
  const best = Math.max(...counts.values());
  return found.find((p) => counts.get(p) === best);
}

/** Per-prefix counts, most common first (ties: first seen), for the preview. */
export function prefixCounts(fileNames) {
  const counts = new Map();
  for (const name of fileNames) {
    const p = prefixOf(name) || DEFAULT_PREFIX;
    counts.set(p, (counts.get(p) || 0) + 1);
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1]);
}

/**
 * Python's str.casefold() for comparing names: lower, upper, lower again folds "ß", "ẞ" and
 * "SS" together as casefold does; dotless "ı" is kept apart from "i", as casefold keeps it.
 */
export function casefold(text) {
  return text
    .split("\u0131")
    .map((part) => part.toLowerCase().toUpperCase().toLowerCase())
    .join("\u0131");
}

function stem(name) {
  const trimmed = name.replace(/^\.+|\.+$/g, "");
  return trimmed.includes(".") ? name.slice(0, name.lastIndexOf(".")) : name;
}

/** '{N}-view Render' when names differ only in their last '_' token, else '{N} files' / '1 file'. */
export function autoDescription(fileNames) {
  const n = fileNames.length;
  if (n >= 2) {
    const parts = fileNames.map((name) => stem(nfc(name)).split("_"));
    if (parts.every((p) => p.length >= 2)) {
      const heads = new Set(parts.map((p) => p.slice(0, -1).join("\u0000")));
      const lasts = parts.map((p) => casefold(p[p.length - 1]));
      if (heads.size === 1 && new Set(lasts).size === n && lasts.every(Boolean)) {
        return `${n}-view Render`;
      }
    }
  }
  return n === 1 ? "1 file" : `${n} files`;
}

/** Today's batch date as the server computes it: YYYY-MM-DD in UTC. */
export function utcDate(now = new Date()) {
  return now.toISOString().slice(0, 10);
}

/** `{prefix}_{YYYY-MM-DD}_batch-{N}`; N is only known once the server created the batch. */
export function directoryName(prefix, date, counter = "?") {
  return `${prefix}_${date}_batch-${counter}`;
}
