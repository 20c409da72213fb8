import { basename } from 'node:path'

/**
 * A remote list's URL as it may be shown (log lines, the state dir's .json, `lists`, `check`,
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
 * What a list URL is fetched with: the URL without its user info (fetch refuses a URL with
 * credentials) and, when it had some, `Authorization: Basic` from the percent-decoded user and
 * password.
 */
export function listRequest(raw: string): { url: string; authorization?: string } {
  const u = new URL(raw)
  if (!u.username && !u.password) return { url: raw }
  const basic = Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`, 'utf8').toString('base64')
  u.username = ''
  u.password = ''
  return { url: u.href, authorization: `Basic ${basic}` }
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
