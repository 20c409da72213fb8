import { AppError } from '../errors.js'
import { decodeText, readFileAsync, readTextFile } from '../read-file.js'
import type { ListConfig, ListInfo } from '../snapshot-types.js'
import { parseLinesInSteps } from './formats/lines.js'
import type { EntrySink } from './formats/sink.js'
import { formatOf, parseInSteps } from './parse-list.js'
import { MAX_NAME, MAX_WORDS, SuffixTrie, wordsOf } from './suffix-trie.js'
import type { ListWarning, Matcher } from './types.js'

export { formatOf, parseListText, type ListFormat } from './parse-list.js'

/** At most this many warnings are kept per file or URL; one more line says how many were left out. */
export const MAX_WARNINGS_PER_SOURCE = 500

export interface LoadListsOptions {
  /** Reads a list file as text (default: readTextFile, bounded: a device is refused). Throws when unreadable. */
  readonly readFile?: (path: string) => string
  /** The default reader reads a FIFO or pipe too, up to PIPE_MAX_BYTES (the one-shot commands); serve's refuses one. */
  readonly pipes?: boolean
  /** Remote list contents already fetched: list name → texts with the URL (or other source) they came from. */
  readonly extraTexts?: Readonly<Record<string, readonly { source: string; text: string }[]>>
}

export interface LoadListsAsyncOptions extends Omit<LoadListsOptions, 'readFile' | 'pipes'> {
  /** Reads a list file as text (default: readFileAsync, utf8: a FIFO or device is refused). Rejects when unreadable. */
  readonly readFile?: (path: string) => Promise<string>
  /** How long the work may hold the event loop before it gives it a turn (ms; SLICE_MS). */
  readonly sliceMs?: number
  /** Abandons the work at its next turn (rejects with the signal's reason). */
  readonly signal?: AbortSignal
}

export interface LoadedLists {
  readonly matcher: Matcher
  /** One per configured list, in config order: entries (allow exceptions included) and allows. */
  readonly infos: ListInfo[]
  readonly warnings: ListWarning[]
}

/**
 * loadListsAsync holds the event loop this long at most (a step more at worst) before it lets
 * queries and connections through: a reload of a list of a million names takes seconds, and a
 * resolver that stops answering for seconds sends every client to its second server.
 */
export const SLICE_MS = 2
/** A `lines` text is parsed this many characters at a time between looks at the clock (about a millisecond's work). */
const STEP_CHARS = 1 << 14
/** The sizing pass reads one line in this many (a table's count is then known to a few percent past a few thousand names). */
const SAMPLE = 32

type Texts = Map<string, { source: string; text: string }[]>

/**
 * Load every configured list into one matcher: each list's files, then its extra (remote) texts.
 * Lines that cannot be read as an entry are warnings and the rest loads; an unreadable file is an
 * AppError 'LIST_LOAD' naming every such file (details). All files are read first, so nothing is
 * parsed when one is unreadable, and the matcher is sized once for the lines it will hold.
 */
export function loadLists(lists: Readonly<Record<string, ListConfig>>, opts: LoadListsOptions = {}): LoadedLists {
  const steps = build(lists, gather(lists, opts, opts.readFile ?? ((p: string) => readTextFile(p, 'utf8', { pipes: opts.pipes }))), opts)
  for (;;) {
    const r = steps.next()
    if (r.done) return r.value
  }
}

/**
 * loadLists for a running process (a reload): the files are read without blocking, and the
 * parsing gives the event loop a turn every `sliceMs`, so queries are answered while it runs.
 * The result is the same as loadLists's.
 */
