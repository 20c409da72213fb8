// What a CONNECT tunnel that is not opened after its 200 tells the client instead of a status.
import type { Decision } from '../policy/types.js'
import { clientReason } from './decide.js'
import { rawResponse } from './responses.js'

/**
 * A fatal TLS alert record, internal_error (RFC 8446 §6): what a TLS client is sent when its
 * tunnel cannot be opened after the 200. In plaintext, as a server's alerts before its
 * ServerHello are; clients report it ("tlsv1 alert internal error") rather than an unexplained EOF.
 */
export const TLS_INTERNAL_ERROR = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 80])

/**
 * A fatal TLS alert record, access_denied (RFC 8446 §6.2: access control applied, the sender
 * does not proceed): what a TLS client whose ClientHello is blocked is sent before the close
 * ("tlsv1 alert access denied"), so that a user sees a refusal, not a connection that broke.
 */
export const TLS_ACCESS_DENIED = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 49])

/**
 * What a blocked tunnel is told before it is closed, by what its first bytes were (its line's
 * `tunnelguard.sni_status`): a ClientHello, read or malformed, gets the access_denied alert; an
 * HTTP request head (read, or one that could not be read safely) a 403 naming the list and
 * entry, as a plain-HTTP request's; other bytes (proxy.nonTls: block) nothing (no protocol known).
 */
export function blockAnswer(status: unknown, d: Decision): { sent: 'tls_alert' | 'http_response'; bytes: Buffer | string } | undefined {
  if (status === 'ok' || status === 'none' || status === 'invalid') return { sent: 'tls_alert', bytes: TLS_ACCESS_DENIED }
  if (status === 'http' || status === 'http-invalid') return { sent: 'http_response', bytes: rawResponse(403, clientReason(d)) }
  return undefined
}
