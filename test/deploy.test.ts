// The deployment files (Dockerfile, container config, systemd unit, Kubernetes example, docs) agree
// with each other and with the config schema. No container engine or cluster runs here, so the
// checks read the files; the image's HEALTHCHECK command itself is run against a loopback server.
import t, { type Test } from 'tap'
import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { basename, dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse, parseAllDocuments } from 'yaml'
import { configSchema, type ParsedConfig } from '../src/config/schema.js'
import { splitHostPort } from '../src/config/endpoints.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const read = (p: string) => readFileSync(resolve(ROOT, p), 'utf8')

function validConfig(t: Test, text: string, what: string): ParsedConfig {
  const r = configSchema.safeParse(parse(text))
  t.ok(r.success, `${what} is a valid config`, { issues: r.success ? [] : r.error.issues })
  return r.data!
}
const ports = (l: readonly string[]) => l.map(x => splitHostPort(x)!.port)

/** Shipped list files named by a config: /app/blocklists/X must be blocklists/X. */
function checkListPaths(t: Test, c: ParsedConfig, stateDir = '/var/lib/tunnelguard'): void {
  const files = Object.values(c.lists ?? {}).flatMap(l => l.files)
  t.same(files.sort(), ['/app/blocklists/ngrok.txt', '/app/blocklists/tunnels.txt'])
  for (const f of files) t.ok(existsSync(resolve(ROOT, 'blocklists', basename(f))), `${f} ships`)
  t.equal(c.lists?.ngrok?.action, 'sinkhole')
  t.equal(c.lists?.tunnels?.action, 'alert')
  t.equal(c.state.dir, stateDir)
}

const dockerfile = read('Dockerfile')
const dockerConfig = validConfig(t, read('deploy/docker/config.yaml'), 'deploy/docker/config.yaml')

t.test('the container config listens on all interfaces on the exposed ports', async t => {
  t.same(dockerConfig.dns.listen, ['0.0.0.0:53'])
  t.same(dockerConfig.proxy.listen, ['0.0.0.0:3128'])
  t.equal(dockerConfig.admin.listen, '0.0.0.0:9153')
  t.ok(dockerConfig.dns.upstreams && dockerConfig.dns.upstreams.length > 0, 'explicit upstreams')
  checkListPaths(t, dockerConfig)
})

t.test('the Dockerfile: multi-stage, production deps, non-root, ports, health, command', async t => {
  const stages = [...dockerfile.matchAll(/^FROM (\S+) AS (\S+)$/gm)].map(m => [m[1], m[2]])
  t.same(stages, [['${NODE_IMAGE}', 'build'], ['${NODE_IMAGE}', 'deps'], ['${NODE_IMAGE}', 'runtime']])
  t.match(dockerfile, /^ARG NODE_IMAGE=node:20-bookworm-slim$/m)
  t.match(dockerfile, /^RUN npm ci --ignore-scripts.*\n(.*\n)*RUN npm run build$/m, 'build stage: npm ci + build')
  t.match(dockerfile, /^RUN npm ci --omit=dev /m, 'production dependencies only')
  t.match(dockerfile, /^COPY --from=deps \/app\/node_modules \.\/node_modules$/m)
  t.match(dockerfile, /^COPY --from=build \/src\/dist \.\/dist$/m)
  t.match(dockerfile, /^COPY blocklists \.\/blocklists$/m)
  t.match(dockerfile, /^COPY package\.json \.\/$/m, 'package.json ("type": "module") at run time')
  t.match(dockerfile, /^COPY deploy\/docker\/config\.yaml \/etc\/tunnelguard\/config\.yaml$/m)
  const user = /^USER (\d+):(\d+)$/m.exec(dockerfile)
  t.ok(user && user[1] !== '0' && user[2] !== '0', 'numeric non-root user')
  t.match(dockerfile, /^EXPOSE 53\/udp 53\/tcp 3128\/tcp 9153\/tcp$/m)
  t.match(dockerfile, /^ENTRYPOINT \["\/usr\/bin\/tini", "--", "node", "\/app\/dist\/cli\.js"\]$/m)
  t.match(dockerfile, /^CMD \["serve", "--config", "\/etc\/tunnelguard\/config\.yaml"\]$/m)
  // the healthcheck asks the port the shipped config gives the admin listener
  t.match(dockerfile, new RegExp(`http://127\\.0\\.0\\.1:${ports([dockerConfig.admin.listen!])[0]}/healthz`))
  // every path COPY'd from the context exists and is let through by .dockerignore
  const allowed = read('.dockerignore').split('\n').filter(l => l.startsWith('!')).map(l => l.slice(1))
  for (const m of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
    for (const src of m[1]!.split(' ')) {
      t.ok(existsSync(resolve(ROOT, src)), `${src} exists`)
      t.ok(allowed.includes(src), `${src} is in the .dockerignore allow-list`)
    }
  }
})

