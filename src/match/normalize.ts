import { domainToASCII } from 'node:url'

export type Normalized = { readonly ok: true; readonly name: string } | { readonly ok: false; readonly reason: string }

const MAX_NAME = 253          // RFC 1035: 255 octets on the wire = 253 characters in text form
const MAX_LABEL = 63

/** Is `c` a character of an already-normal name: a-z 0-9 - _ . */
function plain(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 95 || c === 46
}

/** Check label lengths and empty labels on an ASCII, lowercase name without a trailing dot. */
function checkLengths(name: string): string | undefined {
  if (name.length > MAX_NAME) return `name longer than ${MAX_NAME} characters`
  let start = 0
  for (let i = 0; i <= name.length; i++) {
    if (i === name.length || name.charCodeAt(i) === 46) {
      const len = i - start
      if (len === 0) return 'empty label'
      if (len > MAX_LABEL) return `label longer than ${MAX_LABEL} characters`
      start = i + 1
    }
  }
  return undefined
}

/**
 * Normalize a name once: lowercase, trailing dot dropped, IDNA to ASCII (punycode), RFC 1035
 * lengths. The root ("." or "") normalizes to "". Already-normal names are returned as they are.
 */
export function normalizeName(raw: string): Normalized {
  let name = raw.charCodeAt(raw.length - 1) === 46 ? raw.slice(0, -1) : raw
  if (name.length === 0) return { ok: true, name: '' }          // the root: "." or 
  let fast = true
  for (let i = 0; i < name.length; i++) {
    if (!plain(name.charCodeAt(i))) { fast = false; break }
  }
  if (!fast) {
    const lower = name.toLowerCase()
    let ascii = true
    for (let i = 0; i < lower.length; i++) {
      const c = lower.charCodeAt(i)
      if (plain(c)) continue
      // IDNA would cut the name at / ? # \ and drop other ASCII: refuse it here instead
      if (c < 0x80) return { ok: false, reason: `character "${lower[i]}" not allowed in a host name` }
      ascii = false
    }
    if (ascii) name = lower
    else {
      name = domainToASCII(lower)
      if (name === '') return { ok: false, reason: 'not a valid host name (IDNA conversion failed)' }
      for (let i = 0; i < name.length; i++) {
        // a compatibility character can map to ASCII punctuation (e.g. fullwidth ／ to /)
        if (!plain(name.charCodeAt(i))) return { ok: false, reason: `character "${name[i]}" not allowed in a host name` }
      }
    }
  }
  const bad = checkLengths(name)
  return bad ? { ok: false, reason: bad } : { ok: true, name }
}

/**
 * A name as `report` and the live client table group it: lowercase, one trailing dot dropped,
 * nothing else changed (an address, or a name normalizeName refuses, stays as it was written).
 * `CONNECT.Ngrok-Agent.COM.` and `connect.ngrok-agent.com` are one name. A name that is already
 * folded is returned as it is.
 */
export function foldName(raw: string): string {
  const end = raw.length > 1 && raw.charCodeAt(raw.length - 1) === 46 ? raw.length - 1 : raw.length
  for (let i = 0; i < end; i++) {
    const c = raw.charCodeAt(i)
    if ((c >= 65 && c <= 90) || c >= 128) return raw.slice(0, end).toLowerCase()
  }
  return end === raw.length ? raw : raw.slice(0, end)
}
