# The server image used by docker-compose.yml. Node 20 (better-sqlite3 12 builds from source).
FROM node:20-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev
COPY core ./core
COPY gen ./gen
COPY server ./server
COPY client ./client
COPY tsconfig.json ./
ENV BURR_LISTEN=0.0.0.0:50051
# A capped heap keeps memory predictable (see README, Operations).
ENV NODE_OPTIONS=--max-old-space-size=256
EXPOSE 50051
USER node
CMD ["node", "--require", "tsx/cjs", "server/src/main.ts"]
