#!/usr/bin/env bash
# A real multi-node Ray cluster on one machine, for development and the cluster tests.
#
#   infra/local-cluster.sh up [N]      head + N worker nodes (default 2) and an S3 server; prints exports
#   infra/local-cluster.sh down        stops everything `up` started, removes the namespaces
#   infra/local-cluster.sh add-node    one more worker node (after a kill, or to grow)
#   infra/local-cluster.sh kill-node I SIGKILL of every process of worker node I (a lost machine)
#   infra/local-cluster.sh env         the exports again
#
# As root (namespace mode) every node is a separate "host": its own network namespace with its own IP
# on a bridge, and its own mount namespace with a private /tmp, /dev/shm and working folder, so no node
# sees another's local files or the driver's. The driver's (root) namespace gets the bridge's first
# address; the S3 server (moto) listens there, so every node reaches it as it would reach object storage.
# Nodes start with the same `ray start --head` / `ray start --address HEAD:6379` as on real machines.
# Without root (loopback mode) the nodes are processes on 127.0.0.1 with distinct ports and their own
# temp and working folders: same commands, weaker isolation.
#
# Settings (environment): CLUSTER_NAME (default clipline; prefixes namespaces, at most 6 characters),
# CLUSTER_SUBNET (first three octets, default 10.77.0), CLUSTER_DIR (driver-side state and logs,
# default /tmp/$CLUSTER_NAME-cluster), CLUSTER_S3_PORT (default 9000), NODE_CPUS (default 1), HEAD_CPUS
# (default NODE_CPUS; 0 keeps work off the head, as on a cluster whose head only coordinates),
# NODE_OBJECT_STORE_BYTES (default 200 MB), VENV (default the checkout's .venv).
set -euo pipefail

name="${CLUSTER_NAME:-clipline}"
subnet="${CLUSTER_SUBNET:-10.77.0}"
state="${CLUSTER_DIR:-/tmp/$name-cluster}"
s3_port="${CLUSTER_S3_PORT:-9000}"
node_cpus="${NODE_CPUS:-1}"
head_cpus="${HEAD_CPUS:-$node_cpus}"
object_store="${NODE_OBJECT_STORE_BYTES:-200000000}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${VENV:-$repo/.venv}"
ray_bin="$venv/bin/ray"
python="$venv/bin/python"
bridge="${name}br"
driver_ip="$subnet.1"
bucket="clipline"
# A node's mount namespace and private folders (infra/node-mounts.sh): every node starts under it, and `up` tries
# it once first. Followed by the command to run there.
node_mounts=(unshare --mount --propagation private bash "$repo/infra/node-mounts.sh" "$repo" "$venv" --)
# The cluster runs without Ray's token authentication, on a private bridge. Say so explicitly: a process that
# started a local Ray (`ray.init()` of Ray 2.60 turns token mode on by default) exports RAY_AUTH_MODE=token to
# its children, and then `ray start` here fails for want of a token in the node's own HOME.
export RAY_AUTH_MODE=disabled

log() { echo "local-cluster: $*" >&2; }
die() { log "$*"; exit 1; }

mode() { if [ "$(id -u)" = 0 ] && command -v ip >/dev/null && command -v unshare >/dev/null; then echo netns; else echo loopback; fi; }
ns_of() { echo "${name}-$1"; }             # node name (head, w1, w2, ...) -> namespace
ip_of() { case "$1" in driver) echo "$driver_ip";; head) echo "$subnet.10";; w*) echo "$subnet.$((10 + ${1#w}))";; esac; }
host_of() { if [ "$(cat "$state/mode")" = netns ]; then ip_of "$1"; else echo 127.0.0.1; fi; }
head_port() { if [ "$(cat "$state/mode")" = netns ]; then echo 6379; else cat "$state/head-port"; fi; }
s3_host() { if [ "$(cat "$state/mode")" = netns ]; then echo "$driver_ip"; else echo 127.0.0.1; fi; }
free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The environment every node process gets: S3 through the bridge, private HOME, no inherited cluster.
node_env() {  # home, temp dir, node name
  echo "CLIPLINE_CLUSTER_NODE=$name/$3 HOME=$1 TMPDIR=$2 AWS_ENDPOINT_URL=http://$(s3_host):$s3_port AWS_ACCESS_KEY_ID=dev" \
       "AWS_SECRET_ACCESS_KEY=dev AWS_DEFAULT_REGION=us-east-1 RAY_DEDUP_LOGS=0 RAY_USAGE_STATS_ENABLED=0"
}

