# syntax=docker/dockerfile:1
# The statushub hub as a small container image, built in two stages:
#   1. build: Rust 1.95.0 (the version rust-toolchain.toml pins, so rustup downloads
#      nothing) compiles the release binary from the locked dependency set;
#   2. runtime: Debian bookworm-slim (the same glibc as the builder) with the binary,
#      CA certificates for the heartbeat's HTTPS checks and the health-check script,
#      running as an unprivileged user.
# Build: docker build -t statushub .    Run: see docker-compose.yml and README "Cluster mode".

ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the crate registry and the target dir between builds; the binary is
# copied out of the cached target dir so the next stage can take it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --package statushub --bin statushub \
    && install -D -m 0755 target/release/statushub /out/statushub

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 statushub \
    && useradd --system --uid 10001 --gid statushub --home-dir /var/lib/statushub \
       --create-home --shell /usr/sbin/nologin statushub
COPY --from=build /out/statushub /usr/local/bin/statushub
COPY --chmod=0755 deploy/healthcheck.sh /usr/local/bin/statushub-healthcheck
USER 10001:10001
WORKDIR /var/lib/statushub
# Listen on every interface of the container; JSON logs for the log collector.
# The JWT secret, API keys and STATUSHUB_REDIS_URL come from the environment at run time.
ENV STATUSHUB_LISTEN=0.0.0.0:8080 \
    STATUSHUB_DATA_DIR=/var/lib/statushub \
    STATUSHUB_LOG_FORMAT=json
EXPOSE 8080
# Healthy when GET /readyz answers 200 (the store can be read and written).
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["statushub-healthcheck"]
# SIGTERM: stop accepting, tell clients to reconnect (elsewhere), flush the store.
STOPSIGNAL SIGTERM
ENTRYPOINT ["statushub"]
CMD ["serve"]
