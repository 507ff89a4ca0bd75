# Rust toolchain check shared by the main and test commands.
# shellcheck shell=bash
ensure_rust() {
  if command -v cargo >/dev/null 2>&1; then
    echo "==> using $(cargo --version)"
    return 0
  fi
  [ -x "$HOME/.cargo/bin/cargo" ] && { export PATH="$HOME/.cargo/bin:$PATH"; echo "==> using $(cargo --version)"; return 0; }
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null && apt-cache show rustup >/dev/null 2>&1; then
    echo "==> apt-get install rustup, then rustup default stable (no cargo found)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustup >/dev/null
    rustup default stable
    return 0
  fi
  echo "error: cargo not found; install Rust (https://rustup.rs: curl --proto '=https' -sSf https://sh.rustup.rs | sh) and run again" >&2
  exit 1
}
