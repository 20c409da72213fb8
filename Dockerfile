# syntax=docker/dockerfile:1
# tunnelguard container image: DNS on 53/udp+tcp, HTTP proxy on 3128, admin (metrics, health) on 9153.
# Build:  docker build -t tunnelguard .
# Run:    docker run -d --name tunnelguard -p 53:53/udp -p 53:53/tcp -p 3128:3128 -p 127.0.0.1:9153:9153 tunnelguard
# Non-root on port 53: Docker >= 20.10 and Podman set net.ipv4.ip_unprivileged_port_start=0 in the
# container's network namespace, so uid 1000 may bind 53. Elsewhere pass
# `--sysctl net.ipv4.ip_unprivileged_port_start=0`, or listen on 1053 and publish `-p 53:1053/udp`.
# See docs/deploy.md.
# Pin the base by digest for reproducible builds: --build-arg NODE_IMAGE=node:20-bookworm-slim@sha256:…
ARG NODE_IMAGE=node:20-bookworm-slim

# --- build: compile TypeScript (src/ → dist/) with the dev dependencies ------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- deps: production dependencies only ---------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# --- runtime ------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
# tini as PID 1: forwards SIGTERM/SIGHUP (reload) to node; node as PID 1 ignores unhandled signals.
# (apt's package caches go too: a base without the official images' docker-clean setting keeps ~75 MB of them)
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
ENV NODE_ENV=production
# glibc malloc (bench/README.md, "Proxy" and "Matcher"):
# - trim_threshold: keep up to 64 MiB of freed memory instead of giving it back to the kernel at
#   once. The proxy reads in 64 KiB buffers; with the default (128 KiB, adjusted upward only by
#   chance) every freed buffer was trimmed and the next read faulted fresh pages in: 4.2 s of CPU
#   per GiB relayed instead of 1.0.
# - hugetlb=1: large allocations (the matcher's tables for a big list) are backed by transparent
#   huge pages where the kernel allows them (THP "madvise" or "always"): fewer TLB misses per
#   lookup, ~10 % faster on a million names. Without THP it changes nothing.
ENV GLIBC_TUNABLES=glibc.malloc.trim_threshold=67108864:glibc.malloc.hugetlb=1
WORKDIR /app
# package.json is needed at run time: "type": "module" makes dist/*.js ES modules.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY blocklists ./blocklists
COPY deploy/docker/config.yaml /etc/tunnelguard/config.yaml
# Writable state (last good copies of remote lists); everything else stays read-only to the user.
RUN mkdir -p /var/lib/tunnelguard && chown 1000:1000 /var/lib/tunnelguard
# uid 1000 is the base image's `node` user; numeric so Kubernetes runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 53/udp 53/tcp 3128/tcp 9153/tcp
# No curl in the slim image: node itself asks the admin listener (deploy/docker/config.yaml: 0.0.0.0:9153).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "require('http').get('http://127.0.0.1:9153/healthz',{timeout:4000},r=>process.exit(r.statusCode===200?0:1)).on('timeout',()=>process.exit(1)).on('error',()=>process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/dist/cli.js"]
CMD ["serve", "--config", "/etc/tunnelguard/config.yaml"]
