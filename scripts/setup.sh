#!/usr/bin/env bash
# Installs everything xvs needs on a fresh Debian 12 machine (as root). Idempotent: packages
# already present are left alone; apt's lists are refreshed only when something is missing.
set -euo pipefail

packages=(
  # Build: clang compiles the XDP program (and libxdp inside xsk-rs); libelf, zlib, make, m4
  # and pkg-config build the vendored libbpf of libbpf-sys.
  clang libelf-dev zlib1g-dev libbpf-dev linux-libc-dev m4 make pkg-config gcc
  # libpcap compiles `xvsadm capture`'s filters (tcpdump's language).
  libpcap-dev
  # Topologies, clients and servers for the demo and the end-to-end tests.
  iproute2 ethtool iputils-ping netcat-openbsd tcpdump curl nginx-light socat procps wrk iperf3
  # The SYN flood of tests/tests/synflood.rs.
  hping3
  # The kernel NAT that `xvs-bench` compares xvs with.
  nftables
  # The BGP daemon of the scale-out rig (tests/tests/scale_out.rs, docs/scale-out.md).
  bird2
)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (it installs packages with apt-get)" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian starts nginx on the host when it is installed; xvs only runs its own instances
# inside test namespaces, so keep the host's copy stopped.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then
  systemctl stop nginx >/dev/null 2>&1 || true
  systemctl disable nginx >/dev/null 2>&1 || true
elif [ -f /run/nginx.pid ]; then
  nginx -s stop >/dev/null 2>&1 || true
fi

# Likewise bird2: the tests run their own instances inside their namespaces, each with its
# own configuration and control socket; the host's must not announce anything.
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled --quiet bird 2>/dev/null; then
  systemctl stop bird >/dev/null 2>&1 || true
  systemctl disable bird >/dev/null 2>&1 || true
elif [ -f /run/bird/bird.pid ]; then
  kill "$(cat /run/bird/bird.pid)" >/dev/null 2>&1 || true
fi

# The Rust toolchain comes with the machine image (it cannot be downloaded here).
for tool in cargo rustc; do
  command -v "$tool" >/dev/null 2>&1 || { echo "setup.sh: $tool not found: install a stable Rust toolchain (rustup) first" >&2; exit 1; }
done
cargo fmt --version >/dev/null 2>&1 || echo "setup.sh: note: rustfmt is missing (rustup component add rustfmt)" >&2
cargo clippy --version >/dev/null 2>&1 || echo "setup.sh: note: clippy is missing (rustup component add clippy)" >&2

# cargo-fuzz for scripts/fuzz.sh (which runs it on the stable toolchain), pinned.
cargo_fuzz_version=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -qxF "cargo-fuzz $cargo_fuzz_version"; then
  echo "setup.sh: installing cargo-fuzz $cargo_fuzz_version"
  cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked --quiet
fi

echo "setup.sh: ready ($(clang --version | head -1); $(cargo --version))"
