#!/bin/sh
# Docker HEALTHCHECK for lab images: GET http://127.0.0.1:$PORT$HEALTH_PATH,
# healthy on any 2xx (busybox wget exits non-zero on 4xx/5xx). Docker's
# --timeout=2s bounds it; do not add `wget -T`: Debian's static busybox 1.35
# segfaults with it.
exec wget -q -O /dev/null "http://127.0.0.1:${PORT:-8000}${HEALTH_PATH:-/health}"
