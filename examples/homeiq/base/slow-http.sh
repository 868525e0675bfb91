#!/bin/sh
# One HTTP/1.0 exchange on stdin/stdout, run by `nc -ll -e` for FAULT=slow-health.
# Serves static files from /www like httpd does, but GET $HEALTH_PATH sleeps
# 1 s first (once FAULT_DELAY_S seconds have passed since the service started).
CR=$(printf '\r')
read -r method path proto
while read -r line; do # drain the request headers
    [ "${line%"$CR"}" = "" ] && break
done
path=${path%%\?*}

reply() { # status content-type file
    if [ -n "$3" ]; then
        len=$(wc -c < "$3")
    else
        len=0
    fi
    printf 'HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %s\r\nConnection: close\r\n\r\n' "$1" "$2" "$len"
    [ -n "$3" ] && [ "$method" != HEAD ] && cat "$3"
}

case "$path" in
    *..*) reply "400 Bad Request" text/plain ""; exit 0 ;;
esac

if [ "$path" = "${HEALTH_PATH:-/health}" ]; then
    started=$(cat /tmp/started 2>/dev/null || echo 0)
    if [ $(($(date +%s) - started)) -ge "${FAULT_DELAY_S:-0}" ]; then
        sleep 1
    fi
fi

f=/www$path
[ -d "$f" ] && f=${f%/}/index.html
if [ -f "$f" ]; then
    case "$f" in
        *.html) ct=text/html ;;
        *) ct=application/json ;;
    esac
    reply "200 OK" "$ct" "$f"
else
    reply "404 Not Found" text/plain ""
fi
