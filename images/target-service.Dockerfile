# syntax=docker/dockerfile:1
# The deliberately broken target service of a scenario Pod: `target-service`
# sets up the scenario's fault under --root and supervises the service
# (the catalog is compiled in). It has a shell and the usual tools so a
# person (kubectl debug) or an agent sees the service as it would on a
# real host; the agent's own commands run in the sandbox sidecar, which
# shares the root volume.
#
#   docker build -f images/target-service.Dockerfile -t remediator-target-service:dev .
#   kind load docker-image remediator-target-service:dev --name remediator

ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN} AS build
WORKDIR /src
COPY . .
# Only the service's crate and its few dependencies are compiled.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p target-service --bin target-service \
 && strip target/release/target-service \
 && install -D -m 0755 target/release/target-service /out/target-service

FROM debian:${DEBIAN}-slim
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends procps curl jq \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/*
COPY --from=build /out/target-service /usr/local/bin/target-service
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/target-service"]
