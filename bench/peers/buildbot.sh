#!/usr/bin/env bash
# peers/buildbot.sh [--install]: the workload of b_e2e.sh, run by Buildbot.
#
# What it measures: JOBS (default 1000) independent builds of one step each,
# the step running `true` through the shell invocation Kiln uses
# (`bash --noprofile --norc -eo pipefail -c true`), on a Buildbot master with
# two buildbot-workers that run one build at a time each, against the same
# JOBS commands through `xargs -P 2`. The two are interleaved, REPS times
# (BUILDBOT_REPS overrides REPS: a Buildbot build costs ~0.2 s, so 1,000 of
# them take minutes); the rows are medians:
#     buildbot_wall            ms   submitting the JOBS builds until all have finished
#     buildbot_xargs_wall      ms   the same commands through xargs -P 2
#     buildbot_overhead_ratio  x    wall / xargs
#     buildbot_per_job         ms   (wall - xargs) / JOBS
#
# How: the master, its SQLite database and both workers live in the private
# directory $T and talk over 127.0.0.1 only (nothing else touches the
# network; Buildbot's usage-data reporting is switched off). The master and
# workers run in the foreground (`start --nodaemon`, i.e. twistd -n), so the
# pids in PIDS are the real daemons and lib.sh stops them on exit. Starting
# them (several seconds) is not measured, nor is a warm-up round of 2 builds
# that makes sure both workers are attached before the clock starts.
#
# Submission: one `buildbot sendchange` (over the master's PB port) carries a
# change with a property jobs=N; a small scheduler in master.cfg ("FanOut")
# turns it into N buildsets of one build request each, submitted at once,
# with collapsing of requests switched off. This is the closest Buildbot
# equivalent of `kiln run` submitting one workflow of JOBS independent jobs in
# one request: a single client invocation, and from then on only stock
# Buildbot machinery (build request distributor, worker protocol, step
# execution, database) is at work. The alternatives cost more outside
# Buildbot's build path: JOBS separate sendchange/try invocations would
# measure JOBS Python client start-ups, and the force scheduler's REST API
# needs the web UI package, which Debian does not ship. The clock starts
# before the sendchange (so its client start-up counts, as `kiln run`'s
# does) and stops when the master reports, through a FIFO, that the last of
# the N buildsets is complete: event-driven, no polling. A build that fails
# makes the script fail.
#
# Buildbot 3.7 and buildbot-worker come from Debian's archive; they are
# installed only when asked (--install or BENCH_INSTALL_PEERS=1), otherwise
# the script exits 77. Python is /usr/bin/python3, Debian's interpreter.
set -euo pipefail
install=${BENCH_INSTALL_PEERS:-0}
for arg in "$@"; do
    case $arg in
    --install) install=1 ;;
    *) echo "usage: buildbot.sh [--install]" >&2; exit 2 ;;
    esac
done
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
JOBS=${JOBS:-1000}
REPS=${BUILDBOT_REPS:-$REPS}
PY=/usr/bin/python3
BUILDBOT=("$PY" /usr/bin/buildbot)
BUILDBOT_WORKER=("$PY" /usr/bin/buildbot-worker)
# A round that has not finished after this many seconds is a failure (more
# than ten times the ~0.2 s per build Buildbot needs on an idle machine).
ROUND_TIMEOUT=${BUILDBOT_TIMEOUT:-$((120 + 3 * JOBS))}

have_buildbot() {
    [ -x /usr/bin/buildbot ] && [ -x /usr/bin/buildbot-worker ] &&
        "$PY" -c 'import buildbot, buildbot_worker' 2>/dev/null
}
if ! have_buildbot; then
    if [ "$install" != 1 ]; then
        echo "buildbot.sh: Buildbot is not installed; install it with" >&2
        echo "  apt-get install --no-install-recommends buildbot buildbot-worker" >&2
        echo "or run this script with --install (or BENCH_INSTALL_PEERS=1)." >&2
        exit 77
    fi
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    echo "buildbot.sh: installing buildbot and buildbot-worker from Debian" >&2
    export DEBIAN_FRONTEND=noninteractive
    pkgs=(buildbot buildbot-worker)
    "${sudo[@]}" apt-get install -y --no-install-recommends "${pkgs[@]}" >&2 ||
        { "${sudo[@]}" apt-get update >&2 && "${sudo[@]}" apt-get install -y --no-install-recommends "${pkgs[@]}" >&2; }
    have_buildbot || { echo "buildbot.sh: Buildbot still not usable after installing" >&2; exit 1; }
