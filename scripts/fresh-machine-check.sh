#!/usr/bin/env bash
# Prove the quick start on a stock Debian machine (not part of CI; needs root, debootstrap, nft):
# build a fresh Debian root with debootstrap, copy this repository in and run the README's two
# commands inside it: `make demo DURATION=…` then `make test`.
#
#   sudo scripts/fresh-machine-check.sh bookworm            # or trixie
#   DEMO_DURATION=60 PYTEST_ARGS="-m 'not slow'" KEEP_ROOT=1 sudo scripts/fresh-machine-check.sh trixie
#
# The root runs in a network namespace of its own (a veth pair NATed to the host's default route),
# so its 127.0.0.1:5432 and :6379 are its own PostgreSQL and Redis, never the host's.
set -euo pipefail
suite=${1:?usage: fresh-machine-check.sh bookworm|trixie}
repo=$(cd "$(dirname "$0")/.." && pwd)
base=${FRESH_DIR:-/var/tmp/livermore-fresh}
root="$base/$suite"
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
demo_duration=${DEMO_DURATION:-60}
id=$(( $$ % 200 + 20 ))               # a /30 of its own, so two suites can run side by side
ns="livermore-fresh-$id"; veth_host="lfresh${id}h"; veth_root="lfresh${id}r"
net="10.213.$id"; table="livermore_fresh_$id"
forward_saved=/run/livermore-fresh.ip_forward
started=$(date +%s)

step() {  # step NAME COMMAND...: run it, print its outcome and duration
  local name=$1; shift; local t0; t0=$(date +%s)
  echo "== $name"
  if "$@"; then echo "== $name: ok ($(( $(date +%s) - t0 )) s)"
  else local rc=$?; echo "== $name: FAILED with exit $rc ($(( $(date +%s) - t0 )) s)"; return "$rc"; fi
}
in_ns() { ip netns exec "$ns" "$@"; }
in_root() {  # a clean login-like environment, as on a new machine
  in_ns chroot "$root" /usr/bin/env -i HOME=/root USER=root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    bash -c "$1"
}

cleanup() {
  set +e
  # Stop what the root started (PostgreSQL, Redis, leftovers), by pid.
  for proc in /proc/[0-9]*; do
    if [ "$(readlink "$proc/root" 2>/dev/null)" = "$root" ]; then kill "${proc#/proc/}" 2>/dev/null; fi
  done
  sleep 2
  for proc in /proc/[0-9]*; do
    if [ "$(readlink "$proc/root" 2>/dev/null)" = "$root" ]; then kill -9 "${proc#/proc/}" 2>/dev/null; fi
  done
  for mnt in dev/shm dev/pts dev sys proc; do
    mountpoint -q "$root/$mnt" && { umount "$root/$mnt" || umount -l "$root/$mnt"; }
  done
  nft delete table ip "$table" 2>/dev/null
  ip link del "$veth_host" 2>/dev/null
  ip netns del "$ns" 2>/dev/null
  if [ -e "$forward_saved" ] && ! ip netns list | grep -q '^livermore-fresh-'; then
    cat "$forward_saved" > /proc/sys/net/ipv4/ip_forward && rm -f "$forward_saved"
  fi
  if [ -z "${KEEP_ROOT:-}" ] && ! grep -q " $root/" /proc/mounts; then rm -rf "$root"; fi
  echo "fresh-machine-check $suite: finished in $(( $(date +%s) - started )) s"
}
trap cleanup EXIT

make_netns() {
  ip netns add "$ns"
  ip link add "$veth_host" type veth peer name "$veth_root"
  ip link set "$veth_root" netns "$ns"
  local uplink mtu
  uplink=$(ip route show default | awk '{print $5; exit}')
  mtu=$(cat "/sys/class/net/$uplink/mtu")
  ip link set "$veth_host" mtu "$mtu" up
  ip addr add "$net.1/30" dev "$veth_host"
  in_ns ip link set lo up
  in_ns ip link set "$veth_root" mtu "$mtu" up
  in_ns ip addr add "$net.2/30" dev "$veth_root"
  in_ns ip route add default via "$net.1"
  # The host's setting before the first of any overlapping runs; the last run out restores it.
  [ -e "$forward_saved" ] || cat /proc/sys/net/ipv4/ip_forward > "$forward_saved"
  echo 1 > /proc/sys/net/ipv4/ip_forward
  nft add table ip "$table"
  nft add chain ip "$table" postrouting '{ type nat hook postrouting priority 100; }'
  nft add rule ip "$table" postrouting ip saddr "$net.0/30" oifname "$uplink" masquerade
}

bootstrap() {
  rm -rf "$root"; mkdir -p "$root"
  in_ns debootstrap --include=make,ca-certificates "$suite" "$root" "$mirror" > "$base/$suite-debootstrap.log" 2>&1 \
    || { tail -n 30 "$base/$suite-debootstrap.log"; return 1; }
}

mount_root() {
  mount -t proc proc "$root/proc"
  mount --bind /sys "$root/sys"
  mount --bind /dev "$root/dev"
  mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$root/dev/pts"
  mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  # This host reaches the internet through an egress proxy with its own CA: trust it in the root too.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    in_root "update-ca-certificates >/dev/null"
  fi
}

copy_repo() {
  mkdir -p "$root/root/livermore"
  git -C "$repo" ls-files -z --cached --others --exclude-standard \
    | (cd "$repo" && tar --null -T - -cf - 2>/dev/null) | tar -xf - -C "$root/root/livermore"
}

mkdir -p "$base"
echo "fresh-machine-check $suite: root $root, namespace $ns, mirror $mirror"
step "network namespace" make_netns
step "debootstrap $suite" bootstrap
step "mounts" mount_root
in_root '. /etc/os-release; echo "$PRETTY_NAME; python3: $(command -v python3 || echo none); uv: $(command -v uv || echo none)"'
step "copy repository" copy_repo
status=0
step "make demo DURATION=$demo_duration" in_root "cd /root/livermore && make demo DURATION=$demo_duration" \
  || status=1
if ! step "make test${PYTEST_ARGS:+ PYTEST_ARGS=$PYTEST_ARGS}" \
  in_root "cd /root/livermore && make test ${PYTEST_ARGS:+PYTEST_ARGS=\"$PYTEST_ARGS\"}"; then
  status=1
  # Timing-bound tests can fail on a busy host; running the failures again alone tells those apart.
  step "make test PYTEST_ARGS='--lf --lfnf=none' (the failures again, alone)" \
    in_root "cd /root/livermore && make test PYTEST_ARGS='--lf --lfnf=none'" || true
fi
in_root 'python3 --version; /root/.local/share/livermore/uv-venv/bin/uv --version' || true
echo "fresh-machine-check $suite: $([ $status -eq 0 ] && echo PASSED || echo FAILED)"
exit $status
