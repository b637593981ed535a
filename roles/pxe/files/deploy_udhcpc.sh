#!/bin/sh
# The deploy ramdisk's udhcpc script: the leased address on the interface, and the router if one is given (the
# provisioning network usually has none). udhcpc passes everything in its environment.
interface=${interface:?udhcpc names the interface}
case $1 in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound | renew)
    ip -4 addr flush dev "$interface"
    ip -4 addr add "${ip:?udhcpc gives the address}/${mask:-24}" dev "$interface"
    if [ -n "${router:-}" ]; then
      ip -4 route replace default via "${router%% *}" dev "$interface"
    fi
    ;;
esac
exit 0
