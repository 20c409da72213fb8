import { isMap, isNode, isScalar, isSeq, LineCounter, parseAllDocuments, type Node, type Pair, type YAMLMap } from 'yaml'
import type { SigmaRef } from '../types.js'
import { conditionPolarity, type Polarity } from './sigma-condition.js'
import { convertSigmaValue } from './sigma-value.js'
import type { EntrySink } from './sink.js'

/** Fields whose values are host names (Sysmon network_connection, dns_query; generic dns). */
const HOST_FIELDS = new Set(['destinationhostname', 'queryname', 'query'])

interface Rule {
  readonly ref: SigmaRef
  readonly sink: EntrySink
  readonly lineOf: (node: Node) => number
}

/** A mapping key as text (a complex key such as `? [a, b]` reads as its YAML text). */
function keyOf(p: Pair): string {
  return String(isScalar(p.key) ? p.key.value : p.key)
}

function text(map: YAMLMap, key: string): string {
  const v = map.get(key)
  return v === undefined || v === null ? '' : String(v)
}

/**
 * A Sigma rule file (one or more YAML documents). Values of DestinationHostname, QueryName and
 * query in the selections the condition uses become entries carrying the rule's id, title and
 * author; every host value that cannot (modifier, wildcard, negated filter, AND of two host
 * conditions) is a warning naming the rule and the value. A rule with no host field is a warning.
 */
export function parseSigma(src: string, sink: EntrySink): void {
  const lineCounter = new LineCounter()
  const docs = parseAllDocuments(src, { lineCounter })
  // parsed nodes always have a range; a parsed document always has contents (empty: a null scalar)
  const lineOf = (node: Node): number => lineCounter.linePos(node.range![0]).line
  if (docs.length === 0) sink.warn(1, 'empty file: not a Sigma rule')
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      for (const err of doc.errors) {
        sink.warn(lineCounter.linePos(err.pos[0]).line, `not valid YAML (${err.message.split('\n')[0]}); a Sigma rule file must be YAML`)
      }
      continue
    }
    const root = doc.contents
    if (!isMap(root)) {
      sink.warn(lineOf(root as Node), 'not a Sigma rule: expected a mapping with title, id, author and detection')
      continue
    }
    const ref: SigmaRef = Object.freeze({ id: text(root, 'id'), title: text(root, 'title'), author: text(root, 'author') })
    const det = root.get('detection', true)
    if (!isMap(det)) {
      sink.warn(lineOf(root), `Sigma rule ${ref.id}: no detection section, nothing loaded`)
      continue
    }
    parseDetection(det, { ref, sink, lineOf })
  }
}

function parseDetection(det: YAMLMap, rule: Rule): void {
  const { ref, sink, lineOf } = rule
  const names: string[] = []
  for (const p of det.items) {
    const k = keyOf(p)
    if (k !== 'condition' && k !== 'timeframe') names.push(k)
  }
  const cond = det.get('condition', true)
  const conds = (isSeq(cond) ? cond.items : [cond]).map(c => (isScalar(c) ? c.value : null))
    .filter((c): c is string => typeof c === 'string')
  let polarity: Polarity
  try {
    if (conds.length === 0) throw new Error('no condition')
    polarity = conditionPolarity(conds, names)
  } catch (err) {
    sink.warn(lineOf(det), `Sigma rule ${ref.id}: ${(err as Error).message}; reading every selection as a match`)
    polarity = { positive: new Set(names), negative: new Set() }
  }
  let hostValues = 0
  let loaded = 0
  const unseenFilters: string[] = []
  for (const p of det.items) {
    const sel = keyOf(p)
    if (!names.includes(sel)) continue
    const use = polarity.positive.has(sel) ? undefined
      : polarity.negative.has(sel) ? `selection ${sel} is negated by the condition (a filter)`
        : `selection ${sel} is not used by the condition`
    const maps = isMap(p.value) ? [p.value] : isSeq(p.value) ? p.value.items.filter(isMap) : []
    let hostsHere = 0
    for (const m of maps) {
      const seen = parseSelectionMap(m, use, rule)
      hostsHere += seen
      if (use === undefined && seen > 0) {
        loaded += seen
        const unseen = unseenFields(m)
        if (unseen.length > 0) {
          sink.warn(lineOf(m), `Sigma rule ${ref.id}: selection ${sel} also requires ${unseen.join(', ')}, which `
            + 'tunnelguard does not see: its names are decided for every client and program')
        }
      }
    }
    hostValues += hostsHere
    if (hostsHere === 0 && polarity.negative.has(sel) && !polarity.positive.has(sel)) unseenFilters.push(sel)
  }
  if (hostValues === 0) {
    sink.warn(lineOf(det), `Sigma rule ${ref.id} ("${ref.title}") has no DestinationHostname, QueryName or query `
      + 'selector: nothing loaded from it')
  } else if (loaded > 0 && unseenFilters.length > 0) {
    const shown = unseenFilters.length > 3 ? `${unseenFilters.slice(0, 3).join(', ')} and ${unseenFilters.length - 3} more`
      : unseenFilters.join(', ')
    sink.warn(lineOf(det), `Sigma rule ${ref.id}: the condition's filters ${shown} are not applied (they test fields `
      + 'tunnelguard does not see, such as the program): its names are decided for every client and program')
  }
}

/**
 * Fields of a selection map other than host names that tunnelguard cannot test (Image,
 * CommandLine, User, ...). `Initiated: 'true'` (an outbound connection) is what it always sees.
 */
function unseenFields(m: YAMLMap): string[] {
  const out: string[] = []
  for (const p of m.items) {
    const key = keyOf(p)
    const field = key.split('|')[0]!.toLowerCase()
    if (HOST_FIELDS.has(field)) continue
    if (field === 'initiated' && isScalar(p.value) && String(p.value.value).toLowerCase() === 'true') continue
    if (!out.includes(key)) out.push(key)
  }
  return out
}

/** One selection map: its host-name fields become entries (or warnings). Returns the host values seen. */
function parseSelectionMap(m: YAMLMap, notUsed: string | undefined, rule: Rule): number {
  const { ref, sink, lineOf } = rule
  const hostPairs = m.items.filter(p => isScalar(p.key) && HOST_FIELDS.has(String(p.key.value).split('|')[0]!.toLowerCase()))
  let seen = 0
  for (const p of hostPairs) {
    const key = String((p.key as { value: unknown }).value)
    const mods = key.split('|').slice(1).map(s => s.toLowerCase())
    const values = isSeq(p.value) ? p.value.items : [p.value]
    for (const node of values) {
      seen++
      const raw: unknown = isNode(node) ? node.toJSON() : node
      const line = lineOf(isNode(node) ? node : (p.key as Node))
      const shown = `${key}: '${typeof raw === 'string' ? raw : JSON.stringify(raw)}'`
      const skip = notUsed ?? (hostPairs.length > 1
        ? 'it is combined (AND) with another host-name condition in the same selection, which one suffix entry cannot express'
        : undefined)
      if (skip) { sink.warn(line, `Sigma rule ${ref.id}: ${shown} not converted: ${skip}`); continue }
      const r = convertSigmaValue(mods, raw)
      if (!r.ok) { sink.warn(line, `Sigma rule ${ref.id}: ${shown} not converted: ${r.reason}`); continue }
      sink.entry(r.name, r.kind, false, `${key}: ${String(raw)}`, line, ref)
      if (r.note) sink.warn(line, `Sigma rule ${ref.id}: ${shown}: ${r.note}`)
    }
  }
  return seen
}
