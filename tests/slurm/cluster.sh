#!/usr/bin/env bash
# A one-node Slurm cluster for the tests: munge + slurmctld + slurmd on this machine, as root.
#
#   tests/slurm/cluster.sh install         apt-get install slurm-wlm munge (Debian's packages)
#   tests/slurm/cluster.sh start [DIR]     start a cluster whose every file lives in DIR; prints its SLURM_CONF
#   tests/slurm/cluster.sh stop [DIR]      cancel its jobs and stop its daemons
#   tests/slurm/cluster.sh status [DIR]    sinfo against it (exit 1 if it does not answer)
#
# DIR defaults to $GLUE_SLURM_DIR, else /tmp/glue-runner-slurm. Clients find the cluster through
# SLURM_CONF=DIR/slurm.conf, so nothing is written to /etc/slurm or /etc/munge: the machine's own
# Slurm (if any) is left alone, and two clusters on one machine (two CI runs) each take free ports.
# Why root: slurmd starts each job as its owner, which only root can do.
set -euo pipefail

command=${1:-}
DIR=$(realpath -m "${2:-${GLUE_SLURM_DIR:-/tmp/glue-runner-slurm}}")
export SLURM_CONF=$DIR/slurm.conf

say() { echo "slurm cluster: $*" >&2; }

install() {
    [ "$(id -u)" = 0 ] || { say "apt-get needs root"; exit 1; }
    export DEBIAN_FRONTEND=noninteractive
    # an image's package lists may be stale or absent: update once if the install fails without it
    apt-get install -y -q slurm-wlm munge >/dev/null ||
        { apt-get update -q >/dev/null && apt-get install -y -q slurm-wlm munge >/dev/null; }
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

write_config() {
    # slurmd -C: this machine's CPUs, sockets, cores and memory, as slurmd itself will count them
    local node
    node=$(slurmd -C | head -n 1)
    cat >"$SLURM_CONF" <<EOF
# Written by tests/slurm/cluster.sh: one node, everything under $DIR.
ClusterName=glue-runner-test
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
# root runs the daemons, so the state and spool folders below need no slurm user
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job may start again only once its old credential has expired, 121 s by
# default; 5 s (the least Slurm takes) keeps the requeue tests short
AuthInfo=socket=$DIR/munge/munge.socket,cred_expire=5
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# No cgroups (a container may not delegate them): linuxproc tracks a job's processes by ancestry, which
# is enough to signal and kill every process of a step, torchrun's workers included.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# No accounting database (sacct needs slurmdbd and MySQL): the job completion log keeps one line per
# finished job (array tasks and requeued runs included) with its state, times and exit code.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/jobcomp.log
# A core per task by default, so an array of 4 runs 2 at a time on 2 cores, as a busy cluster would;
# memory is not a consumable, so jobs need no --mem.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# every second, not every 30 to 60: a requeued job's begin time passes unseen until a scheduler looks
SchedulerParameters=sched_interval=1,bf_interval=1
MpiDefault=none
# The grace between SIGTERM and SIGKILL at a time limit or scancel (Slurm's default, said here
# because glue-run's checkpoint on SIGTERM must fit in it)
KillWait=30
# Finished jobs stay in scontrol show job for 10 minutes, long enough for the tests to read them
MinJobAge=600
ReturnToService=2
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$(hostname -s) Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
    [ "$(id -u)" = 0 ] || { say "needs root (slurmd starts jobs as their owner)"; exit 1; }
    for daemon in munged slurmctld slurmd; do
        command -v "$daemon" >/dev/null || { say "$daemon not found; run $0 install"; exit 1; }
    done
    if [ -f "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; then
        say "already running in $DIR"; echo "export SLURM_CONF=$SLURM_CONF"; return
    fi
    rm -rf "$DIR"
    mkdir -p "$DIR"/{munge,state,spool,log}
    chmod 755 "$DIR"
    # munge: its own key and socket, run as the munge user (munged refuses a key others can read)
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1 count=1024 status=none
    chown -R munge:munge "$DIR/munge"
    chmod 600 "$DIR/munge/munge.key"
    runuser -u munge -- test -w "$DIR/munge" ||
        { say "the munge user cannot reach $DIR: every folder above it must be open to others (chmod o+x)"; exit 1; }
    runuser -u munge -- munged --socket="$DIR/munge/munge.socket" --key-file="$DIR/munge/munge.key" \
        --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed"
    write_config
    slurmctld -f "$SLURM_CONF"
    slurmd -f "$SLURM_CONF"
    # the node registers with slurmctld within a second or two; a job submitted before would wait
    for _ in $(seq 100); do
        case $(sinfo -h -o %T 2>/dev/null) in idle*) say "up: $(sinfo -h -o '%N %c CPUs %m MB')";
            echo "export SLURM_CONF=$SLURM_CONF"; return;; esac
        sleep 0.2
    done
    say "the node did not come up; the logs say:"
    tail -n 20 "$DIR"/log/*.log "$DIR/munge/munged.log" >&2 || true
    stop
    exit 1
}

stop() {
    [ -f "$SLURM_CONF" ] || { say "no cluster in $DIR"; return; }
    scancel --full --signal=KILL --user="$(id -un)" 2>/dev/null || true
    local pids=()
    for pidfile in slurmd.pid slurmctld.pid munge/munged.pid; do
        [ -f "$DIR/$pidfile" ] && pids+=("$(cat "$DIR/$pidfile")")
    done
    kill "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "${pids[@]}" 2>/dev/null || break; sleep 0.1; done
    kill -9 "${pids[@]}" 2>/dev/null || true
    say "stopped (its logs stay in $DIR)"
}

case $command in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) [ -f "$SLURM_CONF" ] || { say "no cluster in $DIR"; exit 1; }; sinfo ;;
    *) echo "usage: $0 install|start|stop|status [DIR]" >&2; exit 2 ;;
esac
