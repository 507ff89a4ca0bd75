# Package installation shared by the main and test commands.
# shellcheck shell=bash
# What the tests exercise: tshark (capture decoding), iproute2/ethtool (veth,
# netns, XDP), qemu-system-x86/cpio/zstd/kmod (kvm deployment, guest image),
# busybox-static (guest init), runc/crun/hyperfine (runtime comparison),
# rt-tests (cyclictest reference), util-linux (setpriv).
TEST_PACKAGES=(build-essential pkg-config tshark iproute2 ethtool iputils-ping procps kmod cpio zstd xz-utils busybox-static qemu-system-x86 runc crun hyperfine rt-tests util-linux)
RUN_PACKAGES=(build-essential pkg-config iproute2 ethtool procps kmod cpio zstd xz-utils busybox-static qemu-system-x86)

install_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "==> packages present: $*"
    return 0
  fi
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "==> not root or no apt-get: not installing ${missing[*]}; what needs them is skipped and says why"
    return 0
  fi
  echo "==> apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections 2>/dev/null || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
install_test_deps() { install_packages "${TEST_PACKAGES[@]}"; }
install_run_deps() { install_packages "${RUN_PACKAGES[@]}"; }
