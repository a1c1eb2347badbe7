# One image for every role: broker, producer, client. Run with tsx (no build step).
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
# Runtime dependencies only (tsx is one); no test tooling in the image.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY protocol ./protocol
COPY common ./common
COPY session ./session
COPY broker ./broker
COPY producer ./producer
COPY client ./client
COPY samples/*.mjpeg samples/*.wav ./samples/
# Where clients record (a volume in docker-compose.yml): the node user must be able to write it.
RUN mkdir -p /app/recordings && chown node:node /app/recordings
USER node
ENTRYPOINT ["node", "--import", "tsx"]
CMD ["broker/main.ts"]
