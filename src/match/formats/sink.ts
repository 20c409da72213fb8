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

/**
 * Normalize a listed name (normalizeName refuses ASCII that is not letters, digits, `-`, `_`
 * or `.`, so `ghostbin.co/` is not cut to `ghostbin.co`); the root (empty name) is refused too,
 * it would match nothing useful.
 */
export function listedName(raw: string): Normalized {
  const n = normalizeName(raw)
  if (n.ok && n.name === '') return { ok: false, reason: 'empty name' }
  return n
}

/** Space, tab or carriage return. */
export function isSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 13
}