export async function loadListsAsync(lists: Readonly<Record<string, ListConfig>>, opts: LoadListsAsyncOptions = {}): Promise<LoadedLists> {
  // read as bytes and decoded at once: fs.promises.readFile's own decoding hands back a string in
  // pieces, and joining them blocks longer (75 ms for 57 MB) than decoding the whole (55 ms)
  const read = opts.readFile ?? (async (p: string) => decodeText(await readFileAsync(p)))
  const got = new Map<string, string | Error>()
  // one file at a time: a config with many lists does not take as many descriptors at once
  for (const file of new Set(Object.values(lists).flatMap(l => l.files))) {
    got.set(file, await read(file).catch((e: unknown) => e instanceof Error ? e : new Error(String(e))))
    opts.signal?.throwIfAborted()
  }
  const steps = build(lists, gather(lists, opts, file => {
    const text = got.get(file)!
    if (text instanceof Error) throw text
    return text
  }), opts)
  const slice = opts.sliceMs ?? SLICE_MS
  let since = performance.now()
  for (;;) {
    const r = steps.next()
    if (r.done) return r.value
    if (performance.now() - since < slice) continue
    await new Promise(resolve => setImmediate(resolve))
    opts.signal?.throwIfAborted()
    since = performance.now()
  }
}

/** Each list's texts, its files (read by `read`) then its extra texts; throws LIST_LOAD naming every unreadable file. */
function gather(lists: Readonly<Record<string, ListConfig>>, opts: Pick<LoadListsOptions, 'extraTexts'>, read: (path: string) => string): Texts {
  const errors: string[] = []
  const texts: Texts = new Map()
  for (const [list, cfg] of Object.entries(lists)) {
    const mine: { source: string; text: string }[] = []
    for (const file of cfg.files) {
      try {
        mine.push({ source: file, text: read(file) })
      } catch (err) {
        errors.push(`list ${list}: cannot read ${file} (${(err as Error).message}); `
          + `lists.${list}.files must name readable list files (paths are relative to the config file)`)
      }
    }
    mine.push(...opts.extraTexts?.[list] ?? [])
    texts.set(list, mine)
  }
  if (errors.length > 0) {
    throw new AppError('LIST_LOAD', errors.length === 1 ? errors[0]! : `${errors.length} list files cannot be read: ${errors.join('; ')}`, errors)
  }
  return texts
}

/** Parse the texts into one matcher, in steps (each yield is a point where the caller may pause). */
function* build(lists: Readonly<Record<string, ListConfig>>, texts: Texts, opts: Pick<LoadListsOptions, 'extraTexts'>): Generator<void, LoadedLists> {
  // sizing: the lines (for the entry columns and the filter) and, from a sample of the names of
  // each `lines` text, how many names of each length will come (tables made to size never move)
  let lines = 0
  const sampled = new Array<number>(MAX_WORDS + 1).fill(0)
  const sample: EntrySink = {
    entry(name) { if (name.length <= MAX_NAME) sampled[wordsOf(name.length)]! += SAMPLE },
    warn() { /* said when the line is read for real */ },
  }
  for (const mine of texts.values()) {
    for (const { source, text } of mine) {
      if (formatOf(source) === 'lines') {
        lines += yield* parseLinesInSteps(text, sample, STEP_CHARS * SAMPLE, SAMPLE)
        continue
      }
      for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines++
      yield
    }
  }
  const trie = new SuffixTrie(lines + 16)
  for (let w = 1; w <= MAX_WORDS; w++) {
    if (sampled[w] === 0) continue
    yield
    trie.reserve(w, Math.ceil(sampled[w]! * 1.1))
  }
  const infos: ListInfo[] = []
  const warnings: ListWarning[] = []
  for (const [list, cfg] of Object.entries(lists)) {
    let entries = 0
    let allows = 0
    for (const { source, text } of texts.get(list)!) {
      let problems = 0
      yield* parseInSteps(text, formatOf(source), {
        entry(name, kind, allow, pattern, line, sigma) {
          if (!trie.insert(list, name, kind, allow, pattern, source, line, sigma)) return
          entries++
          if (allow) allows++
        },
        warn(line, message) {
          if (++problems <= MAX_WARNINGS_PER_SOURCE) warnings.push({ source: `${source}:${line}`, message: `list ${list}: ${message}` })
        },
      }, STEP_CHARS)
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
