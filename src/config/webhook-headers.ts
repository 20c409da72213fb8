/**
 * alerts.webhook.headers: whether each `name: value` can be sent with every alert's POST, as
 * fetch would send it, and if not, why.
 */
import { TCHAR_CLASS } from '../http-token.js'

/** An HTTP field name: an RFC 9110 token (§5.6.2), what fetch's Headers takes. */
const HEADER_NAME = new RegExp(`^${TCHAR_CLASS}+$`)
/**
 * What fetch (undici) sends as a field value: tab, space, visible ASCII and obs-text (0x80-0xFF).
 * Headers refuses CR, LF and NUL, the request the other controls, WebIDL's ByteString anything above 0xFF.
 */
const HEADER_VALUE_BAD = /[^\t\x20-\x7e\x80-\xff]/
const CONTROL_NAMES: Readonly<Record<number, string>> = { 0: 'NUL', 10: 'LF (a line break)', 13: 'CR (a line break)' }

/**
 * Headers the webhook's POST cannot carry as given (lower case → why, and what to do): fetch sets
 * them itself, refuses them, or would send a body that does not match them.
 */
const WEBHOOK_OWN_HEADERS: Readonly<Record<string, string>> = {
  'content-length': "is set from each alert's body (a fixed one would not match it, and the POST would hang or fail); remove it",
  host: 'is set from alerts.webhook.url (fetch does not send one given here); remove it, or put the host in the URL',
  'transfer-encoding': 'is for fetch to set (it refuses one given here, and the alert would never be sent); remove it',
  'keep-alive': 'is for fetch to set (it refuses one given here, and the alert would never be sent); remove it',
  upgrade: 'is for fetch to set (it refuses one given here, and the alert would never be sent); remove it',
  expect: 'is not supported by fetch (it refuses the request, and the alert would never be sent); remove it',
}

/**
 * Why alerts.webhook.headers' `name: value` could not be sent with every alert, or undefined when
 * it can. `seen` holds the names before it (lower case → as written): a name given twice is said.
 */
export function webhookHeaderProblem(name: string, value: string, seen: Map<string, string>): string | undefined {
  if (!HEADER_NAME.test(name)) {
    return `${JSON.stringify(name)} is not a header name; write letters, digits and !#$%&'*+-.^_\`|~ only (no spaces, colons or other characters), e.g. X-Api-Key`
  }
  const lower = name.toLowerCase()
  const first = seen.get(lower)
  if (first !== undefined) return `${name} is ${first} again (header names are compared without case); give it once`
  seen.set(lower, name)
  const own = WEBHOOK_OWN_HEADERS[lower]
  if (own !== undefined) return `${name} ${own}`
  const bad = HEADER_VALUE_BAD.exec(value)
  if (bad) {
    const code = value.codePointAt(bad.index)!
    const what = CONTROL_NAMES[code] ?? `U+${code.toString(16).toUpperCase().padStart(4, '0')}`
    return `the value of ${name} has ${what} at character ${bad.index + 1}; a header value is one line of printable characters (tab allowed; no CR, LF, NUL or other control character, nothing above U+00FF)`
  }
  if (lower === 'connection' && !/^(close|keep-alive)$/i.test(value.trim())) {
    return `${name} may only be close or keep-alive (fetch refuses any other, and the alert would never be sent); remove it, or write close`
  }
  return undefined
}
