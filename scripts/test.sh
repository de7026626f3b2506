#!/usr/bin/env bash
# Runs every test goldify has: unit tests, the integration tests on fixture images and the
# QEMU boot tier. Installs what is missing first (idempotent). CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-host.sh

# Fixture images are cached outside the repository (~/.cache/goldify/fixtures); building
# them up front keeps the test output readable and the cost visible. Each script prints
# the image path and returns at once when the image is already cached.
start=$(date +%s)
bash vm-fixtures/phony.sh all >/dev/null
bash vm-fixtures/layouts.sh all >/dev/null
bash vm-fixtures/windows.sh all >/dev/null
bash vm-fixtures/debian12.sh >/dev/null
bash vm-fixtures/debian12.sh --no-cloud-init >/dev/null
echo "test.sh: fixtures ready in $(( $(date +%s) - start )) s"

# The layout's rules (issue "One record per publish target"): no two modules import each
# other, and only main.rs and cli.rs use the command line's types.
python3 scripts/import-cycles.py

# Two test threads: each integration test launches a libguestfs appliance, and the
# machine has two cores.
cargo test --locked --all-targets -- --test-threads="${GOLDIFY_TEST_THREADS:-2}"

# The QEMU boot tier: golden images booted as clones and checked from inside
# (`goldify verify --boot`). Ignored by a plain `cargo test` because it takes minutes.
cargo test --locked --test boot -- --ignored
