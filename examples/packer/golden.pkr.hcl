# A Packer build that ends with a golden template made by goldify.
#
# Packer plugins must be written in Go, so goldify joins the build the documented way,
# as a chain of post-processors:
#   manifest     records the build's files in packer-manifest.json;
#   shell-local  runs `goldify run --packer-manifest`, which takes the disk from there;
#   artifice     makes goldify's output the build's artifact (instead of the used disk);
#   checksum     hashes that artifact.
#
# Works with Packer 1.6.6 (Debian 12's) and later, with built-in components only (nothing
# to download). The `file` builder stands in for a real one (qemu, vsphere-iso, …): it
# copies an existing disk. Run from the directory that should receive the outputs:
#
#   CHECKPOINT_DISABLE=1 packer build \
#     -var disk=/path/to/used.qcow2 -var recipe=/path/to/goldify/recipes/debian.yaml \
#     /path/to/goldify/examples/packer/golden.pkr.hcl
#
# Outputs: output-vm/disk.qcow2 (the builder's disk), packer-manifest.json,
# output-golden/golden.qcow2, output-golden/goldify-report.json and
# output-golden/vm_sha256.checksum.

variable "disk" {
  type        = string
  description = "The disk the stand-in builder copies (a used VM disk)."
}

variable "recipe" {
  type        = string
  description = "The goldify recipe."
}

variable "goldify" {
  type        = string
  default     = "goldify"
  description = "The goldify command."
}

variable "output_dir" {
  type    = string
  default = "output-golden"
}

source "file" "vm" {
  source = var.disk
  target = "output-vm/disk.qcow2"
}

build {
  sources = ["source.file.vm"]

  post-processors {
    post-processor "manifest" {
      output = "packer-manifest.json"
    }

    # PACKER_BUILD_NAME (set by shell-local) tells goldify which build of the manifest is
    # this one; --packer-build NAME would do the same.
    post-processor "shell-local" {
      inline = [
        "set -e",
        "mkdir -p '${var.output_dir}'",
        "'${var.goldify}' run '${var.recipe}' --packer-manifest packer-manifest.json --outdir '${var.output_dir}' --name golden --json > '${var.output_dir}/goldify-report.json'",
      ]
    }

    post-processor "artifice" {
      files = [
        "${var.output_dir}/golden.qcow2",
        "${var.output_dir}/goldify-report.json",
      ]
    }

    post-processor "checksum" {
      checksum_types = ["sha256"]
      output         = "${var.output_dir}/{{.BuildName}}_{{.ChecksumType}}.checksum"
    }
  }
}
