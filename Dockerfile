# shopd container image.
#
#   docker build -t shopd .
#   docker run --rm -p 8080:8080 shopd
#
# Two stages on the same Debian release, so the binary links against exactly
# the library versions the runtime stage installs:
#   build    - compiler, -dev packages, Check and redis-server (the Redis
#              store's tests start their own); builds ./shopd and runs the
#              tests (a failing test fails the image build).
#   runtime  - debian:bookworm-slim + libmicrohttpd12 + libcjson1 +
#              libsqlite3-0 + libhiredis0.14 + the binary. No compiler, no curl, no shell
#              tools beyond the base image. /data is a volume for
#              --store sqlite:/data/shop.db (SHOPD_STORE).
#
# Build arguments:
#   BASE_DIGEST  empty by default (plain debian:bookworm-slim). To pin the
#                base, pass the digest with its '@':
#                  --build-arg BASE_DIGEST=@sha256:<64 hex digits>
#   SHOPD_TEST   which tests run in the build stage:
#                  unit (default)  the Check unit suites, no extra packages;
#                  test            unit + end-to-end (`make test`): also
#                                  installs curl and prometheus (promtool),
#                                  about 100 MB more in the build stage;
#                  none            skip the tests.
#                The end-to-end suite starts the real binary on loopback
#                ports; CI runs it on the host with `make test` already,
#                so the image repeats only the fast, hermetic unit suites.
#
# Plain Dockerfile syntax (no heredocs, no COPY --link): the classic
# `docker build`, BuildKit and podman/buildah all accept it.

ARG BASE_DIGEST=

FROM debian:bookworm-slim${BASE_DIGEST} AS build
# Marks the build stage's images: the classic builder keeps them as cache,
# and `docker image prune --filter label=shopd.stage=build` removes the
# stale ones. The runtime stage does not inherit it.
LABEL shopd.stage=build
ARG SHOPD_TEST=unit
ENV DEBIAN_FRONTEND=noninteractive
RUN set -eux; \
    extra=; \
    if [ "$SHOPD_TEST" = test ]; then extra="curl prometheus"; fi; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        gcc libc6-dev make pkg-config \
        libmicrohttpd-dev libcjson-dev libsqlite3-dev libhiredis-dev check \
        redis-server \
        $extra; \
    rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN set -eux; \
    make clean; \
    make -j"$(nproc)" shopd; \
    case "$SHOPD_TEST" in \
        unit) make unit ;; \
        test) make test ;; \
        none) ;; \
        *) echo "SHOPD_TEST must be unit, test or none" >&2; exit 2 ;; \
    esac; \
    make install DESTDIR=/out PREFIX=/usr/local; \
    strip --strip-unneeded /out/usr/local/bin/shopd; \
    /out/usr/local/bin/shopd --version

FROM debian:bookworm-slim${BASE_DIGEST} AS runtime
LABEL org.opencontainers.image.title="shopd" \
      org.opencontainers.image.description="HTTP shop backend: bounded order channel, worker pool, JSON stats"
# Runtime libraries only; a fixed numeric uid/gid so orchestrators can
# check runAsNonRoot and mounted files can be chowned to it.
RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libmicrohttpd12 libcjson1 libsqlite3-0 libhiredis0.14; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 shopd; \
    useradd --system --uid 10001 --gid shopd --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin shopd; \
    mkdir -p /etc/shopd /data; \
    chown 10001:10001 /data
COPY --from=build /out/usr/local/bin/shopd /usr/local/bin/shopd
# Where a durable shop lives: docker run -v shopd-data:/data
# -e SHOPD_STORE=sqlite:/data/shop.db. A named volume starts as a copy of
# this directory, so it is owned by the shopd user. Without SHOPD_STORE the
# shop stays in memory and /data is unused.
VOLUME /data
USER 10001:10001
ENV SHOPD_BIND=0.0.0.0
# Drain for at most 8 s, inside docker stop's default 10 s grace, so that
# even an overlong belt ends with shopd's own report of what was left
# rather than a SIGKILL. Raise both together (-e ... and docker stop -t).
ENV SHOPD_DRAIN_TIMEOUT=8
EXPOSE 8080
# SIGTERM starts the drain: no new orders (503), the workers finish every
# order already accepted, shopd logs "drained ... left=0" and exits 0 -
# well inside `docker stop`'s default 10 s grace period.
STOPSIGNAL SIGTERM
# `shopd --probe` GETs http://127.0.0.1:$SHOPD_PORT/healthz (default 8080)
# with a 2 s timeout of its own, so the image needs no curl. Change the
# port with -e SHOPD_PORT=..., not --port, so the probe follows it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/shopd", "--probe"]
# Exec form: shopd is PID 1 and receives the signals itself. Flags given
# to `docker run IMAGE ...` are appended (e.g. --workers 2).
ENTRYPOINT ["/usr/local/bin/shopd"]