ray_start_args() {  # node -> the `ray start` arguments a real machine would use
  local node="$1" host; host="$(host_of "$node")"
  local cpus="$node_cpus"
  [ "$node" = head ] && cpus="$head_cpus"
  [ "$node" = driver ] && cpus=0  # the driver's machine joins without CPUs: no stage work lands there
  local common=(--node-ip-address "$host" --num-cpus "$cpus" --object-store-memory "$object_store"
                --disable-usage-stats)
  if [ "$node" = head ]; then
    echo --head --port "$(head_port)" --include-dashboard false "${common[@]}"
  else
    echo --address "$(host_of head):$(head_port)" "${common[@]}"
  fi
}

# ---- namespace mode -------------------------------------------------------------------------------

net_up() {
  ip link show "$bridge" >/dev/null 2>&1 && return
  ip link add "$bridge" type bridge
  ip addr add "$driver_ip/24" dev "$bridge"
  ip link set "$bridge" up
}

start_netns_node() {
  local node="$1" ns; ns="$(ns_of "$node")"
  ip netns add "$ns"
  ip link add "v-$ns" type veth peer name "p-$ns"
  ip link set "p-$ns" netns "$ns"
  ip link set "v-$ns" master "$bridge" up
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" ip link set "p-$ns" name eth0
  ip netns exec "$ns" ip addr add "$(ip_of "$node")/24" dev eth0
  ip netns exec "$ns" ip link set eth0 up
  # GLOO_SOCKET_IFNAME: torch.distributed (Ray Train) would otherwise bind the address the host name
  # resolves to, loopback here, and workers on other nodes could not reach it.
  # Own mount namespace: fresh tmpfs on /tmp and /dev/shm (the checkout and venv stay visible, also when they lie
  # under /tmp: infra/node-mounts.sh); the working folder lives in that /tmp.
  # `ray start` daemonizes its processes; they keep the namespaces after this shell exits.
  ip netns exec "$ns" "${node_mounts[@]}" sh -c "
      mkdir -p /tmp/work && cd /tmp/work &&
      exec env -u RAY_ADDRESS -u CLIPLINE_HOME $(node_env /tmp/work /tmp "$node") GLOO_SOCKET_IFNAME=eth0 '$ray_bin' start $(ray_start_args "$node")
  " >"$state/logs/$node.log" 2>&1 || { log "$node failed to start:"; tail -20 "$state/logs/$node.log" >&2; return 1; }
}

kill_netns_node() {  # SIGKILL every process in the node's network namespace: the machine is gone
  ip netns pids "$(ns_of "$1")" 2>/dev/null | xargs -r kill -9
}

remove_netns_node() {
  local ns; ns="$(ns_of "$1")"
  kill_netns_node "$1"
  ip link del "v-$ns" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
}

# ---- nodes in the driver's own network (loopback mode; the driver's node in namespace mode) --------

