# One command gates a change: `make check`.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/flotilla-target

.PHONY: check fmt clippy test doc run
check: fmt clippy test doc
fmt:
	cargo fmt --all -- --check
clippy:
	cargo clippy --workspace --all-targets -- -D warnings
test:
	./scripts/test.sh
doc:
	RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
run:
	./scripts/run.sh
