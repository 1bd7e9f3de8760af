#!/usr/bin/env bash
# Stop the single-node Slurm started by scripts/slurm-local.sh: cancel its jobs, then stop each daemon
# by its recorded PID only (never by name, so nothing else on the machine is touched). Idempotent.
set -uo pipefail
BASE=${SLURM_BASE:-/tmp/sipl-slurm}
RUN=$BASE/run
export PATH=$PATH:/usr/sbin:/sbin SLURM_CONF=$BASE/etc/slurm.conf
say() { echo "[slurm-local-stop] $*"; }

# cancel jobs first so no slurmstepd or job process outlives slurmd
if [ -s "$RUN/slurmctld.mypid" ] && kill -0 "$(cat "$RUN/slurmctld.mypid")" 2>/dev/null; then
  jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    say "cancelling jobs: $jobs"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null
    for _ in $(seq 50); do
      squeue -h -t R,CG 2>/dev/null | grep -q . || break
      sleep 0.2
    done
  fi
fi

# alive and not a zombie (PID 1 here may be no init that reaps quickly)
running() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)" != Z ]; }

stop_one() { # name binary
  local f=$RUN/$1.mypid p exe
  [ -s "$f" ] || {
    say "$1: not started by slurm-local.sh"
    return 0
  }
  p=$(cat "$f")
  exe=$(readlink -f "$(command -v "$2" 2>/dev/null)" 2>/dev/null)
  if ! kill -0 "$p" 2>/dev/null; then
    say "$1: pid $p not running"
    rm -f "$f"
    return 0
  fi
  if [ "$(readlink -f /proc/"$p"/exe 2>/dev/null)" != "$exe" ]; then
    say "$1: pid $p is not $exe (PID reused?); leaving it alone"
    rm -f "$f"
    return 0
  fi
  kill -TERM "$p"
  for _ in $(seq 150); do
    running "$p" || break
    sleep 0.1
  done
  if running "$p"; then
    say "$1: pid $p ignored SIGTERM for 15 s; SIGKILL"
    kill -KILL "$p"
  fi
  rm -f "$f"
  say "$1: stopped (pid $p)"
}

stop_one slurmd slurmd
stop_one slurmctld slurmctld
stop_one munged munged
exit 0
