#!/usr/bin/env bash
# Build a kernel and a busybox initramfs from Debian's packages alone: linux-image-amd64's kernel and the drivers
# asked for (with what they depend on, in load order), busybox-static, and the files given (an /init at least).
# Nothing is installed: the packages are downloaded and unpacked in a scratch directory.
#
#   build_ramdisk.sh OUTDIR INIT [--file SRC=DEST]... [--module NAME]... [--optional-module NAME]... [--check]
#
# OUTDIR gets vmlinuz, initrd.img and manifest. The initramfs holds /bin/busybox (/bin/sh links to it; /init
# installs the other applets), INIT as /init, each --file at DEST (mode 0755), the drivers as
# /lib/modules/<name>.ko and their order in /lib/modules/load-order. An --optional-module missing from the
# kernel package is left out and named in the manifest; a missing --module is an error.
# Idempotent: prints "unchanged" and changes nothing when OUTDIR holds what this script built from the same
# inputs and package versions; prints "built" otherwise ("build" with --check, which writes nothing). The same
# inputs give the same bytes.
set -euo pipefail

log() { printf '[build_ramdisk] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ $# -ge 2 ] || die "usage: build_ramdisk.sh OUTDIR INIT [--file SRC=DEST]... [--module NAME]... [--optional-module NAME]..."
out=$1
init=$2
shift 2
files=() modules=() optional=() check=0
while [ $# -gt 0 ]; do
  case $1 in
    --check) check=1; shift ;;
    --file) files+=("$2"); shift 2 ;;
    --module) modules+=("$2"); shift 2 ;;
    --optional-module) optional+=("$2"); shift 2 ;;
    *) die "unknown argument: $1" ;;
  esac
