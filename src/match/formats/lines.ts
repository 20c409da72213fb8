import { parseAdblockLine } from './adblock.js'
import { isHostsAddress, parseHostsTokens } from './hosts.js'
import { parsePlainToken } from './plain.js'
import { isSpace, VALID_LINES, type EntrySink } from './sink.js'

const HASH = 35
const BANG = 33

/**
 * A line-oriented list where plain, hosts-file and adblock lines may be mixed: each line is read
 * by its own look. `#` and `!` start comment lines; `# ...` after an entry is a comment too.
 * It is read in steps: it stops (yields) after the line that ends at or past each `stepChars`
 * characters, so that a caller can give the event loop a turn while a big list is read. With
 * `every` > 1 only every `every`th line is read (a sample). Returns how many lines the text has.
 */
export function* parseLinesInSteps(text: string, sink: EntrySink, stepChars: number, every = 1): Generator<void, number> {
  const at = { s: text.charCodeAt(0) === 0xfeff ? 1 : 0, line: 0 }
  while (at.s <= text.length) {
    parseLinesUntil(text, at, at.s + stepChars, every, sink)
    if (at.s <= text.length) yield
  }
  return at.line
}

/** The lines from `at` on, until one ends at or past `stop` or the text ends; `at` is moved past them. */
function parseLinesUntil(text: string, at: { s: number; line: number }, stop: number, every: number, sink: EntrySink): void {
  let s = at.s
  let line = at.line
  while (s <= text.length) {
    let e = text.indexOf('\n', s)
    if (e < 0) e = text.length
    line++
    if (every === 1 || line % every === 0) parseLine(text, s, e, line, sink)
    s = e + 1
    if (s >= stop) break
  }
  at.s = s
  at.line = line
}

function parseLine(text: string, s: number, e: number, line: number, sink: EntrySink): void {
  while (s < e && isSpace(text.charCodeAt(s))) s++
  while (e > s && isSpace(text.charCodeAt(e - 1))) e--
  if (s === e) return
  const first = text.charCodeAt(s)
  if (first === HASH || first === BANG) return
  // fast path: one token, nothing special (most lines of a big plain list)
  let spaced = false
  let special = first === 124 /* | */ || first === 64 /* @ */ || first === 91 /* [ */ || first === 47 /* / */
  for (let i = s; i < e && !special; i++) {
    const c = text.charCodeAt(i)
    if (isSpace(c)) spaced = true
    else if (c === 94 /* ^ */ || c === 36 /* $ */ || (c === HASH && text.charCodeAt(i + 1) === HASH)) special = true
  }
  const body = text.slice(s, e)
  if (special) {
    if (first === 91 && body.endsWith(']')) return  // [Adblock Plus 2.0] header
    parseAdblockLine(body, line, sink)
    return
  }
  if (!spaced) {
    if (((first >= 48 && first <= 57) || first === 58) && isHostsAddress(body)) parseHostsTokens([body], line, sink)
    else parsePlainToken(body, line, sink)
    return
  }
  const tokens = body.split(/[ \t\r]+/)
  const hash = tokens.findIndex(t => t.startsWith('#'))
  const words = hash < 0 ? tokens : tokens.slice(0, hash)
  if (isHostsAddress(words[0]!)) parseHostsTokens(words, line, sink)
  else if (words.length === 1) parsePlainToken(words[0]!, line, sink)
  else sink.warn(line, `invalid entry "${body}": one name per line; ${VALID_LINES}`)
}
