/**
 * One element of a `Forwarded` field (RFC 7239 §4), one hop: its `for` value, unquoted (a node:
 * an address, `"[2001:db8::1]:4711"`, `unknown`, `_hidden`), or none when the element has no
 * readable one (no `for`, two of them, or a pair that is not `name=value`); `text` the element as
 * sent, for the line to say what could not be read.
 */
export interface ForwardedHop { readonly for?: string; readonly text: string }

/** Control bytes (HTAB aside): no field value carries them (RFC 9110 §5.5); node's parser refuses them before this. */
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/
/**
 * One `name=value` pair and the `;` after it (or the element's end). The name is a token,
 * case-insensitive; the value a quoted-string or, as senders write it unquoted anyway
 * (`for=192.0.2.1:80`, `for=[2001:db8::1]`), a run of bytes that are not a delimiter. Whitespace
 * around `;` and `=` is taken (RFC 7239 has none; senders write `for=a; proto=http`).
 */
const PAIR = /[ \t]*([!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]*=[ \t]*(?:"((?:[^"\\]|\\[^])*)"|([^";,\s]+))[ \t]*(?:;|$)/y
/** An empty pair (`;;`, RFC 7239's `[ forwarded-pair ]`). */
const EMPTY = /[ \t]*;/y

/**
 * The hops a `Forwarded` field names, left to right (the last one the nearest proxy's), from the
 * field as node joins repeated lines (`, `): elements split at the commas outside quoted strings,
 * empty elements skipped (RFC 9110 §5.6.1). Undefined when the field names no client (no element
 * has a `for`: `proto=https` alone). A field that cannot be split (an unclosed quoted string: where
 * the elements end is not known; a control byte) is one hop without a `for`, the whole field.
 * Linear in the field's length.
 */
export function forwardedHops(value: string): readonly ForwardedHop[] | undefined {
  const whole = [{ text: value.trim() }]
  if (CONTROL.test(value)) return whole
  const hops: ForwardedHop[] = []
  let named = false
  let start = 0
  let quoted = false
  for (let i = 0; i <= value.length; i++) {
    const c = value.charCodeAt(i)                    // NaN past the end
    if (quoted) {
      if (c === 0x5c) i++                            // a quoted-pair: the next byte is taken as it is
      else if (c === 0x22) quoted = false
      continue
    }
    if (c === 0x22) quoted = true
    else if (c === 0x2c || i === value.length) {
      const text = value.slice(start, i).trim()
      start = i + 1
      if (text === '') continue
      const f = forOf(text)
      if (f !== null) named = true
      hops.push(f === null || f === undefined ? { text } : { for: f, text })
    }
  }
  if (quoted) return whole
  return named ? hops : undefined
}

/**
 * An element's `for` value, unquoted; null when it has none; undefined when the element is not
 * `pair *(";" pair)` or names `for` twice (RFC 7239 §4: a parameter occurs once per element).
 */
function forOf(element: string): string | null | undefined {
  let found: string | null = null
  let i = 0
  while (i < element.length) {
    EMPTY.lastIndex = i
    if (EMPTY.test(element)) {
      i = EMPTY.lastIndex
      continue
    }
    PAIR.lastIndex = i
    const m = PAIR.exec(element)
    if (m === null) return undefined
    i = PAIR.lastIndex
    if (m[1]!.toLowerCase() !== 'for') continue
    if (found !== null) return undefined
    found = m[2] === undefined ? m[3]! : m[2].replace(/\\([^])/g, '$1')
  }
  return found
}

/** A node's obfuscated port (`192.0.2.1:_abc`, `[2001:db8::1]:_x`, RFC 7239 §6.3): the address is still read. */
const OBFUSCATED_PORT = /^(\[[^\]]*\]|[\d.]+):_[A-Za-z0-9._-]+$/

/** A `for` node with its obfuscated port, if any, taken off: what forwardedIp reads. */
export function nodeAddress(node: string): string {
  return node.replace(OBFUSCATED_PORT, '$1')
}
