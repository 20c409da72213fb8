import { readFileSync } from 'node:fs'
import { AppError } from '../errors.js'
import type { ListConfig, ListInfo } from '../snapshot-types.js'
import { formatOf, parseInto } from './parse-list.js'
import { SuffixTrie } from './suffix-trie.js'
import type { ListWarning, Matcher } from './types.js'

export { formatOf, parseListText, type ListFormat } from './parse-list.js'

/** At most this many warnings are kept per file or URL; one more line says how many were left out. */
export const MAX_WARNINGS_PER_SOURCE = 500

export interface LoadListsOptions {
  /** Reads a list file as text (default: fs.readFileSync utf8). Throws when unreadable. */
  readonly readFile?: (path: string) => string
  /** Remote list contents already fetched: list name → texts with the URL (or other source) they came from. */
  readonly extraTexts?: Readonly<Record<string, readonly { source: string; text: string }[]>>
}

export interface LoadedLists {
  readonly matcher: Matcher
  /** One per configured list, in config order: entries (allow exceptions included) and allows. */
  readonly infos: ListInfo[]
  readonly warnings: ListWarning[]
}

/**
 * Load every configured list into one matcher: each list's files, then its extra (remote) texts.
 * Lines that cannot be read as an entry are warnings and the rest loads; an unreadable file is an
 * AppError 'LIST_LOAD' naming every such file (details). All files are read first, so nothing is
 * parsed when one is unreadable, and the matcher is sized once for the lines it will hold.
 */
export function loadLists(lists: Readonly<Record<string, ListConfig>>, opts: LoadListsOptions = {}): LoadedLists {
  const readFile = opts.readFile ?? ((p: string) => readFileSync(p, 'utf8'))
  const errors: string[] = []
  const texts = new Map<string, { source: string; text: string }[]>()
  let lines = 0
  for (const [list, cfg] of Object.entries(lists)) {
    const mine: { source: string; text: string }[] = []
    for (const file of cfg.files) {
      try {
        mine.push({ source: file, text: readFile(file) })
      } catch (err) {
        errors.push(`list ${list}: cannot read ${file} (${(err as Error).message}); `
          + `lists.${list}.files must name readable list files (paths are relative to the config file)`)
      }
    }
    mine.push(...opts.extraTexts?.[list] ?? [])
    for (const { text } of mine) {
      for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines++
    }
    texts.set(list, mine)
  }
  if (errors.length > 0) {
    throw new AppError('LIST_LOAD', errors.length === 1 ? errors[0]! : `${errors.length} list files cannot be read: ${errors.join('; ')}`, errors)
  }
  const trie = new SuffixTrie(lines + 16)
  const infos: ListInfo[] = []
  const warnings: ListWarning[] = []
  for (const [list, cfg] of Object.entries(lists)) {
    let entries = 0
    let allows = 0
    for (const { source, text } of texts.get(list)!) {
      let problems = 0
      parseInto(text, formatOf(source), {
        entry(name, kind, allow, pattern, line, sigma) {
          if (!trie.insert(list, name, kind, allow, pattern, source, line, sigma)) return
          entries++
          if (allow) allows++
        },
        warn(line, message) {
          if (++problems <= MAX_WARNINGS_PER_SOURCE) warnings.push({ source: `${source}:${line}`, message: `list ${list}: ${message}` })
        },
      })
      if (problems > MAX_WARNINGS_PER_SOURCE) {
        warnings.push({ source, message: `list ${list}: ${problems - MAX_WARNINGS_PER_SOURCE} more warnings in this source not shown` })
      }
    }
    infos.push({ name: list, action: cfg.action, sources: texts.get(list)!.map(x => x.source), entries, allows })
  }
  for (const list of Object.keys(opts.extraTexts ?? {})) {
    if (!Object.hasOwn(lists, list)) warnings.push({ source: list, message: `remote texts for list ${list}, which is not configured, were ignored` })
  }
  return { matcher: trie, infos, warnings }
}
