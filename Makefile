# Keyplane: `make run` starts the platform, `make test` runs every test.
.DEFAULT_GOAL := help
CARGO ?= cargo

.PHONY: help run test lint fmt bench bench-instructions bench-smoke deploy-check sdk

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-8s %s\n", $$1, $$2}'

run: ## Start the whole platform at http://127.0.0.1:8080 (SQLite under ./data, no server needed)
	$(CARGO) run --bin keyplane -- up

test: ## Run every test on PostgreSQL and Redis (local servers, or throwaway ones)
	@# --workspace: the same feature set as the test build, so nothing compiles twice.
	$(CARGO) build --workspace --bins
	@# npm, Python and Chromium packages for the SDK, console and gRPC-client tests, once.
	tests/tools.sh
	tests/with-services.sh $(CARGO) test --workspace
	@# The bench harness, a second a row on the debug build, so it cannot rot.
	tests/with-services.sh target/debug/keyplane-bench --smoke --bin target/debug
	@# The Kubernetes manifests, rendered and validated, so they cannot rot either.
	deploy/check.sh target/debug/keyplane

bench: ## Measure the hot path beside bare hyper and nginx (release; PostgreSQL and Redis; installs wrk and nginx)
	$(CARGO) build --release --bins
	tests/with-services.sh target/release/keyplane-bench --bin target/release --out bench/results

bench-instructions: ## Instructions per request on the hot path, counted by callgrind (release; needs valgrind)
	$(CARGO) build --release --bins
	bench/instructions.sh target/release

bench-smoke: ## The bench harness for a second a row, on the debug build
	$(CARGO) build --workspace --bins
	tests/with-services.sh target/debug/keyplane-bench --smoke --bin target/debug

deploy-check: ## Render every Kubernetes overlay, validate it offline, check each process's settings
	$(CARGO) build --bin keyplane
	deploy/check.sh target/debug/keyplane

sdk: ## Regenerate the TypeScript SDK (sdk/typescript) from the gateway's OpenAPI document
	tests/tools.sh
	KEYPLANE_UPDATE_SDK=1 tests/with-services.sh $(CARGO) test -p keyplane-e2e --test e2e sdk::

lint: ## Formatting, clippy, and the shape of the services
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@# domain/ and service.rs speak the domain: wire and storage types stay in grpc.rs and store/.
	@if grep -rnwE 'prost|tonic|sea_orm|keyplane_proto' services/*/src/domain services/*/src/service.rs; then \
		echo "domain/ and service.rs must not use prost, tonic, sea-orm or the protos"; exit 1; fi
	@# No service crate depends on another: they talk gRPC.
	@for crate in identity keys orgs usage advisors families; do \
		if $(CARGO) tree -p keyplane-$$crate --edges normal --prefix none | grep -E '^keyplane-(identity|keys|orgs|usage|advisors|families) ' | grep -v "^keyplane-$$crate "; then \
			echo "keyplane-$$crate depends on another service"; exit 1; fi; done

fmt: ## Format the code
	$(CARGO) fmt --all
