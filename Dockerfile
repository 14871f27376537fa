# syntax=docker/dockerfile:1
# workflow-node in a container: a multi-stage build on debian:bookworm-slim.
#
#   docker build -t workflow-node .                  # the agent (the last stage)
#   docker build -t workflow-node-etcd --target etcd .   # Debian's etcd, for compose
#
# Where no registry is reachable, scripts/build-base-image.sh makes
# debian:bookworm-slim with debootstrap; if containers cannot reach the Debian
# mirror, add `--network host` (the build stages run apt-get).
#
# The agent runs as the unprivileged user workflow-node (uid 10001).  The
# DOCKER runner talks to the Engine through /var/run/docker.sock, which is
# root:docker 0660 on most hosts: give the container the socket's group
# (`--group-add $(stat -c %g /var/run/docker.sock)`, compose: DOCKER_GID) or
# run it as root (`--user 0`).  Either is root on the host in effect: whoever
# drives the Docker socket can start a privileged container.  See
# docs/operations.md, "Run it in a container".

ARG BASE=debian:bookworm-slim

# ---- build: the -dev packages, meson in release mode --------------------------------
FROM ${BASE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential meson ninja-build pkg-config python3 \
      libuv1-dev node-llhttp protobuf-c-compiler libprotobuf-c-dev \
      libjansson-dev libyaml-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Only the two programs: the tests are not built into the image.
RUN meson setup /build --buildtype=release --prefix=/usr/local -Dwerror=false \
 && ninja -C /build src/workflow-node src/wfctl \
 && install -D -m 0755 /build/src/workflow-node /out/usr/local/bin/workflow-node \
 && install -D -m 0755 /build/src/wfctl /out/usr/local/bin/wfctl \
 && install -D -m 0644 contrib/wfctl.bash /out/usr/share/bash-completion/completions/wfctl \
 && strip /out/usr/local/bin/*

# ---- etcd: Debian's etcd-server, for docker-compose.yml (not needed in production) --
FROM ${BASE} AS etcd
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-server \
 && rm -rf /var/lib/apt/lists/*
VOLUME /var/lib/etcd
EXPOSE 2379
ENTRYPOINT ["/usr/bin/etcd", "--data-dir", "/var/lib/etcd/data", \
            "--listen-client-urls", "http://0.0.0.0:2379", \
            "--advertise-client-urls", "http://etcd:2379"]

# ---- runtime: the runtime libraries only --------------------------------------------
FROM ${BASE} AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libuv1 libjansson4 libprotobuf-c1 libyaml-0-2 libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 workflow-node \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/workflow-node \
      --shell /usr/sbin/nologin workflow-node \
 && install -d -o workflow-node -g workflow-node /var/lib/workflow-node /var/lib/workflow-node/logs
COPY --from=build /out/ /
USER workflow-node
WORKDIR /var/lib/workflow-node
ENV WORKFLOW_LOG_DIR=/var/lib/workflow-node/logs
VOLUME /var/lib/workflow-node/logs
# --listen / WORKFLOW_LISTEN serves /healthz, /readyz, /metrics here when set.
EXPOSE 9464
# SIGTERM drains running steps (--drain-timeout, default 30 s): give
# `docker stop -t` / compose stop_grace_period at least 45 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/workflow-node"]
