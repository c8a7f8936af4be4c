# Build stage: compile TypeScript with the dev dependencies, then drop them.
FROM node:24-slim AS build
WORKDIR /app
# The cache library is a workspace package: its package.json goes in before npm ci, which links it.
COPY package.json package-lock.json ./
COPY packages/memcache/package.json ./packages/memcache/
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY packages/memcache/tsconfig.json ./packages/memcache/
COPY packages/memcache/src ./packages/memcache/src
COPY src ./src
RUN npm run build && npm prune --omit=dev

# Runtime stage: production dependencies, compiled code and templates; no compiler, no npm in the CMD.
FROM node:24-slim
ENV NODE_ENV=production
# V8 would let the heap grow far past what the service keeps alive (about 30 MB) while Firestore writes are in
# flight: a bound keeps the instance's memory small under load (measured by npm run bench, which uses this line).
ENV NODE_OPTIONS=--max-old-space-size=128
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
# node_modules/@visitme/memcache links here: the package's manifest and its build.
COPY --from=build /app/packages/memcache/package.json ./packages/memcache/
COPY --from=build /app/packages/memcache/dist ./packages/memcache/dist
COPY --from=build /app/dist ./dist
COPY templates ./templates
COPY public ./public
# The image's unprivileged user; the files stay root-owned and read-only to it.
USER node
EXPOSE 8080
# node, not npm: npm would not pass SIGTERM on, and Cloud Run's graceful shutdown depends on it.
CMD ["node", "dist/server.js"]
