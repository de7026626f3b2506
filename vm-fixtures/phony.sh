#!/usr/bin/env bash
# phony.sh — builds small "phony guest" disk images for goldify's integration tests.
#
# A phony guest is not bootable: it is a partitioned qcow2 disk whose filesystems hold a
# file tree that looks like a *used* Linux machine, complete enough that libguestfs
# inspection recognises exactly one Linux root with the right distro.
#
# The guests are data: vm-fixtures/phony/images/NAME.toml (layers, known values, disk
# layout) and the file trees under vm-fixtures/phony/; phony.py builds them (README.md).
#
# Usage:
#   phony.sh NAME     build (or reuse) image NAME; print its absolute path (one line)
#   phony.sh all      build every image; print "NAME PATH" lines
#   phony.sh --list   print the image names
#   phony.sh --tree NAME DIR         the host tree and guestfish post-script only
#   phony.sh --disk-script NAME      the layout commands only
set -euo pipefail
exec python3 "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/phony.py" "$@"
