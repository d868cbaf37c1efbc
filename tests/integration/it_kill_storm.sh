# A short kill storm (the long one is `make fault-test`): 30 jobs on 3
# workers, a busy worker killed every second; no job is lost.
JOBS=30 WORKERS=3 MIN_MS=200 MAX_MS=700 KILL_EVERY=1 LEASE_MS=1000 HB_MS=200 \
    exec bash "$(dirname "$0")/../fault/kill_storm.sh"