done
[ -f "$init" ] || die "no init script $init"
for spec in "${files[@]}"; do
  [ -f "${spec%%=*}" ] || die "no file ${spec%%=*}"
  [[ ${spec#*=} =~ ^/[A-Za-z0-9._/-]+$ ]] || die "not a path inside the ramdisk: ${spec#*=}"
done
for name in "${modules[@]}" "${optional[@]}"; do
  [[ $name =~ ^[a-z0-9_-]+$ ]] || die "not a module name: $name"
done

# FIELD of PACKAGE in the records on stdin.
field() {
  awk -v pkg="$1" -v key="$2:" '
    $1 == "Package:" { cur = $2 }
    cur == pkg && $1 == key { sub(/^[^:]*: /, ""); print; exit }'
}

# A host whose package lists were never fetched (or were cleaned) knows no candidate: one update, then give up.
records=$(apt-cache show --no-all-versions linux-image-amd64 busybox-static 2>/dev/null) ||
  { apt-get update -qq && records=$(apt-cache show --no-all-versions linux-image-amd64 busybox-static); } ||
  die "apt knows no linux-image-amd64 or busybox-static"
depends=$(field linux-image-amd64 Depends <<<"$records")
kernel_pkg=$(grep -oE 'linux-image-[0-9][^ ,|]*-amd64' <<<"$depends" | head -n 1 || true)
[ -n "$kernel_pkg" ] || die "no kernel package in linux-image-amd64's Depends: $depends"
kernel_ver=$(sed -n "s/.*$kernel_pkg (= \([^)]*\)).*/\1/p" <<<"$depends")
busybox_ver=$(field busybox-static Version <<<"$records")

inputs=$(
  printf 'kernel=%s %s\nbusybox=%s\nscript=%s\n' "$kernel_pkg" "$kernel_ver" "$busybox_ver" \
    "$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)"
  printf 'init=%s\n' "$(sha256sum "$init" | cut -d' ' -f1)"
  for spec in "${files[@]}"; do printf 'file=%s %s\n' "${spec#*=}" "$(sha256sum "${spec%%=*}" | cut -d' ' -f1)"; done
  printf 'modules=%s\noptional=%s\n' "${modules[*]}" "${optional[*]}"
)
stamp=$(sha256sum <<<"$inputs" | cut -d' ' -f1)
if [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.img" ] && [ "$(sed -n 's/^stamp=//p' "$out/manifest" 2>/dev/null)" = "$stamp" ]; then
  echo unchanged
  exit 0
fi
if [ "$check" = 1 ]; then
  echo build
  exit 0
fi

work=$(mktemp -d "${TMPDIR:-/var/tmp}/nimbus-ramdisk.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debs"
# apt downloads as _apt when run by root; it needs to reach and write here.
if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then
  chmod 0755 "$work"
  chown _apt "$work/debs"
fi
log "downloading $kernel_pkg $kernel_ver and busybox-static $busybox_ver"
(cd "$work/debs" && apt-get download -qq "$kernel_pkg=$kernel_ver" "busybox-static=$busybox_ver")
dpkg-deb -x "$work/debs/${kernel_pkg}_"*.deb "$work/kernel"
dpkg-deb -x "$work/debs"/busybox-static_*.deb "$work/busybox"
busybox=$work/busybox/bin/busybox
trees=("$work"/kernel/lib/modules/*)
if [ ${#trees[@]} -ne 1 ] || [ ! -d "${trees[0]}" ]; then die "expected one module tree in $kernel_pkg"; fi
release=$(basename "${trees[0]}")
moddir=${trees[0]}
[ -f "$work/kernel/boot/vmlinuz-$release" ] || die "$kernel_pkg holds no vmlinuz-$release"

# Debian ships no modules.dep (its postinst makes it): busybox's depmod indexes the package's tree.
"$busybox" depmod -b "$work/kernel" "$release"
declare -A path_of=() deps_of=() visited=()
while IFS= read -r line; do
  path=${line%%:*}
  name=${path##*/}
  name=${name%%.ko*}
  name=${name//-/_}
  path_of[$name]=$path
  deps_of[$path]=${line#*:}
done <"$moddir/modules.dep"
order=() left_out=()
visit() {
  local p=$1 d
  [ -n "${visited[$p]:-}" ] && return
  visited[$p]=1
  for d in ${deps_of[$p]}; do visit "$d"; done
  order+=("$p")
}
for name in "${modules[@]}"; do
  [ -n "${path_of[${name//-/_}]:-}" ] || die "module $name is not in $kernel_pkg"
  visit "${path_of[${name//-/_}]}"
done
for name in "${optional[@]}"; do
  if [ -n "${path_of[${name//-/_}]:-}" ]; then visit "${path_of[${name//-/_}]}"; else left_out+=("$name"); fi
done

root=$work/root
mkdir -p "$root"/{bin,dev,etc,lib/modules,proc,run,sys,tmp}
cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
install -m 0755 "$init" "$root/init"
for spec in "${files[@]}"; do
  install -D -m 0755 "${spec%%=*}" "$root${spec#*=}"
done
: >"$root/lib/modules/load-order"
for p in "${order[@]}"; do
  name=${p##*/}
  name=${name%%.ko*}
  case $p in
    *.ko) cp "$moddir/$p" "$root/lib/modules/$name.ko" ;;
    *.ko.xz) xz -dc "$moddir/$p" >"$root/lib/modules/$name.ko" ;;
    *.ko.zst) zstd -qdc "$moddir/$p" >"$root/lib/modules/$name.ko" ;;
    *) die "cannot unpack module $p" ;;
  esac
  echo "$name" >>"$root/lib/modules/load-order"
done
mkdir -p "$work/out"
find "$root" -exec touch -h -d @0 {} +
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
  "$busybox" cpio -o -H newc -R 0:0 --ignore-devno --renumber-inodes 2>/dev/null) | gzip -9n >"$work/out/initrd.img"
cp "$work/kernel/boot/vmlinuz-$release" "$work/out/vmlinuz"
{
  printf 'kernel_release=%s\n' "$release"
  printf '%s\n' "$inputs"
  printf 'loaded=%s\n' "$(tr '\n' ' ' <"$root/lib/modules/load-order" | sed 's/ $//')"
  printf 'left_out=%s\n' "${left_out[*]}"
  printf 'stamp=%s\n' "$stamp"
} >"$work/out/manifest"

mkdir -p "$out"
# The manifest (and its stamp) goes last: an interrupted build is never taken as up to date.
rm -f "$out/manifest"
chmod 0644 "$work/out"/*
mv -f "$work/out/vmlinuz" "$work/out/initrd.img" "$out/"
mv -f "$work/out/manifest" "$out/manifest"
echo built
