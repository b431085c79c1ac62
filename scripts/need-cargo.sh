# Sourced by demo.sh and test.sh: stops with a clear message when cargo is missing or too old for traceflow.
# The minimum is Cargo.toml's rust-version (the dependencies need it).
need=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml)
if ! command -v cargo >/dev/null 2>&1; then
  echo "$0: cargo is not installed; traceflow needs a Rust toolchain >= $need (install it with rustup," \
       "https://rustup.rs), then run this again" >&2
  exit 1
fi
have=$(cargo --version | sed -n 's/^cargo \([0-9][0-9.]*\).*/\1/p')
if [ -z "$have" ] || [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1)" != "$need" ]; then
  echo "$0: $(cargo --version 2>/dev/null || echo cargo) is too old; traceflow needs Rust >= $need" \
       "(Debian 12's cargo is 1.63: use rustup, then 'rustup update')" >&2
  exit 1
fi
