import { basename } from 'node:path'

/**
 * URLs that carry secrets (a list or webhook URL with user:password@ or a token in its query):
 * how they are shown, and how the credentials are sent. fetch (undici) refuses a URL with
 * credentials in it, so they go in an Authorization header instead.
 */

/** `Basic …` for a URL's user and password (percent-decoded), or undefined when it has none. */
export function basicAuth(u: URL): string | undefined {
  if (u.username === '' && u.password === '') return undefined
  return `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`
}

/**
 * A URL with secrets as it may be shown (log lines, the state dir's .json, `lists`, `check`,
 * the admin API): the password and every query value (and a fragment) replaced by `***`, the
 * user name, host, path and query keys kept: `http://u:***@host/t.txt?key=***`.
 */
export function redactUrl(raw: string): string {
  if (!URL.canParse(raw)) return raw
  const u = new URL(raw)
  const user = u.username + (u.password ? ':***' : '')
  const query = u.search.slice(1).split('&').map(p => {
    const eq = p.indexOf('=')
    return eq >= 0 ? `${p.slice(0, eq)}=***` : p && '***'
  }).join('&')
  return `${u.protocol}//${user && `${user}@`}${u.host}${u.pathname}${query && `?${query}`}${u.hash && '#***'}`
}

/**
 * Text as typed, the password of a URL at its start (`scheme://user:password@`) replaced by `***`
 * and nothing else changed: `check` repeats the URL a responder pasted, and a password pasted with
 * it is not repeated to the screen or to the admin API's readers.
 */
export function withoutPassword(text: string): string {
  return text.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/?#@:]*:)[^/?#]*@/i, '$1***@')
}

/** The URL to fetch (no credentials in it) and the Authorization value its credentials make. */
export function withoutCredentials(url: string): { url: string; authorization?: string } {
  const u = new URL(url)
  const authorization = basicAuth(u)
  if (authorization === undefined) return { url }
  u.username = ''
  u.password = ''
  return { url: u.href, authorization }
}

/**
 * A list entry's source as the admin listener shows it: a file by its name, without the
 * directories; a URL without user, password, query or fragment (where a list's token would be).
 * The line stays: `ngrok.txt:12`, `https://lists.example/t.txt:3`.
 */
export function shortSource(source: string): string {
  const [, where, line] = /^(.*?)((?::\d+)?)$/s.exec(source)!
  const url = /^https?:\/\//i.test(where!) && URL.canParse(where!) ? new URL(where!) : undefined
  return (url ? `${url.protocol}//${url.host}${url.pathname}` : basename(where!)) + line
}
