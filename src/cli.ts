#!/usr/bin/env node
// first: serve's signals are caught while the rest loads (see early-signals.ts)
import './early-signals.js'
import { realpathSync } from 'node:fs'
import { inspect, parseArgs, type ParseArgsConfig } from 'node:util'
import { fileURLToPath } from 'node:url'
import { isIP } from 'node:net'
import { AppError, errorLines } from './errors.js'
import { Output, outputFailure } from './cli-output.js'
import { parseDuration } from './config/duration.js'
import type { Overrides } from './serve.js'
import type { Config } from './snapshot-types.js'

export interface Io {
  readonly stdout: NodeJS.WritableStream
  readonly stderr: NodeJS.WritableStream
  readonly stdin: NodeJS.ReadableStream
  /** resolv.conf to read default upstreams from (tests point it at a file of their own). */
  readonly resolvConf?: string
  /** Where `serve` writes its log lines; default: the process's stdout, written asynchronously. */
  readonly serveLog?: NodeJS.WritableStream
}

/** Each command's arguments and what it does (the usage text, and `COMMAND --help`). */
const COMMANDS: Readonly<Record<string, { args: string; about: string }>> = {
  serve: { args: '[--config FILE] [--dns HOST:PORT]... [--proxy HOST:PORT]... [--admin HOST:PORT] [--upstream URL]...', about: 'run the DNS forwarder, the HTTP proxy and the admin listener' },
  check: { args: 'NAME|URL|HOST:PORT [--client IP] [--config FILE] [--json]', about: 'explain the decision for NAME (or the host of a URL or HOST:PORT) asked by a client (default 127.0.0.1)' },
  lists: { args: '[--config FILE] [--json]', about: 'what was loaded: lists, entry counts, warnings' },
  validate: { args: '[--config FILE]', about: 'check a config; exit 0 valid (warnings listed), 2 invalid, all errors listed' },
  report: { args: '[FILE...|-] [--since DUR] [--until TIME] [--client IP|CIDR] [--list NAME] [--action LIST] [--format table|json|csv] [--leases FILE]...', about: 'which clients asked for what, when, from the log lines' },
}

const USAGE = `usage: tunnelguard <command> [options]\n${Object.entries(COMMANDS).map(([c, { args }]) => `  ${c.padEnd(8)} ${args}\n`).join('')}`
  + '  tunnelguard --version | COMMAND --help\n'

/** `tunnelguard COMMAND --help`. */
const commandUsage = (cmd: string): string => `usage: tunnelguard ${cmd} ${COMMANDS[cmd]!.args}\n  ${COMMANDS[cmd]!.about}\n`

const HELP = { help: { type: 'boolean', short: 'h' } } as const
const OPTIONS: Record<string, NonNullable<ParseArgsConfig['options']>> = {
  serve: {
    config: { type: 'string' }, dns: { type: 'string', multiple: true }, proxy: { type: 'string', multiple: true },
    admin: { type: 'string' }, upstream: { type: 'string', multiple: true }, ...HELP,
  },
  check: { config: { type: 'string' }, client: { type: 'string' }, json: { type: 'boolean' }, ...HELP },
  lists: { config: { type: 'string' }, json: { type: 'boolean' }, ...HELP },
  validate: { config: { type: 'string' }, ...HELP },
  report: {
    since: { type: 'string' }, until: { type: 'string' }, client: { type: 'string' }, list: { type: 'string' }, action: { type: 'string' },
    format: { type: 'string' }, leases: { type: 'string', multiple: true }, ...HELP,
  },
}
const POSITIONALS: Record<string, [number, number]> = { serve: [0, 0], check: [1, 1], lists: [0, 0], validate: [0, 0], report: [0, Infinity] }

/**
 * `--since -5m`: a value that starts with a dash, after a space, is refused (it may as well be an
 * option that was meant to follow a forgotten value), as the usage error for a value missing says:
 * write `--since=-5m`. Says so, naming both (parseArgs' own message names neither); undefined
 * when there is none. After `--` every argument is a positional.
 */
export function dashValue(args: readonly string[], options: NonNullable<ParseArgsConfig['options']>): string | undefined {
  const isOption = (a: string) => a === '-h' || (a.startsWith('--') && a.slice(2).split('=')[0]! in options)
  for (let i = 0; i < args.length - 1; i++) {
    const a = args[i]!
    const next = args[i + 1]!
    if (a === '--') return undefined
    if (a.startsWith('--') && options[a.slice(2)]?.type === 'string' && /^-./.test(next) && !isOption(next)) {
      return `${a} ${next}: a value that starts with a dash is written ${a}=${next}`
    }
  }
  return undefined
}

