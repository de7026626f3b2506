#!/usr/bin/env bash
# Installs what is missing, builds a used Debian 12 disk (real: mmdebstrap, GRUB, booted
# once with cloud-init so it carries a machine's state), and turns it into a golden disk,
# out/debian12.qcow2 in the checkout (GOLDIFY_DEMO_OUT=DIR puts it elsewhere: the tests do).
set -euo pipefail
# A relative GOLDIFY_DEMO_OUT is the caller's, taken before moving to the checkout.
out=${GOLDIFY_DEMO_OUT:+$(realpath -m -- "$GOLDIFY_DEMO_OUT")}
cd "$(dirname "$0")/.."
out=${out:-out}

bash scripts/setup-host.sh
cargo build --locked --release
used=$(bash vm-fixtures/debian12.sh)
echo "demo.sh: used disk: $used"
./target/release/goldify inspect "$used"
mkdir -p "$out"
./target/release/goldify run recipes/debian.yaml "$used" -o "$out" --name debian12
./target/release/goldify inspect "$out/debian12.qcow2"
echo "demo.sh: to put goldify on your PATH with its recipes, man pages and completions: scripts/install.sh [PREFIX]"
