#!/bin/sh
# Generic homeiq lab service (busybox sh). One image per service, all built
# from homeiq-base; which service this is comes from the environment.
#
#   SERVICE_NAME   e.g. data-api                        (default homeiq-base)
#   PORT           port httpd listens on                (default 8000)
#   VERSION        reported by /health                  (default 1)
#   HEALTH_PATH    health endpoint                      (default /health)
#   ENDPOINTS      extra story endpoints, space separated paths (optional)
#   INFLUX_URL     if set, write one point a second to InfluxDB (the writer)
#   INFLUX_DB      database for the writer              (default home_assistant_events)
#
# Note: this busybox build (Debian 1.35 static) segfaults on `wget -T`, so
# timeouts use the `timeout` applet instead.
#
# Fault knobs (env, or build args baked into ENV by the Dockerfiles):
#   FAULT=none         serve normally
#   FAULT=unhealthy    no health file: GET /health is 404, Docker health goes unhealthy
#   FAULT=crash-loop   log a line, exit 1 after FAULT_DELAY_S (default 1 s)
#   FAULT=slow-start   sleep SLOW_START_S (default 20) before serving anything
#   FAULT=error-logs   serve normally, print "ERROR <service> simulated failure" every second
#   FAULT=slow-health  GET /health takes 1 s (everything else is fast)
#   FAULT_DELAY_S      seconds of normal behaviour before the fault starts
#                      (unhealthy, error-logs, slow-health; crash-loop's lifetime)

SERVICE_NAME=${SERVICE_NAME:-homeiq-base}
PORT=${PORT:-8000}
VERSION=${VERSION:-1}
HEALTH_PATH=${HEALTH_PATH:-/health}
FAULT=${FAULT:-none}
SLOW_START_S=${SLOW_START_S:-20}
FAULT_DELAY_S=${FAULT_DELAY_S:-0}
INFLUX_DB=${INFLUX_DB:-home_assistant_events}
WWW=/www
export SERVICE_NAME PORT VERSION HEALTH_PATH FAULT SLOW_START_S FAULT_DELAY_S

log() { echo "$*"; }

is_uint() {
    case "$1" in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac
}

# Story endpoints per service (from the seeds' curl lines); /health is always served.
story_endpoints() {
    case "$1" in
        weather-api) echo /api/v1/weather/current ;;
        sports-api) echo /api/v1/sports/upcoming ;;
        carbon-intensity) echo /api/v1/carbon/current ;;
        electricity-pricing) echo /api/v1/pricing/current ;;
        air-quality) echo /api/v1/air-quality/current ;;
        health-dashboard | ai-automation-ui) echo / ;;
    esac
}

write_file() { # path body
    mkdir -p "$(dirname "$1")" && printf '%s\n' "$2" > "$1"
}