# A node here shares the network with other Ray instances on this machine: every port is picked free.
start_local_node() {
  local node="$1" dir="$state/nodes/$1" args
  mkdir -p "$dir/work" "$dir/tmp"
  # Ray's session folder stays under /tmp/ray (not under TMPDIR): its socket paths must stay within the
  # 107 characters a Unix socket name may have, and a driver finds its node's sockets there.
  args=($(ray_start_args "$node") --temp-dir /tmp/ray
        --node-manager-port "$(free_port)" --object-manager-port "$(free_port)"
        --dashboard-agent-listen-port "$(free_port)" --dashboard-agent-grpc-port "$(free_port)"
        --runtime-env-agent-port "$(free_port)" --metrics-export-port "$(free_port)")
  (cd "$dir/work" && exec env -u RAY_ADDRESS -u CLIPLINE_HOME $(node_env "$dir/work" "$dir/tmp" "$node") \
      "$ray_bin" start "${args[@]}") >"$state/logs/$node.log" 2>&1 ||
    { log "$node failed to start:"; tail -20 "$state/logs/$node.log" >&2; return 1; }
  forget_address
}

# `ray start` leaves the cluster's address in /tmp/ray/ray_current_cluster, and a bare `ray.init()` on
# this machine would join that cluster instead of starting its own: remove it (only when it is ours).
forget_address() {
  local file=/tmp/ray/ray_current_cluster
  [ "$(cat "$file" 2>/dev/null)" = "$(host_of head):$(head_port)" ] && rm -f "$file"
  return 0
}

pids_of_node() {  # every process started for a node carries its name in its environment
  local p
  for p in /proc/[0-9]*; do
    grep -qzx "CLIPLINE_CLUSTER_NODE=$name/$1" "$p/environ" 2>/dev/null && echo "${p#/proc/}"
  done
  return 0
}

kill_local_node() { pids_of_node "$1" | xargs -r kill -9; }

# ---- common ---------------------------------------------------------------------------------------

in_netns() { [ "$(cat "$state/mode")" = netns ] && [ "$1" != driver ]; }

start_node() {  # a second try: on a loaded machine a raylet can miss Ray's fixed 30 s to register
  echo "$1" >>"$state/nodes.list"
  start_node_once "$1" && return
  log "$1: trying once more"
  if in_netns "$1"; then remove_netns_node "$1"; else kill_local_node "$1"; fi
  start_node_once "$1"
}

start_node_once() { if in_netns "$1"; then start_netns_node "$1"; else start_local_node "$1"; fi; }

kill_node() { if in_netns "$1"; then kill_netns_node "$1"; else kill_local_node "$1"; fi; }

start_s3() {
  "$python" -m moto.server -H "$(s3_host)" -p "$s3_port" >"$state/logs/s3.log" 2>&1 &
  echo $! >"$state/s3.pid"
  for _ in $(seq 150); do
    (exec 3<>"/dev/tcp/$(s3_host)/$s3_port") 2>/dev/null && break
    kill -0 "$(cat "$state/s3.pid")" 2>/dev/null || die "the S3 server exited (see $state/logs/s3.log)"
    sleep 0.2
  done
  AWS_ENDPOINT_URL="http://$(s3_host):$s3_port" AWS_ACCESS_KEY_ID=dev AWS_SECRET_ACCESS_KEY=dev \
    "$python" -c "import s3fs; s3fs.S3FileSystem().mkdir('$bucket')" ||
    die "the S3 server did not take a bucket (see $state/logs/s3.log)"
}

print_env() {
  local host; host="$(host_of head)"
  local network="$subnet.0/24"
  [ "$(cat "$state/mode")" = loopback ] && network="127.0.0.0/8"
  cat <<TXT
export RAY_ADDRESS=$host:$(head_port)
export AWS_ENDPOINT_URL=http://$(s3_host):$s3_port
export AWS_ACCESS_KEY_ID=dev
export AWS_SECRET_ACCESS_KEY=dev
export AWS_DEFAULT_REGION=us-east-1
export CLIPLINE_HOME=s3://$bucket
export CLUSTER_ALLOWED_NETWORKS=$network  # pass as --allowed-networks (the crawl may fetch from the bridge)
export CLIPLINE_RAY_NODE_IP=$(host_of driver)  # the driver's node: every node's raylet runs on this one machine
export RAY_AUTH_MODE=disabled  # the cluster's mode; a shell that started a local Ray may have token
TXT
}