/** A parseArgs error as one line: Node's messages run on with advice that does not fit ours. */
function argsError(cmd: string, e: Error & { code?: string }): string {
  const opt = /'(-[^' ]*)/.exec(e.message)![1]!
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    return `${cmd}: unknown option ${opt}; options: ${Object.keys(OPTIONS[cmd]!).map(o => `--${o}`).join(', ')}`
  }
  if (/does not take an argument/.test(e.message)) return `${cmd}: ${opt} takes no value`
  return `${cmd}: ${opt} needs a value (one that starts with a dash: ${opt}=-VALUE)`
}

function usage(msg: string): never {
  throw new AppError('USAGE', msg)
}

/** `--since=-5m` read as `--since 5m`: both mean five minutes back. */
function backwards(v: string | undefined): string | undefined {
  return v !== undefined && /^-\d/.test(v) && parseDuration(v.slice(1)) !== undefined ? v.slice(1) : v
}

function checkHostPorts(splitHostPort: (s: string) => unknown, flag: string, v: readonly string[] | undefined): void {
  for (const x of v ?? []) if (!splitHostPort(x)) usage(`--${flag} ${x}: not HOST:PORT (e.g. 127.0.0.1:1053 or [::1]:53)`)
}

/**
 * An error no command expected, as one line (not a stack trace): the command, the error's name
 * and the first line of its message, `report: unexpected error: RangeError: Invalid string length`.
 */
export function unexpected(cmd: string, e: unknown): string {
  const what = e instanceof Error ? `${e.name}: ${e.message}` : `${inspect(e)}`
  return `${cmd}: unexpected error: ${what.split('\n')[0]}`
}

/**
 * Run one command; resolves to the exit code. Only the bin wrapper below exits the process. A
 * stdout that cannot be written (not a reader gone: see Output) is one stderr line and exit 1 (or
 * the command's own code when it is not 0).
 */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  const out = new Output(io.stdout)
  const code = await command(argv, io, out)
  const failed = await out.settled()
  if (failed === undefined) return code
  io.stderr.write(`tunnelguard: ${outputFailure(failed)}\n`)
  return code === 0 ? 1 : code
}

