#!/bin/sh
# One HTTP/1.0 exchange on stdin/stdout, run by `nc -ll -e` (see Dockerfile):
# POST /v1/traces stores the body in /data/bodies; GET /stand-in/bodies lists
# them, GET /stand-in/bodies/NAME serves one. Everything in a request is
# hostile: the size is capped ($MAX_BODY), a slow sender is cut off, names
# are checked before they touch the file system.
CR=$(printf '\r')
dir=/data/bodies
len=
ctype=
chunked=
read -r method path proto
while read -r line; do
    line=${line%"$CR"}
    [ -z "$line" ] && break
    case "$line" in
        [Cc]ontent-[Ll]ength:*) len=${line#*:}; len=${len# } ;;
        [Cc]ontent-[Tt]ype:*) ctype=${line#*:}; ctype=${ctype# } ;;
        [Tt]ransfer-[Ee]ncoding:*) chunked=1 ;;
    esac
done
path=${path%%\?*}

reply() { # status content-type [file]
    n=0
    [ -n "$3" ] && n=$(wc -c < "$3")
    printf 'HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %s\r\nConnection: close\r\n\r\n' "$1" "$2" "$n"
    [ -n "$3" ] && cat "$3"
    case "$3" in /tmp/*) rm -f "$3" ;; esac
    exit 0
}
text() { # status message
    f=/tmp/reply.$$
    echo "$2" > "$f"
    reply "$1" text/plain "$f"
}

case "$method $path" in
    "POST /v1/traces")
        # No Content-Length and no Transfer-Encoding: an empty body (RFC 9112 6.3).
        [ -n "$chunked" ] && text "411 Length Required" "send a Content-Length, not chunks"
        [ -z "$len" ] && len=0
        case "$len" in
            *[!0-9]*) text "400 Bad Request" "a bad Content-Length" ;;
        esac
        [ "${#len}" -gt 10 ] || [ "$len" -gt "${MAX_BODY:-8388608}" ] &&
            text "413 Payload Too Large" "at most ${MAX_BODY:-8388608} bytes"
        tmp=$dir/.part.$$
        timeout 10 head -c "$len" > "$tmp"
        if [ "$(wc -c < "$tmp")" != "$len" ]; then
            rm -f "$tmp"
            text "400 Bad Request" "body shorter than its Content-Length"
        fi
        name=$(date +%s)-$$.pb
        mv "$tmp" "$dir/$name"
        echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) INFO stored $name ($len bytes, $ctype)" > /proc/1/fd/1
        # An empty ExportTraceServiceResponse: zero bytes of protobuf.
        reply "200 OK" application/x-protobuf ""
        ;;
    "GET /stand-in/bodies")
        f=/tmp/list.$$
        {
            printf '{"count": %s, "bodies": [' "$(ls "$dir" | wc -l)"
            ls "$dir" | sed 's/.*/"&"/' | tr '\n' ',' | sed 's/,$//'
            printf ']}\n'
        } > "$f"
        reply "200 OK" application/json "$f"
        ;;
    "GET /stand-in/bodies/"*)
        name=${path#/stand-in/bodies/}
        case "$name" in
            *[!0-9a-z.-]*|.*|'') text "400 Bad Request" "bad name" ;;
        esac
        [ -f "$dir/$name" ] || text "404 Not Found" "no body $name"
        reply "200 OK" application/x-protobuf "$dir/$name"
        ;;
    "GET /"|"GET /health")
        text "200 OK" "jaeger stand-in: POST OTLP/HTTP protobuf to /v1/traces"
        ;;
    *)
        text "404 Not Found" "no route $method $path"
        ;;
esac
