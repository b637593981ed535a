#!/bin/sh
# The deploy ramdisk's /init (busybox): what a node runs while nimbus.cloud.baremetal_node deploys or cleans it.
#
# It loads the NIC and disk drivers, takes a DHCP lease on the first interface that gets one, asks the
# provisioning host's callback service for its job (nimbus.callback= on the kernel command line), then either
# writes the image to the disk and reads it back for its sha256 (deploy), or zeroes the first and last MiB of
# every disk (clean), reports the result and powers the machine off (or, when the job names a next step, asks
# for that job and does it too: fast track). The job's answer is read line by line as data; each
# value is checked against what it may hold and nothing of it is evaluated. The token goes back in the body of
# the report, from a file: never on a command line.
set -u
PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH
# The ramdisk holds busybox alone: its applets become the commands below.
/bin/busybox --install -s /bin

say() { echo "nimbus-deploy: $*" >/dev/console; }

# The uptime at each step, reported with the result (where a deploy's time goes).
marks=
mark() { marks="$marks${marks:+,}$1:$(cut -d' ' -f1 /proc/uptime)"; }

# The last words before the machine goes off: the module sees the missing report as a failure.
halt() {
  say "$*"
  sync
  poweroff -f
  while :; do sleep 60; done
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /tmp /run

callback=
read -r cmdline </proc/cmdline
# shellcheck disable=SC2086 # the command line's words, split on purpose (no globbing: set -f)
set -f
for word in $cmdline; do
  case $word in
    nimbus.callback=*) callback=${word#nimbus.callback=} ;;
  esac
done
set +f
case $callback in
  http://[0-9]*) ;;
  *) halt "no nimbus.callback=http://<address>:<port> on the kernel command line" ;;
esac
if printf '%s' "$callback" | grep -q '[^0-9a-z.:/]'; then
  halt "nimbus.callback holds characters an address and port do not"
fi
# The provisioning host: the one DHCP server whose lease is taken (deploy_udhcpc.sh).
NIMBUS_DHCP_SERVER=${callback#http://}
NIMBUS_DHCP_SERVER=${NIMBUS_DHCP_SERVER%%[:/]*}
export NIMBUS_DHCP_SERVER

# The NIC and disk drivers, dependencies first, by name (/lib/modules/<name>.ko; the ramdisk's build works the
# order out); a driver for hardware this machine lacks loads and stays idle, one that fails is said.
if [ -f /lib/modules/load-order ]; then
  while read -r module; do
    insmod "/lib/modules/$module.ko" 2>/dev/null || say "cannot load $module"
  done </lib/modules/load-order
fi

# Every interface's MAC (the callback service finds the node's job by them and by its address).
macs=
for dev in /sys/class/net/*; do
  name=${dev##*/}
  [ "$name" = lo ] && continue
  ip link set "$name" up
  macs="$macs${macs:+,}$(cat "$dev/address")"
done
[ -n "$macs" ] || halt "no network interface"

leased=
tries=0
while [ -z "$leased" ] && [ "$tries" -lt 5 ]; do
  for dev in /sys/class/net/*; do
    name=${dev##*/}
    [ "$name" = lo ] && continue
    rm -f /tmp/dhcp-refused
    if udhcpc -n -q -t 5 -T 2 -i "$name" -s /etc/udhcpc.sh >/dev/null 2>&1; then
      if [ -e /tmp/dhcp-refused ]; then
        say "a lease on $name from $(cat /tmp/dhcp-refused), not $NIMBUS_DHCP_SERVER: not taken"
        continue
      fi
      leased=$name
      break
    fi
  done
  tries=$((tries + 1))
done
[ -n "$leased" ] || halt "no DHCP lease on any interface"
say "leased an address on $leased"
mark lease

# The job: key=value lines, into the variables below; the values checked before any is used. Asked for up to
# $1 times, $2 s apart: a busy service closes a connection beyond its limit, and with fast track the next job is
# written only once the last report is in.
ask() {
  tries=0
  until wget -q -O /tmp/job --post-data "macs=$macs" "$callback/v1/lookup"; do
    tries=$((tries + 1))
    [ "$tries" -lt "$1" ] || return 1
    sleep "$2"
  done
  node='' mode='' image_url='' image_size='' image_sha256='' disk='' next_step='' token=''
  while IFS='=' read -r key value; do
    case $key in
      node) node=$value ;;
      mode) mode=$value ;;
      image_url) image_url=$value ;;
      image_size) image_size=$value ;;
      image_sha256) image_sha256=$value ;;
      disk) disk=$value ;;
      next_step) next_step=$value ;;
      token) token=$value ;;
    esac
  done </tmp/job
  rm -f /tmp/job
  mark job
  valid '[a-z0-9-]{1,63}' "$node" || halt "the job names no node"
  valid '[A-Za-z0-9_-]{16,128}' "$token" || halt "the job holds no token"
  # (An empty value is no line at all to grep.)
  [ -z "$next_step" ] || valid 'deploy' "$next_step" || fail "the job's next step is not one"
}
valid() { printf '%s' "$2" | grep -qxE "$1"; }

