# The HubSpot emulator as an image, for docker-compose.dev.yml. Build context: dev/
# (see dev/.dockerignore). It runs the TypeScript sources through tsx, as `npm run emulator` does.
FROM node:24-bookworm-slim
ENV NPM_CONFIG_UPDATE_NOTIFIER=false
WORKDIR /emulator
RUN echo '{"name":"hubspot-emulator","private":true,"type":"module"}' > package.json \
 && npm install --no-audit --no-fund tsx@4 \
 && npm cache clean --force
COPY hubspot-emulator ./hubspot-emulator
USER node
EXPOSE 8090
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "-e", "require('http').get({host:'127.0.0.1',port:8090,path:'/__emulator/health',timeout:2500},r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1)).on('timeout',()=>process.exit(1))"]
ENTRYPOINT ["node", "--import", "tsx", "hubspot-emulator/cli.ts", "--host", "0.0.0.0", "--port", "8090"]
