# chat-token service image. Build: docker build -t chat-token . (or podman build).
# Runs as the non-root node user, writes nothing outside /tmp (works with --read-only), and drains on
# SIGTERM within SHUTDOWN_DRAIN_MS plus the requests in flight: give `docker stop -t` / the
# orchestrator's grace period at least SHUTDOWN_DRAIN_MS + HUBSPOT_TIMEOUT_MS + a few seconds.

# --- build: every dependency, `npm run build` (TypeScript, and any bundle the build script adds),
# then the dev dependencies are pruned so only production ones are left to copy
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# --- runtime: node, production node_modules and dist/, nothing else
FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
USER node
EXPOSE 3000 9464
# No curl in the image: node itself asks /healthz (on PORT, default 3000).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "require('http').get({host:'127.0.0.1',port:process.env.PORT||3000,path:'/healthz',timeout:2500},r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1)).on('timeout',()=>process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "dist/server.js"]
