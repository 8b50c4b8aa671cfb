# mcp (multi-claude-proxy) as a container: the build stage compiles one self-contained binary with
# Bun, the runtime stage is a slim Debian with that binary, CA certificates and nothing else.
#   docker build --build-arg MCP_COMMIT=$(git rev-parse --short HEAD) -t mcp .
#   docker run -e PROXY_API_KEY=... -p 8080:8080 -v mcp-data:/data mcp

# ---- build ----
FROM oven/bun:1.4 AS build
WORKDIR /src
COPY package.json bun.lock ./
RUN bun install --frozen-lockfile
COPY tsconfig.json ./
COPY src ./src
COPY scripts ./scripts
# .git is not in the build context: the commit comes in as a build argument.
ARG MCP_COMMIT=unknown
RUN MCP_COMMIT=${MCP_COMMIT} bun run scripts/build.ts /out/mcp && /out/mcp --version

# ---- runtime ----
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 mcp \
 && useradd --system --uid 10001 --gid mcp --home-dir /data --shell /usr/sbin/nologin mcp \
 && mkdir -p /data /config \
 && chown mcp:mcp /data /config \
 && chmod 0700 /data
COPY --from=build /out/mcp /usr/local/bin/mcp

ENV MCP_DATA_DIR=/data \
    PORT=8080 \
    BIND_ADDRESS=0.0.0.0 \
    LOG_FORMAT=json \
    NO_COLOR=1
USER mcp:mcp
WORKDIR /data
# The database (accounts, limits, usage) lives here: keep it on a volume.
VOLUME ["/data"]
EXPOSE 8080
# SIGTERM lets streams in flight finish (SHUTDOWN_GRACE_SEC, default 30 s): give `docker stop -t` more.
STOPSIGNAL SIGTERM
# Slim images have no curl or wget: the binary checks itself.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/usr/local/bin/mcp", "health", "--timeout", "4"]
ENTRYPOINT ["/usr/local/bin/mcp"]
CMD ["serve"]
