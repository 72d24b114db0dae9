#!/bin/sh
# A Redis node of compose.yaml: writes its config file on the FIRST start only, from the secrets
# (never on a command line or in the environment), then runs redis-server on it. Later starts reuse
# the file as Redis and the sentinels left it (after a failover they CONFIG REWRITE `replicaof` into
# it), so a restarted node keeps the failover's outcome instead of going back to its first role.
# To change a password later: ACL SETUSER / CONFIG SET + CONFIG REWRITE, or remove the volume.
# Env: SKV_ANNOUNCE (this node's service name; not with SKV_CLUSTER), SKV_REPLICA_OF (`host port`
# of the first master; unset on the first master), SKV_DATA_RULES / SKV_CONTROL_RULES (src/security/acl.ts);
# SKV_DIR (/data), SKV_SECRETS (/run/secrets), SKV_PORT (6379); SKV_CLUSTER=yes for a Redis Cluster
# node (compose's cluster profile: no SKV_REPLICA_OF, compose/redis-cluster-init.sh assigns roles;
# Redis keeps the cluster's state in nodes.conf next to the config, on the same volume).
set -eu
dir=${SKV_DIR:-/data}
secrets=${SKV_SECRETS:-/run/secrets}
conf="$dir/redis.conf"
if [ ! -s "$conf" ]; then
  umask 077
  default_pw=$(cat "$secrets/redis_password")
  data_pw=$(cat "$secrets/redis_data_password")
  control_pw=$(cat "$secrets/redis_control_password")
  {
    echo "port ${SKV_PORT:-6379}"
    echo "dir $dir"
    echo "appendonly yes"
    # The default user: replication and the sentinels.
    echo "requirepass $default_pw"
    echo "masterauth $default_pw"
    if [ "${SKV_CLUSTER:-}" = yes ]; then
      # No replica-announce-ip: a cluster names its nodes by IP (CLUSTER NODES), and the gateway
      # matches each master's INFO replication against that list; a host name there would count
      # every replica twice.
      echo "cluster-enabled yes"
      echo "cluster-config-file nodes.conf"
      echo "cluster-node-timeout 5000"
    else
      echo "replica-announce-ip $SKV_ANNOUNCE"
    fi
    if [ -n "${SKV_REPLICA_OF:-}" ]; then echo "replicaof $SKV_REPLICA_OF"; fi
    # The gateway's users (README, "Redis ACL: the second wall").
    echo "user skv-data reset on >$data_pw $SKV_DATA_RULES"
    echo "user skv-control reset on >$control_pw $SKV_CONTROL_RULES"
  } > "$conf.new"
  mv "$conf.new" "$conf"
fi
# The image's entrypoint: gives the data dir to the redis user and drops root.
exec docker-entrypoint.sh redis-server "$conf"
