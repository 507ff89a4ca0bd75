# Package installation shared by the main and test commands.
# shellcheck shell=bash
TEST_PACKAGES=(tshark iproute2 ethtool procps kmod cpio zstd busybox-static qemu-system-x86 runc crun hyperfine rt-tests)

install_test_deps() {
  local missing=()
  for p in "${TEST_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "==> test packages present: ${TEST_PACKAGES[*]}"
    return 0
  fi
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "==> not root or no apt-get: not installing ${missing[*]}; tests needing them will skip and say why"
    return 0
  fi
  echo "==> apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections 2>/dev/null || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