report() {
  # status message [sha256]
  {
    mark "done"
    printf 'token=%s&status=%s&uptime=%s&marks=%s&message=' "$token" "$1" "$(cut -d' ' -f1 /proc/uptime)" "$marks"
    # Form-encoded: letters, digits and a few signs as they are, a space as +, a slash as %2F, the rest as _.
    printf '%s' "$2" | sed 's|[^A-Za-z0-9 ./:_-]|_|g; s| |+|g; s|/|%2F|g'
    [ -n "${3:-}" ] && printf '&sha256=%s' "$3"
  } >/tmp/report
  wget -q -O /dev/null --post-file /tmp/report "$callback/v1/callback" || say "the report did not reach $callback"
  rm -f /tmp/report
}

# Once a token is held, what stops the ramdisk is reported: the module need not wait for its timeout.
fail() {
  report failed "$1"
  halt "$1"
}

# The job's work: a deploy or a cleaning, reported.
work() {
  # The disk: the job's (a /dev path of a whole disk), or the first whole disk the kernel found.
  target_disk=$disk
  if [ -z "$target_disk" ]; then
    for dev in /sys/block/vd* /sys/block/sd* /sys/block/nvme*n*; do
      [ -e "$dev" ] || continue
      target_disk=/dev/${dev##*/}
      break
    done
  fi
  if ! valid '/dev/[a-z0-9]{1,16}' "$target_disk" || [ ! -b "$target_disk" ]; then
    fail "no disk to write (${target_disk:-none found})"
  fi
  sectors=$(cat "/sys/block/${target_disk#/dev/}/size")
  [ "$sectors" -gt 4096 ] || fail "$target_disk is smaller than 2 MiB"

  case $mode in
    deploy)
      valid 'http://[0-9A-Za-z.:/_-]{1,400}' "$image_url" || fail "the job's image URL is not one"
      valid '[0-9]{1,15}' "$image_size" || fail "the job's image size is not a number"
      valid '[0-9a-f]{64}' "$image_sha256" || fail "the job's image sha256 is not one"
      if [ "$image_size" -gt $((sectors * 512)) ]; then
        fail "the image ($image_size bytes) is larger than $target_disk ($((sectors * 512)) bytes)"
      fi
      say "writing $image_url to $target_disk"
      if ! wget -q -O - "$image_url" | dd of="$target_disk" bs=1M conv=fsync 2>/dev/null; then
        fail "the image could not be read from $image_url or written to $target_disk"
      fi
      sync
      echo 3 >/proc/sys/vm/drop_caches
      written=$(head -c "$image_size" "$target_disk" | sha256sum | cut -d' ' -f1)
      if [ "$written" != "$image_sha256" ]; then
        report failed "$target_disk holds $written after the write, the image is $image_sha256" "$written"
        halt "checksum mismatch"
      fi
      report ok "wrote $image_size bytes to $target_disk" "$written"
      ;;
    clean)
      # Every writable whole disk's first MiB (partition tables, boot code) and last (the GPT's backup header),
      # as Ironic's metadata erase does: whatever disk the last deploy wrote, nothing of it is found by the next.
      wiped=
      for dev in /sys/block/vd* /sys/block/sd* /sys/block/nvme*n*; do
        [ -e "$dev" ] || continue
        [ "$(cat "$dev/ro")" = 0 ] || continue
        target=/dev/${dev##*/}
        size=$(cat "$dev/size")
        [ "$size" -gt 4096 ] || continue
        if ! dd if=/dev/zero of="$target" bs=1M count=1 conv=fsync 2>/dev/null ||
          ! dd if=/dev/zero of="$target" bs=512 seek=$((size - 2048)) count=2048 conv=fsync 2>/dev/null; then
          fail "$target could not be wiped"
        fi
        wiped="$wiped${wiped:+ }$target"
      done
      [ -n "$wiped" ] || fail "no disk to wipe"
      report ok "wiped the first and last MiB of $wiped"
      ;;
    *)
      fail "the job's mode is neither deploy nor clean"
      ;;
  esac
}

ask 5 2 || halt "the callback service gave no job to $macs"
work
# Fast track: a job that names a next step leaves the ramdisk up to ask for it (the module writes it once it has
# read the report), as Ironic's agent stays up between cleaning and deploy. None within a minute: off.
while [ -n "$next_step" ]; do
  say "$mode of $node done; asking for the $next_step"
  marks=
  mark wait
  ask 60 1 || halt "no $next_step job came within a minute"
  work
done
halt "done: $mode of $node"
