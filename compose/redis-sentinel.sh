#!/bin/sh
# A sentinel of compose.yaml: writes its config file on the FIRST start only, from the secrets,
# then runs the sentinel on it. The sentinel rewrites that file with what it learns (the current
# master after a failover, the replicas, the other sentinels, the epoch), so a restart keeps the
# failover's outcome instead of monitoring the first master again.
# Env: SKV_ANNOUNCE (this sentinel's service name), SKV_MASTER_NAME, SKV_MASTER (`host port` of the
# first master), SKV_QUORUM; SKV_DIR (/data), SKV_SECRETS (/run/secrets), SKV_PORT (26379),
# SKV_DOWN_AFTER_MS (5000), SKV_FAILOVER_TIMEOUT_MS (30000).
set -eu
dir=${SKV_DIR:-/data}
secrets=${SKV_SECRETS:-/run/secrets}
conf="$dir/sentinel.conf"
name=$SKV_MASTER_NAME
if [ ! -s "$conf" ]; then
  umask 077
  default_pw=$(cat "$secrets/redis_password")
  sentinel_pw=$(cat "$secrets/sentinel_password")
  {
    echo "port ${SKV_PORT:-26379}"
    echo "dir $dir"
    # Service names, not container addresses that change on restart (before the monitor line).
    echo "sentinel resolve-hostnames yes"
    echo "sentinel announce-hostnames yes"
    echo "sentinel announce-ip $SKV_ANNOUNCE"
    # Clients (the gateways, redis-cli) and the other sentinels authenticate.
    echo "requirepass $sentinel_pw"
    echo "sentinel sentinel-pass $sentinel_pw"
    echo "sentinel monitor $name $SKV_MASTER $SKV_QUORUM"
    echo "sentinel auth-pass $name $default_pw"
    echo "sentinel down-after-milliseconds $name ${SKV_DOWN_AFTER_MS:-5000}"
    echo "sentinel failover-timeout $name ${SKV_FAILOVER_TIMEOUT_MS:-30000}"
    echo "sentinel parallel-syncs $name 1"
  } > "$conf.new"
  mv "$conf.new" "$conf"
fi
exec docker-entrypoint.sh redis-server "$conf" --sentinel