/** Run the image's HEALTHCHECK command with its port pointed at `port`. */
function healthcheck(port: number): Promise<number> {
  const m = /^ {2}CMD \["node", "-e", "(.+)"\]$/m.exec(dockerfile)
  const js = JSON.parse(`"${m![1]}"`).replace('127.0.0.1:9153', `127.0.0.1:${port}`)
  return new Promise(res => {
    execFile(process.execPath, ['-e', js], { timeout: 10_000 }, e => res(e ? (e.code as number) ?? -1 : 0))
  })
}

t.test('the HEALTHCHECK command passes on 200 and fails otherwise', async t => {
  let status = 200
  const server: Server = createServer((req, res) => {
    res.statusCode = req.url === '/healthz' ? status : 404
    res.end()
  })
  server.on('error', e => t.fail(String(e)))
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => { server.close() })
  const { port } = server.address() as AddressInfo
  t.equal(await healthcheck(port), 0, 'healthy')
  status = 503
  t.equal(await healthcheck(port), 1, 'unhealthy')
  server.close()
  t.equal(await healthcheck(port), 1, 'nothing listening')
})

t.test('the Kubernetes example: config, non-root pod, probes and ports agree', async t => {
  const docs = parseAllDocuments(read('deploy/kubernetes/tunnelguard.yaml')).map(d => d.toJS())
  t.same(docs.map(d => d.kind), ['ConfigMap', 'Deployment', 'Service', 'Service'])
  const [cm, dep, svc, admin] = docs
  const c = validConfig(t, cm.data['config.yaml'], 'the ConfigMap config')
  checkListPaths(t, c, '/var/lib/tunnelguard/copies')   // made by tunnelguard inside the world-writable emptyDir
  const pod = dep.spec.template.spec
  const ctr = pod.containers[0]
  t.equal(pod.securityContext.runAsNonRoot, true)
  t.not(pod.securityContext.runAsUser, 0)
  t.equal(ctr.securityContext.allowPrivilegeEscalation, false)
  t.equal(ctr.securityContext.readOnlyRootFilesystem, true)
  t.same(ctr.securityContext.capabilities.drop, ['ALL'])
  t.same(ctr.args, ['serve', '--config', '/etc/tunnelguard/config.yaml'])
  t.ok(ctr.volumeMounts.some((v: { mountPath: string }) => v.mountPath === '/etc/tunnelguard'), 'config mounted')
  t.ok(ctr.volumeMounts.some((v: { mountPath: string }) => `${v.mountPath}/copies` === c.state.dir), 'the state dir inside a writable mount')
  const byName = new Map<string, { containerPort: number; protocol: string }>(ctr.ports.map((p: { name: string }) => [p.name, p]))
  t.equal(ctr.readinessProbe.httpGet.path, '/readyz')
  t.equal(ctr.livenessProbe.httpGet.path, '/healthz')
  t.equal(byName.get(ctr.readinessProbe.httpGet.port)?.containerPort, ports([c.admin.listen!])[0])
  t.equal(byName.get(ctr.livenessProbe.httpGet.port)?.containerPort, 9153)
  const dnsPort = ports(c.dns.listen)[0]
  t.equal(byName.get('dns-udp')?.containerPort, dnsPort)
  t.equal(byName.get('dns-tcp')?.containerPort, dnsPort)
  t.equal(byName.get('proxy')?.containerPort, ports(c.proxy.listen)[0])
  for (const s of [svc, admin]) {
    for (const p of s.spec.ports) t.ok(byName.has(p.targetPort), `${s.metadata.name}: ${p.name} → ${p.targetPort}`)
  }
  t.same(svc.spec.ports.filter((p: { port: number }) => p.port === 53).map((p: { protocol: string }) => p.protocol), ['UDP', 'TCP'])
  t.equal(svc.spec.externalTrafficPolicy, 'Local', 'client addresses kept')
  t.equal(admin.spec.type, 'ClusterIP', 'admin stays inside the cluster')
})

