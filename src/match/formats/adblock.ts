import { listedName, VALID_LINES, type EntrySink } from './sink.js'

/** Options that do not narrow when a rule applies, so a DNS list can honour them by ignoring them. */
const SAFE_OPTIONS = new Set(['important', 'all'])

/**
 * An adblock-syntax line (comment lines already skipped): `||domain^` blocks the domain and its
 * subdomains, `||*.domain^` its subdomains only, `@@||domain^` is an allow exception. Options
 * after `$` other than important/all narrow the rule in ways a name list cannot express: the line
 * is skipped with a warning, as are URL, regex and element-hiding rules.
 */
export function parseAdblockLine(text: string, line: number, sink: EntrySink): void {
  let body = text
  const allow = body.startsWith('@@')
  if (allow) body = body.slice(2)
  const dollar = body.indexOf('$')
  if (dollar >= 0) {
    const bad = body.slice(dollar + 1).split(',').map(o => o.trim().toLowerCase()).filter(o => !SAFE_OPTIONS.has(o))
    if (bad.length > 0) {
      sink.warn(line, `adblock rule "${text}" skipped: option $${bad.join(',$')} limits when it applies, `
        + 'which a DNS list cannot honour (only $important and $all are accepted)')
      return
    }
    body = body.slice(0, dollar)
  }
  if (!body.startsWith('||')) {
    sink.warn(line, `adblock rule "${text}" skipped: only ||domain^ rules name hosts; ${VALID_LINES}`)
    return
  }
  body = body.slice(2)
  if (body.endsWith('^|')) body = body.slice(0, -2)
  else if (body.endsWith('^')) body = body.slice(0, -1)
  const sub = body.startsWith('*.')
  const n = listedName(sub ? body.slice(2) : body)
  if (!n.ok) {
    sink.warn(line, `adblock rule "${text}" skipped: "${body}" is not a host name (${n.reason}); ${VALID_LINES}`)
    return
  }
  sink.entry(n.name, sub ? 'subdomains' : 'domain', allow, text, line)
}