fi

# --- master ---------------------------------------------------------------
# The master writes one line per event to this FIFO: "workers N" when N
# workers are connected, "done N FAILED" when the N builds of a round are
# complete. Held open read-write here, so neither side ever blocks opening it.
mkfifo "$T/events"
exec 3<>"$T/events"
BB_PORT=$(free_port)
export BB_PORT BB_EVENTS=$T/events
"${BUILDBOT[@]}" create-master --quiet --relocatable --db=sqlite:///state.sqlite "$T/master" >&2
cat >"$T/master/master.cfg" <<'EOF'
# Master for bench/peers/buildbot.sh: two workers, one builder with one
# step, and a scheduler that fans one change out into N builds.
import os

from buildbot.plugins import changes, steps, util, worker
from buildbot.process.results import SUCCESS
from buildbot.schedulers.base import BaseScheduler
from twisted.internet import defer

PORT = int(os.environ['BB_PORT'])
EVENTS = os.environ['BB_EVENTS']
WORKERS = ['w1', 'w2']


def notify(line):
    fd = os.open(EVENTS, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, (line + '\n').encode())
    finally:
        os.close(fd)


class FanOut(BaseScheduler):
    """Each change submits N independent buildsets (N: the change's `jobs`
    property) of one build request each; when all N are complete, writes
    "done N FAILED" to EVENTS. Also reports connected workers there."""

    def __init__(self, name, builderNames):
        super().__init__(name, builderNames)
        self.pending = self.submitted = self.failed = 0
        self.consumers = []

    @defer.inlineCallbacks
    def activate(self):
        yield super().activate()
        if not self.enabled:
            return
        yield self.startConsumingChanges()
        for path, cb in ((('workers', None, 'connected'), self.workerConnected),
                         (('buildsets', None, 'complete'), self.buildsetComplete)):
            self.consumers.append((yield self.master.mq.startConsuming(cb, path)))
        yield self.workerConnected(None, None)

    @defer.inlineCallbacks
    def deactivate(self):
        for c in self.consumers:
            c.stopConsuming()
        self.consumers = []
        yield super().deactivate()

    @defer.inlineCallbacks
    def workerConnected(self, key, msg):
        ws = yield self.master.data.get(('workers',))
        notify('workers %d' % sum(1 for w in ws if w['connected_to']))

    @defer.inlineCallbacks
    def gotChange(self, change, important):
        n = int(change.properties.getProperty('jobs', '1'))
        self.pending += n
        self.submitted, self.failed = n, 0
        ss = {'codebase': '', 'repository': '', 'branch': None,
              'revision': None, 'project': ''}
        for i in range(n):
            yield self.addBuildsetForSourceStamps(
                sourcestamps=[ss], reason='bench job %d' % i)

    def buildsetComplete(self, key, msg):
        if msg['results'] != SUCCESS:
            self.failed += 1
        self.pending -= 1
        if self.pending == 0:
            notify('done %d %d' % (self.submitted, self.failed))


factory = util.BuildFactory([
    steps.ShellCommand(name='true',
                       command=['bash', '--noprofile', '--norc', '-eo', 'pipefail', '-c', 'true']),
])

