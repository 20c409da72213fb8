// Imports every module under src/, so a file no test loads still shows in the coverage report.
import t from 'tap'
import { readdirSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { join, relative } from 'node:path'

const SRC = fileURLToPath(new URL('../src/', import.meta.url))

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(d =>
    d.isDirectory() ? walk(join(dir, d.name)) : d.name.endsWith('.ts') && !d.name.endsWith('.d.ts') ? [join(dir, d.name)] : [])
}

const files = walk(SRC)
t.ok(files.length > 20, `found ${files.length} modules`)
for (const f of files) {
  t.test(relative(SRC, f), async t => {
    const mod = (await import(pathToFileURL(f).href)) as Record<string, unknown>
    // type-only modules export nothing at run time; every other module exports something
    t.type(mod, 'object', 'loads without error')
  })
}
