import { normalizeName, type Normalized } from '../normalize.js'
import type { MatchKind, SigmaRef } from '../types.js'

/** Where a format parser sends what it reads: entries (name still raw) and warnings, by line. */
export interface EntrySink {
  entry(name: string, kind: MatchKind, allow: boolean, pattern: string, line: number, sigma?: SigmaRef): void
  warn(line: number, message: string): void
}

/** What a list line may be, for warnings about lines that are none of these. */
export const VALID_LINES = 'valid: a domain (ngrok.io: it and its subdomains), *.domain (subdomains only), '
  + 'a hosts line (0.0.0.0 host), an adblock rule (||domain^, or @@||domain^ to allow), or a # comment'

/** An ASCII character that cannot be in a host name (the IDNA step would cut the name there: `a/b` → `a`). */
const BAD_ASCII = /[^A-Za-z0-9._\-\u0080-\uffff]/

/**
 * Normalize a listed name. ASCII characters outside letters, digits, `-`, `_` and `.` are refused
 * first (URL parsing would silently cut `ghostbin.co/` to `ghostbin.co`); the root (empty name)
 * is refused too, it would match nothing useful.
 */
export function listedName(raw: string): Normalized {
  const n = normalizeName(raw)
  const bad = n.ok && n.name !== raw ? BAD_ASCII.exec(raw) : null
  if (bad) return { ok: false, reason: `character "${bad[0]}" not allowed in a host name` }
  if (n.ok && n.name === '') return { ok: false, reason: 'empty name' }
  return n
}

/** Space, tab or carriage return. */
export function isSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 13
}
