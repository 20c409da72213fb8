// Query types, classes and rcodes as log lines name them (RFC 3597 style for the rest), and the event.outcome of an rcode.
import type { EventOutcome } from '../observe/types.js'
import { RCODE } from './wire.js'

const TYPES: Record<number, string> = {
  1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 13: 'HINFO', 15: 'MX', 16: 'TXT', 28: 'AAAA',
  33: 'SRV', 35: 'NAPTR', 39: 'DNAME', 41: 'OPT', 43: 'DS', 46: 'RRSIG', 47: 'NSEC', 48: 'DNSKEY',
  50: 'NSEC3', 52: 'TLSA', 64: 'SVCB', 65: 'HTTPS', 99: 'SPF', 251: 'IXFR', 252: 'AXFR', 255: 'ANY', 257: 'CAA',
}

const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'YXDOMAIN', 'YXRRSET', 'NXRRSET', 'NOTAUTH', 'NOTZONE']

export function typeName(t: number): string {
  return TYPES[t] ?? `TYPE${t}`
}

const CLASSES: Record<number, string> = { 3: 'CH', 4: 'HS', 254: 'NONE', 255: 'ANY' }

/** A query class other than IN by its name (RFC 3597 style for the rest); undefined for IN, which lines leave out. */
export function className(c: number): string | undefined {
  return c === 1 ? undefined : CLASSES[c] ?? `CLASS${c}`
}

export function rcodeName(r: number): string {
  return RCODES[r] ?? (r === 16 ? 'BADVERS' : `RCODE${r}`)
}

/**
 * event.outcome of a query answered as asked, by the answer's rcode: an answer (NOERROR, or
 * NXDOMAIN: the name does not exist) is a success; an error rcode (SERVFAIL: the upstream failed
 * or timed out; REFUSED, FORMERR, NOTIMP …) a failure.
 */
export function outcomeOf(rcode: number): EventOutcome {
  return rcode === RCODE.NOERROR || rcode === RCODE.NXDOMAIN ? 'success' : 'failure'
}
