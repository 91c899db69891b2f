# `make run` serves the chat on http://127.0.0.1:3000 with its database in ./data.
# `make test` runs every test, browser tests included.
# Both install the Debian packages they need when run as root, or say what to install.

BUILD_PACKAGES := libclang-dev pkg-config libssl-dev g++
# postgresql: the tests start a throwaway cluster from its binaries for the PostgreSQL backend.
# nginx: the tests run deploy/nginx.conf in front of two instances.
TEST_PACKAGES := chromium chromium-driver postgresql nginx

.PHONY: run test build-deps test-deps

run: build-deps
	cargo run --release

test: build-deps test-deps
	cargo test --all-targets

build-deps:
	@./scripts/ensure-packages $(BUILD_PACKAGES)

test-deps:
	@./scripts/ensure-packages $(TEST_PACKAGES)
