# evkit: the library, CLIs and the five reference services in one image.
#
#   docker build -t evkit:local .
#   docker run --rm evkit:local evk-order --help
#
# Multi-stage: the build stage has the compilers and -dev packages; the
# runtime stage only the shared libraries, the evkit binaries, the schema
# catalog and the small shell helpers of docker/ (entrypoint, healthcheck,
# topic init, sample orders). It runs as the unprivileged user "evkit"
# (uid 10001). See docs/DOCKER.md.

# ---- build ---------------------------------------------------------------
FROM debian:bookworm-slim AS build

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      librdkafka-dev libavro-dev libconfig-dev libjansson-dev libcmocka-dev \
      libcurl4-openssl-dev libmicrohttpd-dev liblmdb-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# Installed under /usr/local (so the compiled-in data directory is
# /usr/local/share/evkit), staged in /staging for the runtime stage.
RUN cmake -S . -B /build \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_INSTALL_PREFIX=/usr/local \
      -DEVK_BUILD_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" \
 && DESTDIR=/staging cmake --install /build \
 && rm -rf /staging/usr/local/include /staging/usr/local/lib/pkgconfig \
 && install -m 0755 docker/entrypoint /staging/usr/local/bin/evk-entrypoint \
 && install -m 0755 docker/healthcheck /staging/usr/local/bin/evk-healthcheck \
 && install -m 0755 docker/init-topics /staging/usr/local/bin/evk-init-topics \
 && install -m 0755 docker/sample-orders /staging/usr/local/bin/evk-sample-orders

# ---- runtime -------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# kcat is optional (set --build-arg EVK_WITH_KCAT=0 to leave it out); the
# compose smoke test uses it to check the topics. curl is there so that the
# healthcheck can switch to GET /healthz without rebuilding.
ARG EVK_WITH_KCAT=1
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka1 libavro23 libconfig9 libjansson4 libcurl4 libmicrohttpd12 liblmdb0 \
      ca-certificates curl \
      $( [ "$EVK_WITH_KCAT" = 1 ] && echo kcat ) \
 && rm -rf /var/lib/apt/lists/*

COPY --from=build /staging/usr/local/ /usr/local/
RUN ldconfig \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/evkit --shell /usr/sbin/nologin evkit \
 && install -d -o evkit -g evkit -m 0755 /var/lib/evkit /var/lib/evkit/outbox /run/evkit

USER evkit
WORKDIR /var/lib/evkit
ENV EVK_SCHEMAS_DIR=/usr/local/share/evkit/schemas
# The services' state stores on disk (docs/SCALING.md): kept across a
# container's restarts; a new container restores from the changelogs.
ENV EVK_STATE_DIR=/var/lib/evkit/state

ENTRYPOINT ["/usr/local/bin/evk-entrypoint"]
CMD ["evk-order", "--help"]