async function command(argv: readonly string[], io: Io, out: Output): Promise<number> {
  const write = (s: string) => { out.write(s) }
  try {
    const [cmd, ...rest] = argv
    if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') { write(USAGE); return cmd === undefined ? 2 : 0 }
    if (cmd === '--version' || cmd === '-V' || cmd === 'version') { write(`tunnelguard ${(await import('./version.js')).VERSION}\n`); return 0 }
    const options = OPTIONS[cmd]
    if (!options) usage(`unknown command "${cmd}"; commands: serve, check, lists, validate, report`)
    let parsed: { values: Record<string, string | boolean | string[] | undefined>; positionals: string[]; tokens: { kind: string; name?: string }[] }
    const dashed = dashValue(rest, options)
    if (dashed !== undefined) usage(`${cmd}: ${dashed}`)
    try {
      parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true, tokens: true }) as typeof parsed
    } catch (e) {
      usage(argsError(cmd, e as Error))
    }
    // an option that takes one value, given twice: parseArgs would keep the last one without a word
    const given = new Set<string>()
    for (const tk of parsed.tokens) {
      const o = tk.kind === 'option' ? options[tk.name!]! : undefined
      if (o === undefined || o.type !== 'string' || o.multiple === true) continue
      if (given.has(tk.name!)) usage(`${cmd}: --${tk.name} given more than once; give it once`)
      given.add(tk.name!)
    }
    const v = parsed.values
    if (v.help === true) { write(commandUsage(cmd)); return 0 }
    const [min, max] = POSITIONALS[cmd]!
    if (parsed.positionals.length < min) usage(`${cmd}: missing NAME (e.g. tunnelguard check connect.ngrok-agent.com)`)
    if (parsed.positionals.length > max) usage(`${cmd}: unexpected argument "${parsed.positionals[max]}"`)
    // each command's modules are loaded when it runs (below): `serve` then has its signal handlers
    // (early-signals.ts) in place within Node's start, not after every module of the product is read
    const configOf = async (asServe = false): Promise<Config> =>
      (await import('./config/load.js')).loadConfig(v.config as string | undefined, { resolvConf: io.resolvConf, asServe })
    // check and lists: remote lists as serve last fetched them (the copies in state.dir); nothing is fetched
    const offline = async () => {
      const c = await configOf()
      const [{ storedCopies }, { buildSnapshot }] = await Promise.all([import('./remote-lists.js'), import('./snapshot.js')])
      const stored = storedCopies(c)
      return { snap: buildSnapshot(c, { extraTexts: stored.texts, pipes: true }), stored }
    }

    switch (cmd) {
      case 'validate': {
        // warnings are not errors (exit 0) but each is shown: a list line that was dropped, with how to write it
        // what serve would do with the files it names (a FIFO list: refused, not waited on)
        const c = await configOf(true)
        const { allWarnings, buildSnapshot } = await import('./snapshot.js')
        const warnings = allWarnings(buildSnapshot(c))
        write(`${c.source}: valid${warnings.length === 0 ? '' : `, ${warnings.length} warning${warnings.length === 1 ? '' : 's'}`}\n`)
        for (const w of warnings) write(`  ${w.source}: ${w.message}\n`)
        return 0
      }
      case 'check': {
        const client = (v.client as string | undefined) ?? '127.0.0.1'
        if (isIP(client) === 0) usage(`check: --client ${client}: not an IP address (e.g. 10.1.2.3 or fd00::7)`)
        if (parsed.positionals[0]!.trim() === '') usage('check: NAME is empty (e.g. tunnelguard check connect.ngrok-agent.com)')
        const { snap, stored } = await offline()
        const { explainCheck } = await import('./commands/explain.js')
        write(explainCheck(snap, parsed.positionals[0]!, client, v.json === true, stored))
        return 0
      }
      case 'lists': {
        const { snap, stored } = await offline()
        const { describeLists } = await import('./commands/explain.js')
        write(describeLists(snap, v.json === true, stored))
        return 0
      }
      case 'report': {
        const format = (v.format as string | undefined) ?? 'table'
        if (format !== 'table' && format !== 'json' && format !== 'csv') usage(`report: --format ${format}: expected table, json or csv`)
        const files = parsed.positionals
        const { runReport } = await import('./report/run.js')
        await runReport({
          files: files.filter(f => f !== '-'),
          stdin: files.length === 0 || files.includes('-') ? io.stdin : undefined,
          since: backwards(v.since as string | undefined), until: backwards(v.until as string | undefined),
          client: v.client as string | undefined, list: v.list as string | undefined, action: v.action as string | undefined,
          format, out, leases: v.leases as string[] | undefined,
        })
        return 0
      }
      default: {
        const { parseUpstreamUrl, splitHostPort } = await import('./config/endpoints.js')
        checkHostPorts(splitHostPort, 'dns', v.dns as string[] | undefined)
        checkHostPorts(splitHostPort, 'proxy', v.proxy as string[] | undefined)
        checkHostPorts(splitHostPort, 'admin', v.admin === undefined ? undefined : [v.admin as string])
        for (const u of (v.upstream as string[] | undefined) ?? []) {
          const p = parseUpstreamUrl(u)
          if (typeof p === 'string') usage(`--upstream ${u}: ${p}`)
        }
        const overrides: Overrides = {
          dns: v.dns as string[] | undefined, proxy: v.proxy as string[] | undefined,
          admin: v.admin as string | undefined, upstreams: v.upstream as string[] | undefined,
        }
        const { serve } = await import('./serve.js')
        const running = await serve({ configPath: v.config as string | undefined, overrides, stdout: io.serveLog, resolvConf: io.resolvConf })
        await running.done
        return 0
      }
    }
  } catch (e) {
    // report's write failed: said by main, as for every command
    if (out.hasFailed) return 1
    if (e instanceof AppError) {
      const [first, ...rest] = errorLines(e)
      io.stderr.write(`tunnelguard: ${first}\n`)
      for (const d of rest) io.stderr.write(`  ${d}\n`)
      return e.code === 'USAGE' || e.code === 'CONFIG_INVALID' || e.code === 'LIST_LOAD' ? 2 : 1
    }
    io.stderr.write(`tunnelguard: ${unexpected(argv[0]!, e)}\n`)
    return 1
  }
}

/* c8 ignore start - the bin wrapper: exercised by the e2e tests in a child process, which coverage does not see */
function isEntry(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)
  } catch {
    return false
  }
}
if (isEntry()) {
  // stdout's errors (a reader gone, a full disk) are main's: see Output
  // stderr is for diagnostics, best effort: no error of its own ends the process (a full disk under
  // `2>&1` would take DNS down with it), and none is said (where? on stderr). Opening it here also
  // makes a pipe on fd 2 non-blocking, as the log's notices expect (logger.ts, stderrNotices).
  process.stderr.on('error', () => {})
  main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin })
    .then(code => {
      process.exitCode = code
      // a stopped serve ends now: its log is written (or given up, bounded), and a process left to
      // end by itself closes its signal handlers on the way out, when a SIGHUP or SIGTERM (a
      // supervisor's second one) ends it by the default action instead: exit 129 or 143 for a clean stop
      if (process.argv[2] === 'serve') process.exit(code)
    })
}
/* c8 ignore stop - end of the bin wrapper */