c = BuildmasterConfig = {
    'title': 'kiln-bench',
    'buildbotURL': 'http://127.0.0.1/',
    'buildbotNetUsageData': None,
    'db': {'db_url': 'sqlite:///state.sqlite'},
    'protocols': {'pb': {'port': 'tcp:%d:interface=127.0.0.1' % PORT}},
    'workers': [worker.Worker(w, 'bench', max_builds=1) for w in WORKERS],
    'change_source': [changes.PBChangeSource(user='bench', passwd='bench')],
    'schedulers': [FanOut('fanout', ['trivial'])],
    'builders': [util.BuilderConfig(name='trivial', workernames=WORKERS,
                                    factory=factory, collapseRequests=False)],
    'collapseRequests': False,
}
EOF
# twistd logs to BASEDIR/twistd.log; linked as $T/*.log, lib.sh shows their
# tails if the script fails.
ln -s master/twistd.log "$T/master.log"
"${BUILDBOT[@]}" start --nodaemon "$T/master" >"$T/master.out" 2>&1 &
MASTER_PID=$!
PIDS+=("$MASTER_PID")

# wait_event PATTERN SECONDS: reads events until one matches the extended
# regular expression PATTERN (left in EVENT); fails on timeout or if a
# daemon dies meanwhile.
wait_event() {
    local until=$((SECONDS + $2)) pid
    while [ $SECONDS -lt $until ]; do
        if read -r -t 1 -u 3 EVENT; then
            [[ $EVENT =~ $1 ]] && return 0
            continue
        fi
        for pid in "${PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null || fail "a Buildbot process (pid $pid) died"
        done
    done
    fail "no '$1' from the Buildbot master within $2 s"
}

# --- workers --------------------------------------------------------------
for w in w1 w2; do
    "${BUILDBOT_WORKER[@]}" create-worker --quiet --relocatable --umask=0o22 \
        "$T/$w" "127.0.0.1:$BB_PORT" "$w" bench >&2
    ln -s "$w/twistd.log" "$T/$w.log"
    "${BUILDBOT_WORKER[@]}" start --nodaemon "$T/$w" >"$T/$w.out" 2>&1 &
    PIDS+=($!)
done
wait_event '^workers 2$' 120

# sendchange N: one change asking the FanOut scheduler for N builds.
sendchange() {
    "${BUILDBOT[@]}" sendchange --master "127.0.0.1:$BB_PORT" --auth bench:bench \
        --who bench --comments "$1 builds" --property "jobs:$1" bench >/dev/null
}
# round N: submits N builds and returns when all are complete and succeeded.
round() {
    sendchange "$1"
    wait_event '^done ' "$ROUND_TIMEOUT"
    [ "$EVENT" = "done $1 0" ] || fail "Buildbot round: expected 'done $1 0', got '$EVENT'"
}
round 2 # warm-up, not measured
echo "buildbot.sh: master and 2 workers up; $JOBS builds x $REPS" >&2

# --- measurement ------------------------------------------------------------
seq 1 "$JOBS" >"$T/list"
base=() bb=()
for _ in $(seq 1 "$REPS"); do
    t0=$(ms)
    xargs -P 2 -n 1 bash --noprofile --norc -eo pipefail -c true <"$T/list"
    base+=($(($(ms) - t0)))
    t0=$(ms)
    round "$JOBS"
    bb+=($(($(ms) - t0)))
    echo "buildbot.sh: xargs ${base[-1]} ms, buildbot ${bb[-1]} ms;" \
        "CPU so far: master $(cpu_ms "$MASTER_PID") ms, workers $(cpu_ms "${PIDS[1]}") + $(cpu_ms "${PIDS[2]}") ms" >&2
done
base_ms=$(printf '%s\n' "${base[@]}" | median)
bb_ms=$(printf '%s\n' "${bb[@]}" | median)
row buildbot_wall "$bb_ms" ms
row buildbot_xargs_wall "$base_ms" ms
row buildbot_overhead_ratio "$(awk -v k="$bb_ms" -v b="$base_ms" 'BEGIN {printf "%.2f", k / b}')" x
row buildbot_per_job "$(awk -v k="$bb_ms" -v b="$base_ms" -v n="$JOBS" 'BEGIN {printf "%.2f", (k - b) / n}')" ms
