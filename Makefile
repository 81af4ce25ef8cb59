# Keyplane: `make run` starts the platform, `make test` runs every test.
.DEFAULT_GOAL := help
CARGO ?= cargo

.PHONY: help run test lint fmt

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-8s %s\n", $$1, $$2}'

run: ## Start the whole platform at http://127.0.0.1:8080 (SQLite under ./data, no server needed)
	$(CARGO) run --bin keyplane -- up

test: ## Run every test on PostgreSQL and Redis (local servers, or throwaway ones)
	@# --workspace: the same feature set as the test build, so nothing compiles twice.
	$(CARGO) build --workspace --bins
	tests/with-services.sh $(CARGO) test --workspace

lint: ## Formatting and clippy, as strict as CI should be
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all