wait_nodes() {  # connect as the driver will, until the cluster has `want` alive nodes
  env -u RAY_ADDRESS "$python" - "$(host_of head):$(head_port)" "$1" <<'PY' || die "the cluster did not come up (logs in $state/logs)"
import sys
import time

import ray

ray.init(address=sys.argv[1], include_dashboard=False, configure_logging=False, log_to_driver=False)
deadline = time.time() + 120
while (alive := sum(n["Alive"] for n in ray.nodes())) < int(sys.argv[2]) and time.time() < deadline:
    time.sleep(1)
sys.exit(f"only {alive} of {sys.argv[2]} nodes joined" if alive < int(sys.argv[2]) else 0)
PY
}

cmd_up() {
  local workers="${1:-2}"
  [ -e "$state/mode" ] && die "a cluster is already up (state in $state); run '$0 down' first"
  # A node's mounts, tried once in a throwaway mount namespace: a checkout or venv that no node could see stops
  # `up` here, before any namespace, bridge or S3 server.
  if [ "$(mode)" = netns ]; then
    "${node_mounts[@]}" true || exit 1
  fi
  mkdir -p "$state/logs"
  mode >"$state/mode"
  # Any failure from here on (an error, or `die` in a check) takes down what was started.
  trap 'status=$?; [ "$status" = 0 ] || { log "up failed; cleaning up"; cmd_down; }' EXIT
  log "mode: $(cat "$state/mode") ($([ "$(cat "$state/mode")" = netns ] && echo "a network and mount namespace per node on $bridge $subnet.0/24" || echo "not root: nodes share 127.0.0.1, each with its own ports and folders"))"
  if [ "$(cat "$state/mode")" = netns ]; then net_up; else free_port >"$state/head-port"; fi
  start_s3
  start_node head
  # Workers (and, in namespace mode, the driver's own CPU-less node: a Ray driver must run on a node) in
  # parallel: `ray start` takes 20-30 s here.
  local nodes=() pids=() i node
  for i in $(seq "$workers"); do nodes+=("w$i"); done
  [ "$(cat "$state/mode")" = netns ] && nodes+=(driver)
  for node in "${nodes[@]}"; do start_node "$node" & pids+=($!); done
  for i in "${pids[@]}"; do wait "$i" || die "a node failed to start (logs in $state/logs)"; done
  echo "$workers" >"$state/num-workers"
  wait_nodes $((${#nodes[@]} + 1))
  log "up: head $(host_of head) and $workers worker nodes; S3 at http://$(s3_host):$s3_port/$bucket"
  print_env
}

cmd_add_node() {
  [ -e "$state/mode" ] || die "no cluster is up; run '$0 up' first"
  local i; i=$(( $(cat "$state/num-workers") + 1 ))
  start_node "w$i"
  echo "$i" >"$state/num-workers"
  log "added worker node w$i ($(host_of "w$i"))"
}

cmd_kill_node() {
  [ -e "$state/mode" ] || die "no cluster is up"
  local node="w${1:?usage: $0 kill-node I}"
  [ "${1}" = head ] && node=head
  kill_node "$node"
  log "killed every process of node $node"
}

cmd_down() {
  [ -e "$state/mode" ] || { log "no cluster state in $state"; return 0; }
  local node
  while read -r node; do
    if in_netns "$node"; then remove_netns_node "$node"; else kill_local_node "$node"; fi
  done < <(cat "$state/nodes.list" 2>/dev/null)
  [ "$(cat "$state/mode")" = netns ] && { ip link del "$bridge" 2>/dev/null || true; }
  [ -e "$state/s3.pid" ] && kill "$(cat "$state/s3.pid")" 2>/dev/null || true
  find "$state" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} +  # the logs stay for a post-mortem
  log "down (logs kept in $state/logs)"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  add-node) cmd_add_node ;;
  kill-node) shift; cmd_kill_node "$@" ;;
  env) print_env ;;
  *) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
