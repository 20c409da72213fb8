import { canonicalIp } from '../policy/cidr.js'
import { readTextFile } from '../read-file.js'

/** One DHCP lease: who held an address, and when. Times in ms; start -Infinity when unknown. */
export interface Lease {
  readonly ip: string
  readonly mac?: string
  readonly hostname?: string
  readonly start: number
  readonly end: number
}

/** A hardware address: 6 (EUI-48) or 8 (EUI-64) octets of one or two hex digits, split by ':' or '-'. */
const MAC = /^[0-9a-f]{1,2}([:-])[0-9a-f]{1,2}(?:\1[0-9a-f]{1,2}){4}(?:(?:\1[0-9a-f]{1,2}){2})?$/i

/** An EUI-48 already in ECS's notation. */
const ECS_MAC = /^[0-9A-F]{2}(?:-[0-9A-F]{2}){5}$/

/**
 * A hardware address in the notation ECS gives for `client.mac` (RFC 7042 §2.1.1): two upper-case
 * hex digits per octet, joined by hyphens (`02-00-5E-10-00-0A`), so that a SIEM matches it with the
 * MACs that other ECS sources (Elastic Agent, Zeek, firewalls) write. Lease files write `aa:bb:…`,
 * and ISC dhcpd leaves out leading zeros (`2:0:5e:…`). undefined for anything that is not one.
 */
export function ecsMac(text: string | undefined): string | undefined {
  if (text === undefined) return undefined
  if (ECS_MAC.test(text)) return text                 // the common case (report reads it per line): as it is
  if (!MAC.test(text)) return undefined
  return text.split(/[:-]/).map(o => o.padStart(2, '0')).join('-').toUpperCase()
}

/** dnsmasq's lease file: `EXPIRY MAC IP HOSTNAME CLIENT-ID` (0 = never expires; `*` = none; IPv6 lines carry an IAID). */
export function parseDnsmasq(text: string): Lease[] {
  const out: Lease[] = []
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/)
    if (f.length < 4 || !/^\d+$/.test(f[0]!)) continue
    const expiry = Number(f[0]) * 1000
    out.push({
      ip: f[2]!, mac: ecsMac(f[1]), hostname: f[3] === '*' ? undefined : f[3],
      start: -Infinity, end: expiry === 0 ? Infinity : expiry,
    })
  }
  return out
}

/** `starts 4 2026/11/20 10:00:00;` (UTC), `starts epoch 1763632800;`, `ends never;` */
function iscTime(v: string | undefined, never: number): number {
  if (v === undefined || v === 'never') return never
  const epoch = /^epoch (\d+)/.exec(v)
  if (epoch) return Number(epoch[1]) * 1000
  const m = /^\d (\d{4})\/(\d\d)\/(\d\d) (\d\d):(\d\d):(\d\d)/.exec(v)
  return m ? Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) : never
}

/**
 * ISC dhcpd's dhcpd.leases: `lease IP { starts …; ends …; hardware ethernet MAC; client-hostname "name"; }`;
 * and its DHCPv6 dhcpd6.leases: `ia-na "…" { cltt …; iaaddr IP { ends …; set ddns-fwd-name = "name"; } }`,
 * which names a machine only by its DUID (no MAC) and only by the DNS name it was given, if any.
 */
export function parseIscDhcpd(text: string): Lease[] {
  const v6: Held[] = []
  for (const m of text.matchAll(/^\s*iaaddr\s+(\S+)\s*\{([^}]*)\}/gm)) {
    const body = m[2]!
    const get = (re: RegExp) => re.exec(body)?.[1]
    v6.push({
      lease: {
        ip: m[1]!, mac: undefined,
        hostname: get(/set ddns-fwd-name = "([^"]*?)\.?";/) || undefined,
        start: -Infinity, end: iscTime(get(/\bends ([^;]+);/), Infinity),
      },
      held: true,
    })
  }
  const v4: Held[] = []
  for (const m of text.matchAll(/^lease\s+(\S+)\s*\{([^}]*)\}/gm)) {
    const body = m[2]!
    const get = (re: RegExp) => re.exec(body)?.[1]
    v4.push({
      lease: {
        ip: m[1]!,
        mac: ecsMac(get(/hardware ethernet ([0-9a-fA-F:]+);/)),
        hostname: get(/client-hostname "([^"]*)";/),
        start: iscTime(get(/\bstarts ([^;]+);/), -Infinity),
        end: iscTime(get(/\bends ([^;]+);/), Infinity),
      },
      held: true,
    })
  }
  return [...inOrder(v6), ...inOrder(v4)]
}

/** A record of a lease file that is a log (dhcpd.leases, Kea's CSV: each change appended), and whether it names its holder. */
interface Held { readonly lease: Lease; readonly held: boolean }

/**
 * The leases of records in file order, a later record of an address superseding the earlier:
 * one with the same start is the same lease written again (renewed, or ended early: dhcpd's
 * release writes the lease again with its end at the release; it held the address until then),
 * and replaces it; one with a later start (a renewal, another machine) ends the earlier there (a
 * Kea release is a row from the release on, of no time). Before, a released lease kept naming
 * its machine for as long as the lease would have run. A record with `held` false names nobody.
 */
