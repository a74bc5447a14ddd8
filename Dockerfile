# syntax=docker/dockerfile:1.7
#
# Vantus container image.
#
#   chef     Rust toolchain + cargo-chef + cross linkers (runs on the BUILD platform)
#   planner  computes the dependency recipe from Cargo.toml/Cargo.lock
#   builder  cooks (compiles) dependencies from the recipe, then builds `vantus`
#            as a fully static binary for the TARGET platform
#   runtime  distroless static, non-root: the binary and an empty data folder, nothing else
#
# Build:  docker buildx build --platform linux/amd64,linux/arm64 -t vantus:dev .
# Why a static glibc build cross-compiled on the build platform instead of musl or QEMU:
# docs/adr/0101-static-glibc-image.md. Expected size (~20-30 MB uncompressed): docs/operations/deploy-compose.md.

ARG RUST_VERSION=1.95
ARG DEBIAN_SUITE=bookworm

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-slim-${DEBIAN_SUITE} AS chef
ARG CARGO_CHEF_VERSION=0.1.78
ARG BUILDARCH
# Cross toolchains only for the architecture we are NOT running on; native builds use the host gcc.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Unpinned apt versions are deliberate: the suite is pinned, and security updates should flow in.
# hadolint ignore=DL3008,SC2086
RUN set -eux; \
    apt-get update; \
    pkgs="pkg-config"; \
    if [ "$BUILDARCH" != "arm64" ]; then pkgs="$pkgs gcc-aarch64-linux-gnu libc6-dev-arm64-cross"; fi; \
    if [ "$BUILDARCH" != "amd64" ]; then pkgs="$pkgs gcc-x86-64-linux-gnu libc6-dev-amd64-cross"; fi; \
    apt-get install -y --no-install-recommends $pkgs; \
    rm -rf /var/lib/apt/lists/*; \
    rustup target add x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu; \
    cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG TARGETARCH
ARG BUILDARCH
# Static linking needs an explicit --target so that build scripts and proc-macros stay dynamic.
# Debian ships triplet-prefixed names for the native compiler too (x86_64-linux-gnu-gcc on amd64).
ENV RUSTFLAGS="-C target-feature=+crt-static" \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=x86_64-linux-gnu-gcc \
    CC_x86_64_unknown_linux_gnu=x86_64-linux-gnu-gcc \
    AR_x86_64_unknown_linux_gnu=x86_64-linux-gnu-ar
RUN set -eux; \
    case "$TARGETARCH" in \
      amd64) echo x86_64-unknown-linux-gnu > /rust-target ;; \
      arm64) echo aarch64-unknown-linux-gnu > /rust-target ;; \
      *) echo "unsupported TARGETARCH=$TARGETARCH" >&2; exit 1 ;; \
    esac
COPY --from=planner /src/recipe.json recipe.json
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    cargo chef cook --release --locked --target "$(cat /rust-target)" --recipe-path recipe.json
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    set -eux; \
    target="$(cat /rust-target)"; \
    cargo build --release --locked --target "$target" --bin vantus; \
    mkdir -p /out/data; \
    cp "target/$target/release/vantus" /out/vantus; \
    # Refuse to ship a binary that needs a dynamic loader: the runtime image has none.
    if readelf -l /out/vantus | grep -q 'Requesting program interpreter'; then \
      echo "vantus is dynamically linked; the static build failed" >&2; exit 1; \
    fi

FROM gcr.io/distroless/static-debian12:nonroot AS runtime
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=https://github.com/vantus-systems/vantus
LABEL org.opencontainers.image.title="vantus" \
      org.opencontainers.image.description="Vantus: public site, lead capture and admin portal in one binary" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.url="${SOURCE}" \
      org.opencontainers.image.documentation="${SOURCE}/tree/main/docs/operations" \
      org.opencontainers.image.licenses="AGPL-3.0-only" \
      org.opencontainers.image.vendor="Vantus Systems" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
# 65532 is distroless' `nonroot`. The data folder is created owned by it so that a fresh
# named volume inherits the ownership (Docker and Podman copy it up on first mount).
COPY --from=builder --chown=65532:65532 /out/data /var/lib/vantus
COPY --from=builder /out/vantus /vantus
ENV VANTUS_ENV=production \
    VANTUS_LISTEN=0.0.0.0:8080 \
    VANTUS_METRICS_LISTEN=0.0.0.0:9090 \
    VANTUS_DATA_DIR=/var/lib/vantus \
    VANTUS_LOG_FORMAT=json
USER 65532:65532
VOLUME ["/var/lib/vantus"]
EXPOSE 8080 9090
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 CMD ["/vantus", "healthcheck"]
ENTRYPOINT ["/vantus"]
CMD ["serve"]
