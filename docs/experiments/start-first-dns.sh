#!/usr/bin/env bash
# Does a start-first promotion through the engine's DNS lose requests, and where?
#
# Two busybox httpd containers take turns behind one network alias (`svc`), promoted the
# way docker::promote does it, straight through the Engine API (curl on the socket, so no
# CLI start-up sits between the steps): the new container is reconnected *with* the alias
# ("take"), then — after its connections are drained, checked in /proc/PID/net/tcp of the
# old one — the old one leaves the network ("leave"). A probe container on the same network
# requests http://svc/ every 50 ms with a 1 s timeout. Printed: each failed request with the
# promotion step just before it.
#
# Needs Docker and busybox-static. Run: docs/experiments/start-first-dns.sh [PROMOTIONS]
# (default 12; about 5 s each). Cleans up after itself.
set -euo pipefail
n=${1:-12}
net=dh-dns-exp
img=dh-dns-exp-busybox
work=$(mktemp -d)
cleanup() {
  docker rm -f "$net-probe" "$net-a" "$net-b" >/dev/null 2>&1 || true
  docker network rm "$net" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
cp /bin/busybox "$work/"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox","--install","-s","/bin"]\n' >"$work/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$img" "$work" >/dev/null 2>&1
cleanup
work=$(mktemp -d)
docker network create "$net" >/dev/null

api() { curl -sf --unix-socket /var/run/docker.sock -X POST -H 'Content-Type: application/json' "http://v1.41$1" -d "$2" >/dev/null; }
now() { cut -d' ' -f1 /proc/uptime; }
serve() {
  docker run -d --name "$1" --network "$net" ${2:+--network-alias "$2"} "$img" \
    sh -c 'trap "exit 0" TERM; mkdir -p /w; echo hi > /w/i; httpd -f -p 80 -h /w & wait' >/dev/null
}

serve "$net-a" svc
sleep 1
docker run -d --name "$net-probe" --network "$net" "$img" sh -c \
  'while :; do t=$(cut -d" " -f1 /proc/uptime); if timeout 1 wget -q -O /dev/null http://svc/i 2>/dev/null; then echo "$t ok"; else echo "$t fail"; fi; usleep 50000; done' >/dev/null
sleep 1
cur=$net-a
events=$work/events
for _ in $(seq 1 "$n"); do
  nxt=$([ "$cur" = "$net-a" ] && echo "$net-b" || echo "$net-a")
  docker rm -f "$nxt" >/dev/null 2>&1 || true
  serve "$nxt" ""
  sleep 1
  echo "$(now) take" >>"$events"
  api "/networks/$net/disconnect" "{\"Container\":\"$nxt\",\"Force\":true}"
  api "/networks/$net/connect" "{\"Container\":\"$nxt\",\"EndpointConfig\":{\"Aliases\":[\"svc\"]}}"
  sleep 0.3
  pid=$(docker inspect -f '{{.State.Pid}}' "$cur")
  # Drain: no connection to :80 (hex 0050) open in the old container, other than LISTEN
  # (0A) and TIME_WAIT (06).
  while awk 'NR>1 && $2 ~ /:0050$/ && $4 != "0A" && $4 != "06" {f=1} END {exit !f}' "/proc/$pid/net/tcp"; do :; done
  echo "$(now) leave" >>"$events"
  api "/networks/$net/disconnect" "{\"Container\":\"$cur\",\"Force\":true}"
  sleep 0.5
  docker stop -t 2 "$cur" >/dev/null
  cur=$nxt
  sleep 0.3
done
sleep 0.5
docker logs "$net-probe" >"$work/probe" 2>&1
ok=$(grep -c ' ok$' "$work/probe" || true)
fails=$(grep -c ' fail$' "$work/probe" || true)
echo "$n promotions, $ok requests answered, $fails failed"
sort -n "$events" "$work/probe" | awk '$2 == "take" || $2 == "leave" {step=$2; at=$1} $2 == "fail" {printf "  failed request at +%.0f ms after %s\n", ($1 - at) * 1000, step}'
