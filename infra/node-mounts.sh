#!/usr/bin/env bash
# A cluster node's private folders, for infra/local-cluster.sh (namespace mode). Run it in a fresh mount
# namespace (`unshare --mount --propagation private`):
#
#   infra/node-mounts.sh [KEEP...] -- COMMAND [ARG...]
#
# mounts a fresh tmpfs on /tmp and on /dev/shm, then execs COMMAND. No node sees the driver's /tmp or another
# node's. The software every machine has installed stays visible, though: each KEEP folder (the checkout, its
# venv) that lies under /tmp, as in a clone under /tmp, is bound to a staging point (a tmpfs on /mnt, this
# namespace's own), the tmpfs goes over /tmp, and the folder moves back to its path. Nothing else of the
# driver's /tmp shows, and /mnt is as before. A KEEP folder under /dev/shm is refused.
set -euo pipefail

keep=()
while [ "$#" -gt 0 ] && [ "$1" != -- ]; do
  path="$(realpath -m "$1")"
  shift
  case "$path/" in
    /dev/shm/*) echo "node-mounts: $path lies under /dev/shm, which each node replaces with its own: put the checkout (or VENV) elsewhere" >&2
               exit 1 ;;
    /tmp/*) ;;
    *) continue ;;  # outside /tmp: every node sees it as it is
  esac
  keep+=("$path")
done
[ "${1:-}" = -- ] && [ "$#" -gt 1 ] || { echo "usage: $0 [KEEP...] -- COMMAND [ARG...]" >&2; exit 2; }
shift

if [ "${#keep[@]}" -gt 0 ]; then
  mount -t tmpfs -o size=1m tmpfs /mnt
  for i in "${!keep[@]}"; do
    mkdir "/mnt/$i"
    mount --bind "${keep[$i]}" "/mnt/$i"
  done
fi
mount -t tmpfs -o size=4g tmpfs /tmp
for i in "${!keep[@]}"; do
  mkdir -p "${keep[$i]}"
  mount --move "/mnt/$i" "${keep[$i]}"
done
[ "${#keep[@]}" = 0 ] || umount /mnt
mount -t tmpfs -o size=1g tmpfs /dev/shm
exec "$@"
