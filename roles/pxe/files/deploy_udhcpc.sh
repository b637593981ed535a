#!/bin/sh
# The deploy ramdisk's udhcpc script: the leased address on the interface, when the lease comes from the
# provisioning host itself (NIMBUS_DHCP_SERVER, the callback service's address); a lease from any other DHCP
# server is left unused and said in /tmp/dhcp-refused (/init asks again). No router is ever set: the callback
# service is on the provisioning network, and a router from a stranger would route the token through it.
# udhcpc passes everything in its environment.
interface=${interface:?udhcpc names the interface}
case $1 in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound | renew)
    ip -4 addr flush dev "$interface"
    if [ "${serverid:-}" != "${NIMBUS_DHCP_SERVER:?/init names the provisioning host}" ]; then
      echo "${serverid:-unknown}" >"${NIMBUS_DHCP_REFUSED:-/tmp/dhcp-refused}"
      exit 0
    fi
    ip -4 addr add "${ip:?udhcpc gives the address}/${mask:-24}" dev "$interface"
    ;;
esac
exit 0
