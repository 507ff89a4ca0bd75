#!/usr/bin/env bash
# Builds the kvm deployment's guest image into OUT_DIR:
#   OUT_DIR/vmlinux (or bzImage)  the Debian kernel, uncompressed for direct PVH boot
#   OUT_DIR/initramfs.cpio        busybox-static, util-linux chrt, virtio modules,
#                                 the cranlab init (scripts/guest/init) and the worker
# Everything comes from registry packages: the kernel with `apt-get download`
# (cached under OUT_DIR/cache), the worker is bbu-sim built statically here.
#
# usage: scripts/build-guest.sh OUT_DIR [--rt] [--worker PATH]
#   --rt           PREEMPT_RT guest kernel (linux-image-rt-amd64)
#   --worker PATH  put PATH in the guest instead of a freshly built bbu-sim
set -euo pipefail

die() { echo "build-guest: $*" >&2; exit 1; }
[ $# -ge 1 ] || die "usage: $0 OUT_DIR [--rt] [--worker PATH]"
OUT=$1; shift
RT=""; WORKER=""
while [ $# -gt 0 ]; do
    case "$1" in
        --rt) RT=--rt ;;
        --worker) WORKER=${2:?--worker needs a path}; shift ;;
        *) die "unknown option $1" ;;
    esac
    shift
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

for t in apt-get apt-cache dpkg-deb depmod xz ldd; do
    command -v "$t" >/dev/null || die "$t missing (apt-get install apt dpkg kmod xz-utils libc-bin)"
done
[ -x /bin/busybox ] || die "/bin/busybox missing (apt-get install busybox-static)"
[ -x /usr/bin/chrt ] || die "/usr/bin/chrt missing (apt-get install util-linux)"
# A fresh machine may have no package lists yet.
apt-cache depends linux-image-amd64 2>/dev/null | grep -q 'Depends: linux-image-' || apt-get update -q

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [ -z "$WORKER" ]; then
    echo "build-guest: building static bbu-sim" >&2
    # --target keeps crt-static off the host build (proc macros cannot be static).
    (cd "$ROOT" && RUSTFLAGS="-C target-feature=+crt-static" cargo build -q --release -p bbu-sim \
        --target x86_64-unknown-linux-gnu --target-dir "$OUT/target-static")
    WORKER=$OUT/target-static/x86_64-unknown-linux-gnu/release/bbu-sim
fi
[ -f "$WORKER" ] || die "worker $WORKER not found"

(cd "$ROOT" && cargo build -q --release -p rt-runtime --bin cranlab-guest-image --target-dir "$TARGET")
INFO=$("$TARGET/release/cranlab-guest-image" "$OUT/cache" --worker "$WORKER" $RT)
echo "$INFO" >&2
kernel=$(echo "$INFO" | sed -n 's/^kernel=//p')
initramfs=$(echo "$INFO" | sed -n 's/^initramfs=//p')
cp -f "$kernel" "$OUT/$(basename "$kernel")"
cp -f "$initramfs" "$OUT/initramfs.cpio"
echo "$INFO" > "$OUT/image.txt"
echo "build-guest: $OUT/$(basename "$kernel") $OUT/initramfs.cpio"
