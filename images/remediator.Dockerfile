# syntax=docker/dockerfile:1
# The operator, agent and sandbox image: one binary, `remediator`, whose
# first argument picks the role (operator | agent | sandbox serve). The
# sandbox sidecar runs the agent's commands with /bin/sh inside this image,
# so the shell tools the runbook and an LLM agent use are here too.
#
#   docker build -f images/remediator.Dockerfile -t remediator:dev .
#   kind load docker-image remediator:dev --name remediator
#
# Build context: the repository root (.dockerignore keeps target/ out).

ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN} AS build
# aws-lc-rs (the TLS crypto) builds C and needs cmake.
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends cmake make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p remediator --bin remediator \
 && strip target/release/remediator \
 && install -D -m 0755 target/release/remediator /out/remediator

FROM debian:${DEBIAN}-slim
# coreutils, grep, sed, findutils, mawk, tar and dash come with the base;
# ps, curl and jq are what agents reach for next. No package manager cache.
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends procps curl jq ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/*
COPY --from=build /out/remediator /usr/local/bin/remediator
# The uid the chart's Pods run as (runAsUser 65532, runAsNonRoot).
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/remediator"]
CMD ["--help"]
