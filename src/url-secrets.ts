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

/** The URL as a log line or an API shows it: its password and every query value replaced by `***`. Text that is not a URL is shown as it is. */
export function redactUrl(url: string): string {
  if (!URL.canParse(url)) return url
  const u = new URL(url)
  if (u.password !== '') u.password = '***'
  if (u.search !== '') u.search = [...u.searchParams.keys()].map(k => `${encodeURIComponent(k)}=***`).join('&')
  return u.href
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
