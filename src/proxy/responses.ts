import { STATUS_CODES, type ServerResponse } from 'node:http'

/** Header carrying the one-line reason of a refusal made by the proxy. */
export const REASON_HEADER = 'x-tunnelguard-reason'

/** Untrusted text made safe for one header line or log field: printable ASCII only, bounded. */
export function oneLine(s: string, max = 512): string {
  const t = s.replace(/[^\x20-\x7e]/g, '?')
  return t.length > max ? `${t.slice(0, max)}…` : t
}

/**
 * The body of the proxy's own answer: who answered (a user sees it as the page; a one-line
 * `block: x matches y in list z` alone did not say that the network's proxy refused), then the
 * one-line reason (the X-Tunnelguard-Reason header's).
 */
function errorBody(status: number, line: string): string {
  return `${status} ${STATUS_CODES[status]} from tunnelguard, this network's proxy:\n${line}\n`
}

/** A complete HTTP/1.1 response for a raw socket (CONNECT refusals, overload), closing the connection. */
export function rawResponse(status: number, reason: string): string {
  const line = oneLine(reason)
  const body = errorBody(status, line)
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n`
    + 'Content-Type: text/plain; charset=utf-8\r\n'
    + `Content-Length: ${Buffer.byteLength(body)}\r\n`
    + `X-Tunnelguard-Reason: ${line}\r\n`
    + (status === 503 ? 'Retry-After: 1\r\n' : '')
    + 'Connection: close\r\n\r\n' + body
}

/** Answer an HTTP request with a refusal and its reason (body and header). */
export function sendError(res: ServerResponse, status: number, reason: string, close = false): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const line = oneLine(reason)
  const body = errorBody(status, line)
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    [REASON_HEADER]: line,
    ...(close ? { connection: 'close' } : {}),
  })
  res.end(body)
}
