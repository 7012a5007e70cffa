# The burr-state server image (docker-compose.yml builds it).
#
#   docker build -t burr-state .
#   docker run --rm -p 127.0.0.1:50051:50051 -e BURR_INSECURE=1 -v burr-state:/data burr-state
#
# Two stages. "build" installs the whole workspace (TypeScript, esbuild, and a C++ toolchain for
# better-sqlite3's native addon), runs `npm run build`, then prunes node_modules to the
# production dependencies. The runtime stage starts again from the bare Node image and copies in
# only that node_modules and the three packages' package.json and dist/: no compiler, python3,
# TypeScript, esbuild, jest or tsx.
#
# Listening: the server serves on 0.0.0.0:50051 (a container's interface is not loopback) and, by
# design, refuses a non-loopback address that has neither tokens nor client certificates (TLS
# alone encrypts but lets anyone connect). The image does not lift that refusal: give it tokens
# (BURR_AUTH_FILE, or BURR_AUTH_TOKENS), mutual TLS (BURR_TLS_CERT, BURR_TLS_KEY and
# BURR_TLS_CLIENT_CA), or BURR_INSECURE=1 when the published port is reachable only by trusted
# clients (docker-compose.yml publishes it on the host's loopback only and sets BURR_INSECURE=1).
#
# State: the SQLite file /data/burr_state.db. /data belongs to the unprivileged user `node`, so a
# fresh named volume mounted there (Docker copies the directory's owner into it) is writable. A
# bind-mounted host directory must be writable by uid 1000. Other stores: set BURR_STORE
# (postgres://..., redis://..., mongodb://...).
#
# Health: HEALTHCHECK asks the server's own gRPC health service (`main.js health`, which reads the
# port from BURR_LISTEN; set the address with BURR_LISTEN rather than --listen). With TLS, point
# BURR_HEALTH_TLS_CA at the CA that signed the server certificate.
#
# The build-stage RUN lines after `npm ci` use only paths relative to /app: tests/container runs
# them as they are in a scratch copy of the build context.

FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# better-sqlite3 is compiled here (not downloaded prebuilt from GitHub) against the image's own
# Node headers in /usr/local/include/node: nothing is fetched at build time but npm packages.
ENV npm_config_build_from_source=better-sqlite3 \
    npm_config_nodedir=/usr/local \
    npm_config_audit=false \
    npm_config_fund=false \
    npm_config_update_notifier=false
# The manifests first: the dependency layer is rebuilt only when they change.
COPY package.json package-lock.json ./
COPY client/package.json client/
COPY stores/package.json stores/
COPY server/package.json server/
RUN npm ci
COPY tsconfig.base.json ./
COPY scripts/build.js scripts/
COPY client/tsconfig.build.json client/
COPY client/src client/src
COPY stores/tsconfig.build.json stores/
COPY stores/src stores/src
COPY server/tsconfig.build.json server/
COPY server/src server/src
RUN npm run build
# Production dependencies only (workspace links to client, stores and server stay); of
# better-sqlite3's build tree only the compiled addon is kept.
RUN npm prune --omit=dev \
 && cd node_modules/better-sqlite3 \
 && mv build/Release/better_sqlite3.node . \
 && rm -rf build deps src \
 && mkdir -p build/Release \
 && mv better_sqlite3.node build/Release/ \
 && cd ../.. \
 && for tool in typescript esbuild jest ts-jest tsx; do \
      if [ -e "node_modules/$tool" ]; then echo "$tool is still in node_modules" >&2; exit 1; fi; \
    done

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/client/package.json ./client/
COPY --from=build /app/client/dist ./client/dist
COPY --from=build /app/stores/package.json ./stores/
COPY --from=build /app/stores/dist ./stores/dist
COPY --from=build /app/server/package.json ./server/
COPY --from=build /app/server/dist ./server/dist
# Before VOLUME: what a Dockerfile changes under a volume path after declaring it is discarded.
RUN mkdir -p /data && chown node:node /data
VOLUME ["/data"]
ENV NODE_ENV=production \
    BURR_LISTEN=0.0.0.0:50051 \
    BURR_STORE=sqlite:/data/burr_state.db \
    BURR_INIT=1 \
    NODE_OPTIONS=--max-old-space-size=256
# BURR_INIT=1: with BURR_STORE set the store is not the built-in default, which is the only one
# initialized unasked; creating the tables is idempotent. The capped heap keeps memory
# predictable (README, Operations).
USER node
EXPOSE 50051
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "/app/server/dist/main.js", "health"]
CMD ["node", "/app/server/dist/main.js"]
