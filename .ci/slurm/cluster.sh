#!/usr/bin/env bash
# A throwaway one-node SLURM cluster on this machine, for trying workflow/profiles/slurm and for
# tests/test_slurm.py: munged, MariaDB, slurmdbd (sacct), slurmctld and slurmd, all with their
# config, sockets, state and logs in one directory and on free ports, nothing in /etc. The node
# has two fake GPUs (gres gpu:fake:2, device files in the directory) and two partitions: `main`
# (default) and `urgent`, whose jobs preempt (requeue) `main`'s.
#
#   .ci/slurm/cluster.sh install         # apt-get the Debian packages if missing (root)
#   .ci/slurm/cluster.sh start [DIR]     # start (DIR: a new temporary directory); prints DIR
#   source DIR/env.sh                    # SLURM_CONF for sbatch, squeue, sacct, snakemake ...
#   .ci/slurm/cluster.sh stop DIR        # cancel every job, stop the daemons by their pids
#                                        # (DIR stays, with the daemons' logs in DIR/log)
#
# Needs root (slurmd starts jobs as their user; munged and mknod). Exit status 2: not root,
# 3: the packages are missing and apt-get could not install them, 4: mknod is not permitted,
# 1: a daemon did not come up (its log is printed). A failed start stops what it started.
set -eEuo pipefail
export PATH=$PATH:/usr/sbin  # the daemons, for users whose PATH lacks it

PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)
COMMANDS=(slurmctld slurmd slurmdbd munged mariadbd mariadb-install-db sbatch sacct sacctmgr)

say() { printf 'slurm-cluster: %s\n' "$*" >&2; }

need_root() {
    [[ $(id -u) == 0 ]] || { say "needs root (slurmd, munged, mknod); run it with sudo"; exit 2; }
}

missing_commands() {
    local c
    for c in "${COMMANDS[@]}"; do command -v "$c" >/dev/null || echo "$c"; done
}

