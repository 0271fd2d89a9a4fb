# greenlight: multi-stage build. The builder runs the same release build CI runs
# (`cargo build --release --locked`); the runtime image is slim, non-root, with the data
# directory as a volume. No secrets are baked in: tokens come from the environment.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY config config
COPY benches benches
COPY tests tests
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin greenlight \
    && mkdir -p /data /etc/greenlight \
    && chown greenlight:greenlight /data
COPY --from=build /src/target/release/greenlight /usr/local/bin/greenlight
COPY config/greenlight.toml /etc/greenlight/greenlight.toml
ENV GREENLIGHT_CONFIG=/etc/greenlight/greenlight.toml \
    GREENLIGHT_DATA=/data \
    GREENLIGHT_LISTEN=0.0.0.0:8080
USER greenlight
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 CMD ["greenlight", "healthcheck"]
ENTRYPOINT ["greenlight"]
CMD ["run"]
