#!/usr/bin/env node
import { realpathSync } from 'node:fs'
import { inspect, parseArgs, type ParseArgsConfig } from 'node:util'
import { fileURLToPath } from 'node:url'
import { AppError } from './errors.js'
import { loadConfig } from './config/load.js'
import { isUpstreamUrl, splitHostPort } from './config/schema.js'
import { buildSnapshot } from './snapshot.js'
import { describeLists, explainDecision } from './commands/explain.js'
import { runReport } from './report/run.js'
import { serve, type Overrides } from './serve.js'
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

const USAGE = `usage: tunnelguard <command> [options]
  serve    [--config FILE] [--dns HOST:PORT]... [--proxy HOST:PORT]... [--admin HOST:PORT] [--upstream URL]...
  check    NAME [--client IP] [--config FILE] [--json]
  lists    [--config FILE] [--json]
  validate [--config FILE]
  report   [FILE...|-] [--since DUR] [--until TIME] [--client IP|CIDR] [--list NAME] [--format table|json|csv] [--leases FILE]...
`

const OPTIONS: Record<string, ParseArgsConfig['options']> = {
  serve: {
    config: { type: 'string' }, dns: { type: 'string', multiple: true }, proxy: { type: 'string', multiple: true },
    admin: { type: 'string' }, upstream: { type: 'string', multiple: true },
  },
  check: { config: { type: 'string' }, client: { type: 'string' }, json: { type: 'boolean' } },
  lists: { config: { type: 'string' }, json: { type: 'boolean' } },
  validate: { config: { type: 'string' } },
  report: {
    since: { type: 'string' }, until: { type: 'string' }, client: { type: 'string' }, list: { type: 'string' },
    format: { type: 'string' }, leases: { type: 'string', multiple: true },
  },
}
const POSITIONALS: Record<string, [number, number]> = { serve: [0, 0], check: [1, 1], lists: [0, 0], validate: [0, 0], report: [0, Infinity] }

function usage(msg: string): never {
  throw new AppError('USAGE', msg)
}

function checkHostPorts(flag: string, v: readonly string[] | undefined): void {
  for (const x of v ?? []) if (!splitHostPort(x)) usage(`--${flag} ${x}: not HOST:PORT (e.g. 127.0.0.1:1053 or [::1]:53)`)
}

/** Run one command; resolves to the exit code. Only the bin wrapper below exits the process. */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  const write = (s: string) => { io.stdout.write(s) }
  try {
    const [cmd, ...rest] = argv
    if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') { write(USAGE); return cmd === undefined ? 2 : 0 }
    const options = OPTIONS[cmd]
    if (!options) usage(`unknown command "${cmd}"; commands: serve, check, lists, validate, report`)
    let parsed: { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] }
    try {
      parsed = parseArgs({ args: [...rest], options, allowPositionals: true, strict: true }) as typeof parsed
    } catch (e) {
      usage(`${cmd}: ${(e as Error).message.split('\n')[0]}`)
    }
    const v = parsed.values
    const [min, max] = POSITIONALS[cmd]!
    if (parsed.positionals.length < min) usage(`${cmd}: missing NAME (e.g. tunnelguard check connect.ngrok-agent.com)`)
    if (parsed.positionals.length > max) usage(`${cmd}: unexpected argument "${parsed.positionals[max]}"`)
    const configOf = (): Config => loadConfig(v.config as string | undefined, { resolvConf: io.resolvConf })

    switch (cmd) {
      case 'validate': {
        const c = configOf()
        buildSnapshot(c)
        write(`${c.source}: valid\n`)
        return 0
      }
      case 'check': {
        const client = (v.client as string | undefined) ?? '127.0.0.1'
        const s = buildSnapshot(configOf())
        write(explainDecision(s.policy.decide(client, parsed.positionals[0]!, 'qname'), client, v.json === true))
        return 0
      }
      case 'lists':
        write(describeLists(buildSnapshot(configOf()), v.json === true))
        return 0
      case 'report': {
        const format = (v.format as string | undefined) ?? 'table'
        if (format !== 'table' && format !== 'json' && format !== 'csv') usage(`report: --format ${format}: expected table, json or csv`)
        const files = parsed.positionals
        await runReport({
          files: files.filter(f => f !== '-'),
          stdin: files.length === 0 || files.includes('-') ? io.stdin : undefined,
          since: v.since as string | undefined, until: v.until as string | undefined,
          client: v.client as string | undefined, list: v.list as string | undefined,
          format, out: io.stdout, leases: v.leases as string[] | undefined,
        })
        return 0
      }
      default: {
        checkHostPorts('dns', v.dns as string[] | undefined)
        checkHostPorts('proxy', v.proxy as string[] | undefined)
        checkHostPorts('admin', v.admin === undefined ? undefined : [v.admin as string])
        for (const u of (v.upstream as string[] | undefined) ?? []) {
          if (!isUpstreamUrl(u)) usage(`--upstream ${u}: expected udp://IP[:PORT] or tcp://IP[:PORT]`)
        }
        const overrides: Overrides = {
          dns: v.dns as string[] | undefined, proxy: v.proxy as string[] | undefined,
          admin: v.admin as string | undefined, upstreams: v.upstream as string[] | undefined,
        }
        const running = await serve({ configPath: v.config as string | undefined, overrides, stdout: io.serveLog, resolvConf: io.resolvConf })
        await running.done
        return 0
      }
    }
  } catch (e) {
    if (e instanceof AppError) {
      io.stderr.write(`tunnelguard: ${e.message}\n`)
      for (const d of e.details) io.stderr.write(`  ${d}\n`)
      return e.code === 'USAGE' || e.code === 'CONFIG_INVALID' ? 2 : 1
    }
    io.stderr.write(`tunnelguard: ${inspect(e)}\n`)
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
  main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin })
    .then(code => { process.exitCode = code })
}
/* c8 ignore stop - end of the bin wrapper */