install() {
    need_root
    [[ -z $(missing_commands) ]] && { say "packages present: ${PACKAGES[*]}"; return 0; }
    command -v apt-get >/dev/null || { say "missing $(missing_commands | xargs) and no apt-get"; exit 3; }
    # apt must not start the system-wide services (default ports, /etc config): a policy-rc.d that
    # denies every start, ours only if the machine has none
    local policy=/usr/sbin/policy-rc.d ours=0
    if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && ours=1; fi
    say "installing ${PACKAGES[*]} with apt-get"
    local ok=0
    { DEBIAN_FRONTEND=noninteractive apt-get update -q && \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"; } \
        >&2 || ok=$?
    [[ $ours == 1 ]] && rm -f "$policy"
    if [[ $ok != 0 || -n $(missing_commands) ]]; then
        say "apt-get could not install ${PACKAGES[*]} (exit $ok; no network to the Debian mirror?)"
        exit 3
    fi
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_for() {  # wait_for SECONDS WHAT LOG COMMAND...: poll COMMAND until it succeeds
    local secs=$1 what=$2 log=$3
    shift 3
    for ((i = 0; i < secs * 5; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    say "$what did not come up in ${secs}s; the end of $log:"
    tail -n 30 "$log" >&2 || true
    return 1
}

# ------------------------------------------------------------------------------------------ start

start() {
    need_root
    [[ -z $(missing_commands) ]] || install
    local dir=${1:-}
    if [[ -z $dir ]]; then dir=$(mktemp -d /tmp/seqmatch-slurm.XXXXXX); else mkdir -p "$dir"; fi
    dir=$(cd "$dir" && pwd)
    [[ -e $dir/etc/slurm.conf ]] && { say "$dir holds a cluster already: stop it first ($0 stop $dir)"; exit 1; }
    # from here on, a failure stops whatever was started
    trap 'say "start failed; stopping what was started"; stop "$dir" || true; exit 1' ERR INT TERM
    chmod 755 "$dir"  # munged refuses a socket directory others can write to; users may read it
    mkdir -p "$dir"/{etc,run,log,dev,munge,mysql,state,spool}
    local host ctld_port slurmd_port dbd_port db_port db_pass
    host=$(hostname -s)
    ctld_port=$(free_port); slurmd_port=$(free_port); dbd_port=$(free_port); db_port=$(free_port)
    db_pass=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')

    # munge: its own key and socket; every SLURM daemon and client finds it via AuthInfo
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge/munge.key"
    munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
        --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" \
        < /dev/null >> "$dir/log/daemons.out" 2>&1
    wait_for 20 munged "$dir/log/munged.log" test -S "$dir/munge/munge.socket"

    # MariaDB for slurmdbd (sacct): a fresh data directory, TCP on 127.0.0.1 only
    mariadb-install-db --no-defaults --user=root --datadir="$dir/mysql/data" --auth-root-authentication-method=socket \
        > "$dir/log/mariadb-install.log" 2>&1
    mariadbd --no-defaults --user=root --datadir="$dir/mysql/data" --socket="$dir/mysql/mysqld.sock" \
        --pid-file="$dir/run/mariadbd.pid" --bind-address=127.0.0.1 --port="$db_port" \
        --log-error="$dir/log/mariadbd.log" --innodb-buffer-pool-size=32M --innodb-log-file-size=16M < /dev/null >> "$dir/log/daemons.out" 2>&1 &
    wait_for 60 mariadbd "$dir/log/mariadbd.log" \
        mariadb --no-defaults --socket="$dir/mysql/mysqld.sock" -u root -e 'select 1'
    mariadb --no-defaults --socket="$dir/mysql/mysqld.sock" -u root -e \
        "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$db_pass';
         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"

    # two fake GPUs: gres needs device files (a file-less gres is dropped and the node drained);
    # /dev/null's numbers, so opening one is harmless
    if ! { mknod "$dir/dev/fakegpu0" c 1 3 && mknod "$dir/dev/fakegpu1" c 1 3; }; then
        trap - ERR; stop "$dir" || true
        say "cannot create device files with mknod (an unprivileged container?)"; exit 4
    fi

    cat > "$dir/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$dbd_port
SlurmUser=root
PidFile=$dir/run/slurmdbd.pid
LogFile=$dir/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=$db_pass
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$dir/etc/slurmdbd.conf"

    local cpus=4 mem=16000  # may exceed the machine (config_overrides): jobs overlap as on a real node
    cat > "$dir/etc/slurm.conf" <<EOF
ClusterName=seqmatch-ci
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# cred_expire: also how long SLURM holds a requeued job before it may start again (default 120 s)
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
# no cgroups: containers and VMs often lack a writable cgroup tree
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$dbd_port
# the munge socket for slurmdbd's messages (AuthInfo serves the others)
AccountingStoragePass=$dir/munge/munge.socket
JobCompType=jobcomp/none
AccountingStorageTRES=gres/gpu,gres/gpu:fake
# the node may claim more than the machine has; finished jobs stay in squeue for 300 s
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=300
KillWait=30
# preemption: a job of a higher partition requeues the jobs of a lower one (SIGTERM to the job, SIGKILL
# KillWait later). With a GraceTime, a job that exits within it ends FAILED instead, not requeued.
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
JobRequeue=1
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:fake:2 State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=0
PartitionName=urgent Nodes=$host MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
EOF
    cat > "$dir/etc/gres.conf" <<EOF
NodeName=$host Name=gpu Type=fake File=$dir/dev/fakegpu[0-1]
EOF
    # snakemake-executor-plugin-slurm-jobstep (0.6.1) runs each job's srun without the SLURM_* variables,
    # SLURM_CONF included: srun then finds no config ("Could not establish a configuration source")
    # unless slurm.conf is at the compiled-in /etc/slurm. An srun first on PATH puts it back.
    mkdir -p "$dir/bin"
    printf '#!/bin/sh\nexport SLURM_CONF=%q\nexec %q "$@"\n' "$dir/etc/slurm.conf" "$(command -v srun)" > "$dir/bin/srun"
    chmod 755 "$dir/bin/srun"
    printf 'export SLURM_CONF=%q PATH=%q:$PATH\n' "$dir/etc/slurm.conf" "$dir/bin" > "$dir/env.sh"
    export SLURM_CONF=$dir/etc/slurm.conf

    slurmdbd < /dev/null >> "$dir/log/daemons.out" 2>&1  # reads slurmdbd.conf beside $SLURM_CONF
    wait_for 60 slurmdbd "$dir/log/slurmdbd.log" sacctmgr -n list cluster
    sacctmgr -i add cluster seqmatch-ci > /dev/null
    slurmctld < /dev/null >> "$dir/log/daemons.out" 2>&1
    wait_for 60 slurmctld "$dir/log/slurmctld.log" scontrol ping
    # an account as a site has one (sbatch -A seqmatch); root may use it
    sacctmgr -i add account seqmatch Description=seqmatch-ci Organization=seqmatch > /dev/null
    sacctmgr -i add user root Account=seqmatch DefaultAccount=seqmatch > /dev/null
    slurmd < /dev/null >> "$dir/log/daemons.out" 2>&1
    node_idle() { [[ $(sinfo -h -n "$host" -o %t) == idle ]]; }
    if ! wait_for 60 "node $host (idle)" "$dir/log/slurmd.log" node_idle; then
        say "node state: $(sinfo -h -n "$host" -o '%t %E' 2>&1)"
        false
    fi
    trap - ERR INT TERM
    say "running: $(sinfo -h -o '%P %t %G' | xargs); use it with: source $dir/env.sh"
    echo "$dir"
}

# ------------------------------------------------------------------------------------------- stop

stop_pid() {  # stop_pid NAME PIDFILE: SIGTERM, then SIGKILL after 20 s
    local name=$1 file=$2 pid
    [[ -s $file ]] || return 0
    pid=$(< "$file")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then say "$name ($pid) ignored SIGTERM: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$file"
}

stop() {
    local dir=${1:?usage: $0 stop DIR}
    export SLURM_CONF=$dir/etc/slurm.conf
    [[ -d $dir/run ]] || { say "$dir is not a cluster directory"; return 1; }
    # jobs first (their slurmstepd outlive slurmd): cancel them all and wait until the node is empty
    if [[ -s $dir/run/slurmctld.pid ]] && scontrol ping >/dev/null 2>&1; then
        squeue -h -o %i 2>/dev/null | xargs -r scancel --full --quiet 2>/dev/null || true
        for ((i = 0; i < 150; i++)); do [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break; sleep 0.2; done
    fi
    stop_pid slurmd "$dir/run/slurmd.pid"
    stop_pid slurmctld "$dir/run/slurmctld.pid"
    stop_pid slurmdbd "$dir/run/slurmdbd.pid"
    stop_pid mariadbd "$dir/run/mariadbd.pid"
    stop_pid munged "$dir/run/munged.pid"
    say "stopped the cluster in $dir"
}

case ${1:-} in
    install) install ;;
    start) start "${2:-}" ;;
    stop) stop "${2:-}" ;;
    *) say "usage: $0 install | start [DIR] | stop DIR"; exit 64 ;;
esac
