#!/usr/bin/env bash
# Start a one-node SLURM cluster (munged, slurmctld, slurmd; no systemd, no accounting)
# whose files all live in STATE_DIR. Needs root and Debian's munge, slurmctld, slurmd,
# slurm-client. Prints `export SLURM_CONF=...`; stop it with tests/cluster/stop.sh STATE_DIR.
#   usage: start.sh STATE_DIR
set -euo pipefail
state=$(realpath -m "$1")
here=$(dirname "$(realpath "$0")")
for tool in munged mungekey slurmctld slurmd sinfo sbatch squeue scontrol; do
  command -v "$tool" >/dev/null || { echo "start.sh: $tool not found (apt-get install munge slurmctld slurmd slurm-client)" >&2; exit 3; }
done
[ "$(id -u)" = 0 ] || { echo "start.sh: needs root (slurmd launches jobs)" >&2; exit 3; }

mkdir -p "$state"/{munge,ctld,slurmd}
chmod 700 "$state/munge"
host=$(hostname -s)
cpus=$(nproc --all)  # not plain nproc: it obeys OMP_NUM_THREADS
# Leave the OS some memory; jobs ask for less than this (the test profile caps mem_mb).
memory_mb=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) * 3 / 4 ))
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ctld_port=$(free_port)
slurmd_port=$(free_port)
fill() {
  sed -e "s|@HOST@|$host|g" -e "s|@STATE@|$state|g" -e "s|@CPUS@|$cpus|g" \
      -e "s|@MEMORY_MB@|$memory_mb|g" -e "s|@CTLD_PORT@|$ctld_port|g" -e "s|@SLURMD_PORT@|$slurmd_port|g" "$1"
}
fill "$here/slurm.conf.in" > "$state/slurm.conf"
fill "$here/gres.conf.in" > "$state/gres.conf"
export SLURM_CONF="$state/slurm.conf"
# Snakemake's job steps drop SLURM_CONF before their nested srun, which then reads only
# the compiled-in /etc/slurm: put our files there too, marked, unless a real config is there.
marker="# affectflow test cluster"
for name in slurm.conf gres.conf; do
  if [ -e "/etc/slurm/$name" ] && ! head -n 1 "/etc/slurm/$name" | grep -qx "$marker"; then
    echo "start.sh: /etc/slurm/$name exists and is not ours; not touching a real SLURM set-up" >&2
    exit 3
  fi
done
mkdir -p /etc/slurm
for name in slurm.conf gres.conf; do
  { echo "$marker"; echo "# state: $state"; cat "$state/$name"; } > "/etc/slurm/$name"
done

# munge: our own key and socket, so nothing system-wide is touched.
[ -f "$state/munge/munge.key" ] || mungekey --create --keyfile="$state/munge/munge.key" --bits=1024
chmod 400 "$state/munge/munge.key"
munged --foreground --force --key-file="$state/munge/munge.key" --socket="$state/munge/munge.socket" \
  --pid-file="$state/munge/munged.pid" --log-file="$state/munge/munged.log" \
  --seed-file="$state/munge/munged.seed" > "$state/munged.out" 2>&1 &
echo $! > "$state/munged.pid.started"
for _ in $(seq 50); do [ -S "$state/munge/munge.socket" ] && break; sleep 0.1; done
[ -S "$state/munge/munge.socket" ] || { echo "start.sh: munged did not start:" >&2; cat "$state/munged.out" "$state/munge/munged.log" >&2 || true; exit 1; }

slurmctld -D -c -f "$state/slurm.conf" > "$state/slurmctld.out" 2>&1 &
echo $! > "$state/slurmctld.pid.started"
slurmd -D -f "$state/slurm.conf" > "$state/slurmd.out" 2>&1 &
echo $! > "$state/slurmd.pid.started"

# Ready when the node is idle in both partitions.
for _ in $(seq 120); do
  if sinfo -h -N -o '%t' 2>/dev/null | grep -q '^idle'; then
    echo "export SLURM_CONF=$state/slurm.conf"
    exit 0
  fi
  sleep 0.5
done
echo "start.sh: the node never became idle:" >&2
sinfo -N -l >&2 || true
tail -n 20 "$state/slurmctld.log" "$state/slurmd.log" >&2 || true
exit 1
