#!/usr/bin/env bash
# Stop the daemons tests/cluster/start.sh started in STATE_DIR, by the PIDs it recorded.
#   usage: stop.sh STATE_DIR
set -uo pipefail
state=$(realpath -m "$1")
stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
# Jobs first (slurmd's children), then the daemons in reverse start order.
if [ -f "$state/slurm.conf" ]; then SLURM_CONF="$state/slurm.conf" scancel --full --quiet --user=root 2>/dev/null || true; fi
for daemon in slurmd slurmctld munged; do
  file="$state/$daemon.pid.started"
  [ -f "$file" ] && stop_pid "$(cat "$file")" && rm -f "$file"
done
# The copies in /etc/slurm that start.sh wrote (marked, and for this state dir only).
for name in slurm.conf gres.conf; do
  if [ -f "/etc/slurm/$name" ] && [ "$(sed -n 2p "/etc/slurm/$name")" = "# state: $state" ]; then
    rm -f "/etc/slurm/$name"
  fi
done
exit 0