function inOrder(records: readonly Held[]): Lease[] {
  const by = new Map<string, Lease[]>()
  for (const { lease, held } of records) {
    const earlier = by.get(lease.ip) ?? []
    const kept: Lease[] = []
    for (const l of earlier) {
      if (l.start === lease.start) continue
      kept.push(l.start < lease.start && lease.start < l.end ? { ...l, end: lease.start } : l)
    }
    if (held) kept.push(lease)
    by.set(lease.ip, kept)
  }
  return [...by.values()].flat()
}

/** Kea's memfile CSV (lease4 or lease6): columns by the header (address, hwaddr, valid_lifetime, expire, hostname). */
export function parseKeaCsv(text: string): Lease[] {
  const [header, ...rows] = text.split('\n')
  const cols = header!.trim().split(',')
  const at = (row: string[], name: string) => row[cols.indexOf(name)]
  const out: Held[] = []
  for (const line of rows) {
    const row = line.trim().split(',')
    const ip = at(row, 'address')
    const expire = Number(at(row, 'expire')) * 1000
    if (!ip || !Number.isFinite(expire)) continue
    const hostname = at(row, 'hostname')?.replace(/\.$/, '')
    const lt = at(row, 'valid_lifetime')
    const lifetime = Number(lt ?? 0) * 1000
    // a release is written with a lifetime of 0 (from then on); state 1: declined (no client holds it)
    out.push({
      lease: { ip, mac: ecsMac(at(row, 'hwaddr')), hostname: hostname || undefined, start: expire - lifetime, end: expire },
      held: (lt === undefined || lifetime > 0) && at(row, 'state') !== '1',
    })
  }
  return inOrder(out)
}

/** Any of the three, told apart by their look. */
export function parseLeases(text: string): Lease[] {
  if (/^address,/.test(text)) return parseKeaCsv(text)
  if (/^\s*(?:lease|iaaddr)\s+\S+\s*\{/m.test(text)) return parseIscDhcpd(text)
  return parseDnsmasq(text)
}

/**
 * Text that is a lease file holding no lease now: a Kea CSV header, an ISC dhcpd.leases header
 * (its comments, `authoring-byte-order`, `server-duid`), a dnsmasq `duid` line, comments. Such a
 * file is what a DHCP server writes when no lease is held: empty, not the wrong file.
 */
export function isEmptyLeaseFile(text: string): boolean {
  return text.split('\n').every(l => {
    const line = l.trim()
    return line === '' || line.startsWith('#') || /^address,/.test(line) || /^(authoring-byte-order|server-duid|duid)\s/.test(line)
  })
}

/** Of one address's leases, the one that covered `time` (latest start wins); no allocation. */
export function pickLease(list: readonly Lease[] | undefined, time: number): Lease | undefined {
  if (list === undefined) return undefined
  let best: Lease | undefined
  for (let i = 0; i < list.length; i++) {
    const l = list[i]!
    if (l.start <= time && time <= l.end && (!best || l.start >= best.start)) best = l
  }
  return best
}

/**
 * Leases by address, in the form a line names a client (canonicalIp: `2001:DB8:1::21` and
 * `::ffff:10.0.0.5` as `2001:db8:1::21` and `10.0.0.5`); `at(ip, time)` is the lease that covered
 * the address at that time (latest start wins).
 */
export class LeaseIndex {
  readonly #byIp = new Map<string, Lease[]>()
  constructor(leases: Iterable<Lease>) {
    for (const l of leases) {
      const ip = canonicalIp(l.ip)
      const list = this.#byIp.get(ip)
      if (list) list.push(l)
      else this.#byIp.set(ip, [l])
    }
  }

  /** Every lease of an address, in file order. */
  get(ip: string): readonly Lease[] | undefined {
    return this.#byIp.get(ip)
  }

  at(ip: string, time: number): Lease | undefined {
    return pickLease(this.#byIp.get(ip), time)
  }
}

/**
 * Read and index lease files (dnsmasq, ISC dhcpd or Kea CSV, detected per file), for `report`:
 * bounded as the config and lists are (a device is refused; a pipe, `--leases <(ssh router cat …)`,
 * is read to PIPE_MAX_BYTES).
 */
export async function loadLeases(files: readonly string[]): Promise<LeaseIndex> {
  const all: Lease[] = []
  for (const f of files) {
    let text: string
    try {
      // /dev/null too: a device, and no lease file
      text = readTextFile(f, 'utf8', { pipes: true, devNull: false })
    } catch (e) {
      // each error names the file once, first (Node's own end with the call, and the path: `…, open '/x'`)
      throw new Error(`${f}: ${(e as Error).message.replace(/, \w+( '.*')?$/, '')}`)
    }
    const leases = parseLeases(text)
    // text with no lease in it is the wrong file (dhcpd.conf for dhcpd.leases), not an empty one:
    // the report would show no names, and say nothing
    if (leases.length === 0 && !isEmptyLeaseFile(text)) throw new Error(`${f}: no lease found (expected a dnsmasq, ISC dhcpd or Kea CSV lease file)`)
    all.push(...leases)
  }
  return new LeaseIndex(all)
}
