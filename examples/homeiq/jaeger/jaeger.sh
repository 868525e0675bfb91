#!/bin/sh
# The Jaeger stand-in's PID 1 (see Dockerfile): the admin endpoint (busybox
# httpd on $PORT) and the OTLP/HTTP receiver (nc -ll running otlp-http.sh per
# connection on $OTLP_PORT). Like base/service.sh it stays PID 1 so that
# `docker stop` / `docker restart` end it at once instead of after 10 s.
mkdir -p /data/bodies
log() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $*"; }

httpd -f -p "$PORT" -h /www/admin &
admin=$!
nc -ll -p "$OTLP_PORT" -e /usr/local/bin/otlp-http.sh &
otlp=$!
on_stop() {
    log "INFO jaeger stand-in stopping"
    kill -TERM "$admin" "$otlp" 2>/dev/null
    exit 0
}
trap on_stop TERM INT
log "INFO jaeger stand-in: admin :$PORT, OTLP/HTTP :$OTLP_PORT, $(ls /data/bodies | wc -l) stored bodies"
while kill -0 "$admin" 2>/dev/null && kill -0 "$otlp" 2>/dev/null; do
    wait 2>/dev/null
done
log "ERROR jaeger stand-in: a server exited"
exit 1