t.test('the systemd unit: serve with the config, reload by SIGHUP, hardened', async t => {
  const unit = read('deploy/systemd/tunnelguard.service')
  const has = (line: string) => t.ok(unit.split('\n').includes(line), line)
  has('ExecStart=/usr/bin/node /opt/tunnelguard/dist/cli.js serve --config /etc/tunnelguard/config.yaml')
  has('ExecReload=/bin/kill -HUP $MAINPID')
  for (const l of ['DynamicUser=yes', 'AmbientCapabilities=CAP_NET_BIND_SERVICE', 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE',
    'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'StateDirectory=tunnelguard']) has(l)
  t.notMatch(unit, /^MemoryDenyWriteExecute=yes/m, 'V8 needs W+X memory')
})

t.test('docs/deploy.md covers each way to run it and the egress rules', async t => {
  const doc = read('docs/deploy.md')
  for (const h of ['## Docker', '## systemd', '## Kubernetes', '## Egress rules that must go with it']) {
    t.ok(doc.split('\n').includes(h), h)
  }
  for (const s of ['8.8.8.8', '8.8.4.4', 'dns.google', 'cloudflare-dns.com', '853', 'tunnel.json', 'nft', 'iptables',
    'ip_unprivileged_port_start', 'deploy/kubernetes/tunnelguard.yaml', 'deploy/systemd/tunnelguard.service']) {
    t.ok(doc.includes(s), `mentions ${s}`)
  }
})

t.test('every shipped way to start serve sets the same glibc malloc tunables', async t => {
  // without trim_threshold glibc trims each freed 64 KiB read buffer and the proxy faults fresh
  // pages in on the next read (4x the CPU per GiB relayed: bench/README.md, "Proxy"); hugetlb=1
  // backs the matcher's big tables with huge pages ("Matcher")
  const value = /^ENV GLIBC_TUNABLES=(\S+)$/m.exec(dockerfile)?.[1] ?? ''
  const tunables = new Map(value.split(':').map(kv => kv.split('=') as [string, string]))
  t.ok(Number(tunables.get('glibc.malloc.trim_threshold')) >= 32 << 20, 'the image keeps at least 32 MiB of freed memory')
  t.equal(tunables.get('glibc.malloc.hugetlb'), '1', 'and asks for transparent huge pages')
  t.match(read('deploy/systemd/tunnelguard.service'), new RegExp(`^Environment=GLIBC_TUNABLES=${value}$`, 'm'))
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> }
  t.ok(pkg.scripts.start!.includes(`GLIBC_TUNABLES=${value} node dist/cli.js serve`), 'npm start')
  t.ok(read('bench/dns/lib.sh').includes(`GLIBC_TUNABLES=${value} node`), 'the DNS bench runs it as deployed')
  t.ok(read('bench/proxy/targets.sh').includes(`TG_GLIBC_TUNABLES=\${TG_GLIBC_TUNABLES-${value}}`), 'the proxy bench too')
  t.ok(read('bench/match.mjs').includes(`process.env.GLIBC_TUNABLES ?? '${value}'`), 'and the matcher bench')
})

t.test('deploy/docker/check.sh: valid bash; publishes on loopback only; forwards nowhere', async t => {
  const code = await new Promise<number | null>(res => execFile('bash', ['-n', resolve(ROOT, 'deploy/docker/check.sh')], e => res(e ? (e.code as number) : 0)))
  t.equal(code, 0, 'bash -n')
  const script = read('deploy/docker/check.sh')
  const run = script.slice(script.indexOf('docker run -d'), script.indexOf('"$IMAGE" serve'))
  const published = [...run.matchAll(/ -p (\S+)/g)].map(m => m[1]!)
  t.equal(published.length, 4, 'dns udp, dns tcp, proxy, admin')
  for (const p of published) t.match(p, /^127\.0\.0\.1:/, `${p}: published on 127.0.0.1`)
  t.match(script, /serve --config \/etc\/tunnelguard\/config\.yaml --upstream udp:\/\/127\.0\.0\.1:9 /, 'a dead upstream inside the container')
  t.match(read('docs/deploy.md'), /bash deploy\/docker\/check\.sh/)
})