write_docroot() {
    mkdir -p "$WWW"
    write_file "$WWW$HEALTH_PATH" \
        "{\"status\":\"healthy\",\"service\":\"$SERVICE_NAME\",\"version\":\"$VERSION\"}"
    for ep in $(story_endpoints "$SERVICE_NAME") $ENDPOINTS; do
        case "$ep" in
            /) write_file "$WWW/index.html" \
                "<!doctype html><html><head><title>$SERVICE_NAME</title></head><body><h1>$SERVICE_NAME</h1><p>version $VERSION</p></body></html>" ;;
            /*) write_file "$WWW$ep" \
                "{\"service\":\"$SERVICE_NAME\",\"endpoint\":\"$ep\",\"version\":\"$VERSION\",\"status\":\"ok\",\"data\":{}}" ;;
            *) log "WARN $SERVICE_NAME ignoring endpoint '$ep' (must start with /)" ;;
        esac
    done
}

influx_writer() {
    n=0
    while :; do
        # CREATE DATABASE is idempotent; repeat it until InfluxDB answers.
        tries=0
        until timeout 3 wget -q -O /dev/null --post-data "q=CREATE DATABASE $INFLUX_DB" \
            "$INFLUX_URL/query" 2>/dev/null; do
            [ "$tries" = 0 ] && log "INFO $SERVICE_NAME waiting for influxdb at $INFLUX_URL"
            tries=$((tries + 1))
            sleep 1
        done
        log "INFO $SERVICE_NAME connected to influxdb at $INFLUX_URL (db $INFLUX_DB)"
        fails=0
        while [ "$fails" -lt 5 ]; do
            n=$((n + 1))
            if timeout 3 wget -q -O /dev/null \
                --post-data "home_assistant_events,entity_id=sensor.lab value=$n" \
                "$INFLUX_URL/write?db=$INFLUX_DB" 2>/dev/null; then
                fails=0
            else
                fails=$((fails + 1))
                log "WARN $SERVICE_NAME influxdb write failed ($fails)"
            fi
            sleep 1
        done
        log "WARN $SERVICE_NAME lost influxdb, reconnecting"
    done
}

# --- checks ----------------------------------------------------------------
if ! is_uint "$PORT"; then
    log "ERROR $SERVICE_NAME invalid PORT '$PORT'"
    exit 2
fi
for v in SLOW_START_S FAULT_DELAY_S; do
    eval "val=\$$v"
    if ! is_uint "$val"; then
        log "ERROR $SERVICE_NAME invalid $v '$val' (whole seconds)"
        exit 2
    fi
done
case "$FAULT" in
    none | unhealthy | crash-loop | slow-start | error-logs | slow-health) ;;
    *)
        log "ERROR $SERVICE_NAME unknown FAULT '$FAULT' (none|unhealthy|crash-loop|slow-start|error-logs|slow-health)"
        exit 2
        ;;
esac

date +%s > /tmp/started
if [ "$FAULT" = none ]; then
    log "INFO $SERVICE_NAME starting version=$VERSION"
else
    log "INFO $SERVICE_NAME starting version=$VERSION fault=$FAULT"
fi

# --- faults that never serve -----------------------------------------------
if [ "$FAULT" = crash-loop ]; then
    d=$FAULT_DELAY_S
    [ "$d" = 0 ] && d=1
    sleep "$d"
    log "ERROR $SERVICE_NAME crashed: simulated crash (FAULT=crash-loop), exit 1"
    exit 1
fi
if [ "$FAULT" = slow-start ]; then
    log "INFO $SERVICE_NAME warming up for ${SLOW_START_S}s (FAULT=slow-start)"
    sleep "$SLOW_START_S"
fi

# --- docroot ---------------------------------------------------------------
write_docroot
if [ "$FAULT" = unhealthy ]; then
    if [ "$FAULT_DELAY_S" = 0 ]; then
        rm -f "$WWW$HEALTH_PATH"
    else
        (
            sleep "$FAULT_DELAY_S"
            rm -f "$WWW$HEALTH_PATH"
            log "WARN $SERVICE_NAME health endpoint gone (FAULT=unhealthy)"
        ) &
    fi
fi

# --- background work -------------------------------------------------------
if [ -n "$INFLUX_URL" ]; then
    influx_writer &
fi
if [ "$FAULT" = error-logs ]; then
    (
        sleep "$FAULT_DELAY_S"
        while :; do
            log "ERROR $SERVICE_NAME simulated failure"
            sleep 1
        done
    ) &
fi

# --- serve ------------------------------------------------------------------
# busybox httpd and nc install no SIGTERM handler, and the kernel drops
# default-action signals sent to PID 1, so `exec httpd` would make every
# `docker stop` wait the full 10 s grace period. Instead this shell stays
# PID 1, forwards TERM/INT to the server and exits 0 once it is gone.
if [ "$FAULT" = slow-health ]; then
    # busybox httpd cannot route /health to a CGI (no proxy/rewrite in this
    # build), so a tiny nc-based server answers everything from /www and
    # sleeps 1 s on the health path.
    set -- nc -ll -p "$PORT" -e /usr/local/bin/slow-http.sh
else
    set -- httpd -f -p "$PORT" -h "$WWW"
fi
stopping=
on_stop() {
    stopping=1
    log "INFO $SERVICE_NAME stopping"
    kill -TERM "$srv" 2>/dev/null
}
trap on_stop TERM INT
"$@" &
srv=$!
log "INFO $SERVICE_NAME listening on :$PORT"
while :; do
    wait "$srv" 2>/dev/null # no "Terminated" job notice in the logs
    rc=$?
    kill -0 "$srv" 2>/dev/null || break # still running: wait was cut short by a signal
done
if [ -n "$stopping" ]; then
    exit 0
fi
log "ERROR $SERVICE_NAME server exited with status $rc"
exit "$rc"
