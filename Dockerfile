# One image for every Keyplane process: `keyplane serve --target <name>` picks the service
# (identity, keys, orgs, usage, advisors, families, gateway), `keyplane migrate` migrates.
#
#   docker build -t keyplane:dev .
#   docker run --rm keyplane:dev serve --target gateway
#
# The build stage compiles the release binary; the runtime is distroless (no shell, no
# package manager), running as its non-root user with a read-only root filesystem in mind:
# nothing is written except under /tmp, which the Kubernetes manifests mount as emptyDir.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so a source change does not rebuild them: the manifests, then the code.
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY proto proto
COPY migrations migrations
COPY services services
COPY gateway gateway
COPY cli cli
COPY bench bench
COPY tests tests
RUN cargo build --release --locked --bin keyplane \
 && install -D -m 0755 target/release/keyplane /out/keyplane

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/keyplane /usr/local/bin/keyplane
USER nonroot:nonroot
# 8080: the gateway; 8081: the families backend; 50051-50055: the services' gRPC.
EXPOSE 8080 8081 50051 50052 50053 50054 50055
ENTRYPOINT ["/usr/local/bin/keyplane"]
CMD ["serve", "--target", "gateway"]
