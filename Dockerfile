# Build stage: bundle the server with the dev dependencies (esbuild), then drop them.
FROM node:24-slim AS build
WORKDIR /app
# The cache library is a workspace package: its package.json goes in before npm ci, which links it.
COPY package.json package-lock.json ./
COPY packages/memcache/package.json ./packages/memcache/
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY packages/memcache/tsconfig.json ./packages/memcache/
COPY packages/memcache/src ./packages/memcache/src
COPY src ./src
RUN npm run build && npm prune --omit=dev

# Runtime stage: production dependencies, compiled code and templates; no compiler, no npm in the CMD.
FROM node:24-slim
ENV NODE_ENV=production
# V8 would let the heap grow far past what the service keeps alive (about 30 MB) while Firestore writes are in
# flight: a bound keeps the instance's memory small under load (measured by npm run bench, which uses this line).
# Source maps: stack traces name the TypeScript sources, not the bundle.
ENV NODE_OPTIONS="--max-old-space-size=128 --enable-source-maps"
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
# node_modules/@visitme/memcache links here: the package's manifest and its build.
COPY --from=build /app/packages/memcache/package.json ./packages/memcache/
COPY --from=build /app/packages/memcache/dist ./packages/memcache/dist
COPY --from=build /app/dist ./dist
COPY templates ./templates
COPY public ./public
# V8's compile cache of the server (src/server.ts), written by one start as the user and with the
# NODE_OPTIONS it runs with (the cache is kept per user and per V8 flags), then made root's again.
COPY scripts/fill-compile-cache.mjs ./scripts/
RUN mkdir dist/compile-cache && chown node dist/compile-cache \
 && setpriv --reuid=node --regid=node --init-groups node scripts/fill-compile-cache.mjs \
 && chown -R root:root dist/compile-cache && chmod -R a+rX,go-w dist/compile-cache
# The image's unprivileged user; the files stay root-owned and read-only to it.
USER node
EXPOSE 8080
# node, not npm: npm would not pass SIGTERM on, and Cloud Run's graceful shutdown depends on it.
CMD ["node", "dist/server.js"]
