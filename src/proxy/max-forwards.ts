// Max-Forwards on TRACE and OPTIONS: the hop that reaches 0 answers the request itself.
import type { IncomingMessage, ServerResponse } from 'node:http'
import { replaceField, type RawHeaders } from './headers.js'

/** What this proxy serves itself, for OPTIONS with Max-Forwards: 0. */
const ALLOW = 'GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH'
/** Fields a TRACE echo leaves out: credentials and cookies are not to be reflected (RFC 9110 §9.3.8). */
const NOT_ECHOED = new Set(['authorization', 'proxy-authorization', 'cookie'])

/**
 * Max-Forwards on TRACE and OPTIONS (RFC 9110 §7.6.2): 0 is answered here (TRACE: the request as
 * received, as message/http, without credentials or cookies; OPTIONS: 200 with Allow), and true
 * is returned; a larger value is decremented in the headers to send. Other methods, and a value
 * that is not a number, are forwarded as they are.
 */
export function maxForwards(req: IncomingMessage, res: ServerResponse, headers: RawHeaders): boolean {
  const mf = req.headers['max-forwards']
  if ((req.method !== 'TRACE' && req.method !== 'OPTIONS') || typeof mf !== 'string' || !/^\d{1,9}$/.test(mf)) return false
  const n = Number(mf)
  if (n > 0) {
    replaceField(headers, 'max-forwards', String(n - 1))
    return false
  }
  req.resume()
  if (req.method === 'OPTIONS') {
    res.writeHead(200, { allow: ALLOW, 'content-length': 0 })
    res.end()
    return true
  }
  let echo = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (!NOT_ECHOED.has(req.rawHeaders[i]!.toLowerCase())) echo += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`
  }
  res.writeHead(200, { 'content-type': 'message/http', 'content-length': Buffer.byteLength(echo) })
  res.end(echo)
  return true
}
