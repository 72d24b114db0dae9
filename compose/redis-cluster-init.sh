#!/bin/sh
# The one-shot init service of compose.yaml's cluster profile: creates the Redis Cluster with
# `redis-cli --cluster create` when it is not created yet, and does nothing on every later start
# (a node that already knows another node or serves a slot means the cluster exists: creating it again
# would fail, or worse, reset roles a failover changed). The password comes from the secret file, to
# redis-cli through REDISCLI_AUTH (never on a command line).
# Env: SKV_CLUSTER_NODES (`host:port,...` of every node: redis-cli makes the first half the masters,
# the rest their replicas), SKV_CLUSTER_REPLICAS (1), SKV_SECRETS (/run/secrets).
set -eu
secrets=${SKV_SECRETS:-/run/secrets}
REDISCLI_AUTH=$(cat "$secrets/redis_password")
export REDISCLI_AUTH
addrs=""
for node in $(echo "$SKV_CLUSTER_NODES" | tr ',' ' '); do
  host=${node%:*}
  port=${node##*:}
  # CLUSTER MEET takes an IP address, not a service name.
  ip=$(getent ahostsv4 "$host" | awk 'NR == 1 { print $1 }')
  if [ -z "$ip" ]; then echo "redis-cluster-init: cannot resolve $host" >&2; exit 1; fi
  info=$(redis-cli -h "$ip" -p "$port" cluster info | tr -d '\r')
  known=$(echo "$info" | sed -n 's/^cluster_known_nodes://p')
  assigned=$(echo "$info" | sed -n 's/^cluster_slots_assigned://p')
  if [ -z "$known" ]; then echo "redis-cluster-init: $node did not answer CLUSTER INFO" >&2; exit 1; fi
  if [ "$known" != 1 ] || [ "$assigned" != 0 ]; then
    echo "redis-cluster-init: the cluster already exists ($node knows $known nodes, $assigned slots assigned): nothing to do"
    exit 0
  fi
  addrs="$addrs $ip:$port"
done
# shellcheck disable=SC2086 # one argument per node
exec redis-cli --cluster create $addrs --cluster-replicas "${SKV_CLUSTER_REPLICAS:-1}" --cluster-yes
