#!/usr/bin/env bash
# Build the PulsePlan image from ./Containerfile with buildah (no daemon) and, with --smoke, run
# it and check it on loopback: production refuses to start without secrets, development and
# production-with-secrets answer 200 on /api/v1/health/ready, the HEALTHCHECK command passes,
# SIGTERM ends the server with exit status 0, and the image holds no compiler, wheel or cache.
# docs/operations.md ("Container image") records a run of this script and its output.
#
# Needs (Debian/Ubuntu packages; install with apt-get install -y ...):
#   buildah      always (1.28 tested)
#   debootstrap  only for the offline stand-in base (--base standin, or auto when nothing else
#                works): a Debian bookworm rootfs with python3 (3.11) from Debian's mirror
#   python3      on the host, for the smoke test's HTTP checks and generated test secrets
# Network: PyPI during the build (wheels pinned by uv.lock); Debian's mirror for the stand-in;
# the base image's registry only with --base pull/auto. The smoke test uses 127.0.0.1 only.
#
# Usage: deploy/build-image.sh [--base auto|pull|standin] [--smoke] [--no-build]
#   --base auto     (default) BASE_IMAGE from local storage, else pulled, else the stand-in
#   --base pull     BASE_IMAGE must be pulled (or already present)
#   --base standin  never contact an image registry: build (once) and use the stand-in base
#   --smoke         run the checks above after building
#   --no-build      smoke-test the image already built under $IMAGE
# Idempotent: the stand-in is built once; buildah --layers reuses unchanged steps, so a rebuild
# after a code change redoes only the steps from `COPY pulseplan/` on.
#
# Environment (defaults in brackets):
#   IMAGE           tag to build [localhost/pulseplan:dev]
#   BASE_IMAGE      base of both stages [docker.io/library/python:3.11-slim]
#   STANDIN_IMAGE   tag of the offline stand-in base [localhost/pulseplan-base:bookworm]
#   DEBIAN_MIRROR   for debootstrap [http://deb.debian.org/debian]
#   STORAGE_ROOT    buildah storage [/var/tmp/pulseplan-oci]; empty: buildah's own default
#   STORAGE_DRIVER  [vfs]: works inside containers and sandboxes where overlay does not
#   CA_BUNDLE       CA of a TLS-intercepting proxy, given to the build as secret `ca_bundle`
#                   (never stored in the image) [$SSL_CERT_FILE when that is set]
#   SMOKE_PORT      loopback port of the smoke runs [18780]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMAGE=${IMAGE:-localhost/pulseplan:dev}
BASE_IMAGE=${BASE_IMAGE:-docker.io/library/python:3.11-slim}
STANDIN_IMAGE=${STANDIN_IMAGE:-localhost/pulseplan-base:bookworm}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
STORAGE_ROOT=${STORAGE_ROOT-/var/tmp/pulseplan-oci}
STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}
CA_BUNDLE=${CA_BUNDLE-${SSL_CERT_FILE:-}}
SMOKE_PORT=${SMOKE_PORT:-18780}

base_mode=auto
smoke=0
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --base) base_mode=${2:?--base needs auto, pull or standin}; shift 2 ;;
    --base=*) base_mode=${1#--base=}; shift ;;
    --smoke) smoke=1; shift ;;
    --no-build) build=0; smoke=1; shift ;;
    -h | --help) sed -n '2,38p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$base_mode" in auto | pull | standin) ;; *) echo "--base: auto, pull or standin" >&2; exit 2 ;; esac

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "error: $1 is not installed (Debian/Ubuntu: apt-get install -y ${2:-$1})" >&2
    exit 1
  }
}
need buildah

BA=(buildah)
if [ -n "$STORAGE_ROOT" ]; then
  mkdir -p "$STORAGE_ROOT"
  BA+=(--root "$STORAGE_ROOT/storage" --runroot "$STORAGE_ROOT/run" --storage-driver "$STORAGE_DRIVER")
fi
WORK=${STORAGE_ROOT:-/var/tmp/pulseplan-oci}/work
mkdir -p "$WORK"

say() { printf '\n== %s\n' "$*" >&2; }
run() { printf '+ %s\n' "$*" >&2; "$@"; }
have_image() { "${BA[@]}" inspect --type image "$1" >/dev/null 2>&1; }

# ------------------------------------------------------------------------------ base image

build_standin() {
  if have_image "$STANDIN_IMAGE"; then
    echo "stand-in base $STANDIN_IMAGE already built" >&2
    return
  fi
  need debootstrap
  say "building the offline stand-in base $STANDIN_IMAGE (Debian bookworm + python3 3.11)"
  local rootfs="$WORK/standin-rootfs" tarball="$WORK/standin-rootfs.tar" c
  rm -rf "$rootfs" "$tarball"
  # What python:3.11-slim offers that the Containerfile uses: python with venv and pip, CA
  # certificates, groupadd/useradd (passwd), a shell.
  run debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates,passwd \
    bookworm "$rootfs" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
    tail -n 20 "$WORK/debootstrap.log" >&2
    exit 1
  }
  ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
  tar --numeric-owner -C "$rootfs" -cf "$tarball" .
  c=$("${BA[@]}" from scratch)
  run "${BA[@]}" add "$c" "$tarball" /
  run "${BA[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 \
    --label org.opencontainers.image.description="PulsePlan offline stand-in for python:3.11-slim" "$c"
  run "${BA[@]}" commit --rm --quiet "$c" "$STANDIN_IMAGE" >/dev/null
  rm -rf "$rootfs" "$tarball"
}

choose_base() {
  case "$base_mode" in
    standin) build_standin >&2; echo "$STANDIN_IMAGE" ;;
    pull)
      have_image "$BASE_IMAGE" || run "${BA[@]}" pull --quiet "$BASE_IMAGE" >/dev/null
      echo "$BASE_IMAGE"
      ;;
    auto)
      if have_image "$BASE_IMAGE"; then
        echo "$BASE_IMAGE"
      elif run "${BA[@]}" pull --quiet "$BASE_IMAGE" >/dev/null 2>&1; then
        echo "$BASE_IMAGE"
      else
        echo "cannot pull $BASE_IMAGE: using the offline stand-in" >&2
        build_standin >&2
        echo "$STANDIN_IMAGE"
      fi
      ;;
  esac
}

# ------------------------------------------------------------------------------ build

build_image() {
  local base secret=()
  base=$(choose_base)
  if [ -n "$CA_BUNDLE" ] && [ -f "$CA_BUNDLE" ]; then
    secret=(--secret "id=ca_bundle,src=$CA_BUNDLE")
  fi
  say "building $IMAGE on $base"
  local started=$SECONDS
  # chroot isolation: the default (oci, via crun) needs cgroup control that nested sandboxes
  # lack. docker format: the OCI format has no HEALTHCHECK and buildah would drop it.
  (cd "$ROOT" && run "${BA[@]}" bud --isolation chroot --pull=never --format docker --layers \
    --build-arg "BASE_IMAGE=$base" "${secret[@]}" -f Containerfile -t "$IMAGE" .)
  echo "built $IMAGE in $((SECONDS - started)) s" >&2
}

# ------------------------------------------------------------------------------ smoke test

CONTAINERS=()
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then kill -TERM "$SERVER_PID" || true; fi
  for c in "${CONTAINERS[@]}"; do "${BA[@]}" rm "$c" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

# Sets NEW_CONTAINER (not printed: a $(...) subshell would lose the cleanup list).
new_container() {
  NEW_CONTAINER=$("${BA[@]}" from --pull=never "$IMAGE")
  CONTAINERS+=("$NEW_CONTAINER")
}

# GET a loopback URL: prints "<status> <body>", never fails (status 000 when nothing answers).
http_get() {
  python3 - "$1" <<'PY'
import sys, urllib.error, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(sys.argv[1], timeout=2) as r:
        print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
except OSError:
    print("000")
PY
}

# Poll $1/api/v1/health/ready until anything answers (up to 60 s) or process $2 exits; prints
# the last answer in http_get's form.
wait_ready() {
  local answer="000"
  for _ in $(seq 1 120); do
    answer=$(http_get "$1/api/v1/health/ready")
    [ "${answer%% *}" != "000" ] && break
    kill -0 "$2" 2>/dev/null || break
    sleep 0.5
  done
  echo "$answer"
}

# The pid of the `pulseplan serve` process started under $1 (buildah run has no PID namespace
# with chroot isolation, so it is a host process; found by walking the process tree).
serve_pid() {
  local pid=$1 child
  # shellcheck disable=SC2013  # the file is a space-separated list of pids
  for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
    # The Python process itself, not buildah's chroot exec helper whose arguments match too.
    if tr '\0' ' ' </proc/"$child"/cmdline 2>/dev/null | grep -q '^[^ ]*python[^ ]* .*pulseplan serve'; then
      echo "$child"
      return
    fi
    serve_pid "$child"
  done
}

# Serve in container $1 with extra env (the remaining args), wait until ready, run the image's
# HEALTHCHECK, then SIGTERM and expect exit status 0.
serve_and_probe() {
  local c=$1 label=$2
  shift 2
  local envs=(-e PULSEPLAN_HOST=127.0.0.1 -e "PULSEPLAN_PORT=$SMOKE_PORT") kv
  for kv in "$@"; do envs+=(-e "$kv"); done
  local log="$WORK/smoke-$label.log" base="http://127.0.0.1:$SMOKE_PORT"
  if [ "$(http_get "$base/health")" != "000" ]; then
    echo "error: port $SMOKE_PORT is busy (set SMOKE_PORT)" >&2
    exit 1
  fi
  say "serve ($label) on 127.0.0.1:$SMOKE_PORT"
  local shown=() kv
  for kv in "${envs[@]}"; do
    case "$kv" in *KEY=* | *SECRET=*) shown+=("${kv%%=*}=<generated>") ;; *) shown+=("$kv") ;; esac
  done
  printf '+ buildah run --isolation chroot %s %s -- pulseplan serve\n' "${shown[*]}" "$c" >&2
  "${BA[@]}" run --isolation chroot "${envs[@]}" "$c" -- pulseplan serve >"$log" 2>&1 &
  local runner=$! answer pid=""
  answer=$(wait_ready "$base" "$runner")
  echo "GET /api/v1/health/ready -> $answer"
  echo "GET /health -> $(http_get "$base/health")"
  case "$answer" in 200\ *) ;; *)
    echo "error: not ready; server log:" >&2
    tail -n 30 "$log" >&2
    exit 1
    ;;
  esac
  # The image's own HEALTHCHECK command, run as the image runs it (same user, env, PATH).
  local hc
  hc=$("${BA[@]}" inspect --type image "$IMAGE" |
    python3 -c 'import json,sys; t=json.load(sys.stdin)["Docker"]["config"]["Healthcheck"]["Test"]; print("\n".join(t[1:]))')
  mapfile -t hc_cmd <<<"$hc"
  if "${BA[@]}" run --isolation chroot "${envs[@]}" "$c" -- "${hc_cmd[@]}"; then
    echo "HEALTHCHECK command -> exit 0"
  else
    echo "error: HEALTHCHECK command failed" >&2
    exit 1
  fi
  pid=$(serve_pid "$runner")
  SERVER_PID=$pid
  echo "serve pid $pid runs as uid $(awk '/^Uid:/{print $2}' /proc/"$pid"/status)"
  if [ "$label" = development ]; then
    # Graceful stop with a request in flight: its head and part of its body are sent, then
    # SIGTERM; once new connections are refused the rest of the body follows, and the request
    # must still get its answer from the app (a JSON 4xx: the flow id is made up).
    python3 - "$SMOKE_PORT" "$pid" "$JWT_SECRET" <<'PY'
import base64, hashlib, hmac, json, os, signal, socket, sys, time, uuid
port, pid, secret = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode()
b64 = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=")
now = int(time.time())
claims = {"sub": str(uuid.uuid4()), "aud": "authenticated", "role": "authenticated",
          "iat": now, "exp": now + 300}
signing = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(json.dumps(claims).encode())
jwt = signing + b"." + b64(hmac.new(secret, signing, hashlib.sha256).digest())
body = b'{"flow": "smoke-test-flow"}'
conn = socket.create_connection(("127.0.0.1", port), timeout=30)
conn.sendall(b"POST /api/v1/oauth/google/confirm HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             b"Content-Type: application/json\r\nConnection: close\r\n"
             b"Authorization: Bearer " + jwt + b"\r\n"
             b"Content-Length: %d\r\n\r\n" % len(body) + body[:5])
time.sleep(0.5)  # let the app take the request (a connection still reading its head is idle)
os.kill(pid, signal.SIGTERM)
print("SIGTERM sent with a request in flight")
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        break
    time.sleep(0.05)
else:
    sys.exit("error: still accepting connections 10 s after SIGTERM")
print("new connections refused")
conn.sendall(body[5:])
status = conn.recv(65536).split(b"\r\n", 1)[0].decode()
print("in-flight request completed after SIGTERM ->", status)
sys.exit(0 if status.startswith("HTTP/1.1 4") else 1)
PY
  else
    echo "sending SIGTERM"
    kill -TERM "$pid"
  fi
  local status=0
  wait "$runner" || status=$?
  SERVER_PID=""
  echo "exit status after SIGTERM: $status"
  echo "server log (last lines):"
  tail -n 3 "$log" | cut -c1-200
  [ "$status" = 0 ] || { echo "error: expected exit status 0" >&2; exit 1; }
  [ "$(http_get "$base/health")" = "000" ] || { echo "error: port still answers" >&2; exit 1; }
}

# A run as Kubernetes does it, which `buildah run` cannot show: a read-only root filesystem with
# tmpfs only on the data dir, /run/pulseplan and /tmp, and `pulseplan serve` as PID 1 of its own
# PID namespace (signals reach PID 1 only through a handler it installed). The image's rootfs
# is mounted by buildah; unshare + chroot (util-linux, coreutils) do the rest. Args: container,
# label, then NAME=value settings.
readonly_pid1_run() {
  local c=$1 label=$2
  shift 2
  need unshare util-linux
  local mnt log="$WORK/smoke-$label.log" base="http://127.0.0.1:$SMOKE_PORT" envs=()
  mnt=$("${BA[@]}" mount "$c")
  mapfile -t envs < <("${BA[@]}" inspect --type image "$IMAGE" |
    python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin)["Docker"]["config"]["Env"]))')
  envs+=(PULSEPLAN_HOST=127.0.0.1 "PULSEPLAN_PORT=$SMOKE_PORT" "$@")
  say "serve ($label): read-only root filesystem, PID 1 in its own PID namespace"
  local shown=() kv
  for kv in "$@"; do
    case "$kv" in *KEY=* | *SECRET=*) shown+=("${kv%%=*}=<generated>") ;; *) shown+=("$kv") ;; esac
  done
  echo "+ unshare --mount --pid --fork; rootfs bind-mounted read-only; tmpfs on /var/lib/pulseplan, /run/pulseplan, /tmp; chroot --userspec=10001:10001 pulseplan serve (${shown[*]})" >&2
  # shellcheck disable=SC2016  # expanded by the inner shell, which gets the values as "$@"
  unshare --mount --pid --fork --kill-child sh -c '
    set -e
    root=$1; shift
    mount --make-rprivate /
    mount --bind "$root" "$root"
    mount -o remount,bind,ro "$root"
    mount -t proc proc "$root/proc"
    mount -t tmpfs -o mode=0755 tmpfs "$root/dev"
    for d in null zero urandom random; do touch "$root/dev/$d"; mount --bind "/dev/$d" "$root/dev/$d"; done
    # Container runtimes give every container a /dev/shm; several workers need it (semaphores).
    mkdir "$root/dev/shm" && mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
    mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
    mount -t tmpfs -o uid=10001,gid=10001,mode=0700 tmpfs "$root/var/lib/pulseplan"
    mount -t tmpfs -o uid=10001,gid=10001,mode=0700 tmpfs "$root/run/pulseplan"
    # Even root cannot write the image here; the app (uid 10001) gets the tmpfs mounts only.
    if touch "$root/opt/.write-probe" 2>/dev/null; then echo "error: root filesystem is writable"; exit 1; fi
    echo "read-only root: $(touch "$root/opt/.write-probe" 2>&1 | sed "s/.*: //")"
    exec chroot --userspec=10001:10001 "$root" /usr/bin/env -i "$@" /opt/pulseplan/bin/pulseplan serve
  ' sh "$mnt" "${envs[@]}" >"$log" 2>&1 &
  local runner=$! answer pid=""
  answer=$(wait_ready "$base" "$runner")
  echo "GET /api/v1/health/ready -> $answer"
  case "$answer" in 200\ *) ;; *)
    echo "error: not ready; log:" >&2
    tail -n 30 "$log" >&2
    exit 1
    ;;
  esac
  pid=$(serve_pid "$runner")
  SERVER_PID=$pid
  echo "serve: host pid $pid, pid $(awk '/^NSpid:/{print $NF}' /proc/"$pid"/status) in its namespace, uid $(awk '/^Uid:/{print $2}' /proc/"$pid"/status), $(cat /proc/"$pid"/task/*/children | wc -w) child process(es)"
  grep '^read-only root:' "$log"
  # 20 requests on fresh connections land on any worker; /metrics (answered by one of them) must
  # count all 20: with several workers only PROMETHEUS_MULTIPROC_DIR makes that true.
  for _ in $(seq 1 20); do http_get "$base/health" >/dev/null; done
  local counted
  counted=$(http_get "$base/metrics" | python3 -c '
import re, sys
total = sum(float(v) for v in re.findall(r"^pulseplan_http_requests_total\{[^}]*route=\"/health\"[^}]*\} (\S+)$", sys.stdin.read(), re.M))
print(int(total))')
  echo "GET /health x 20, then /metrics counts $counted requests to /health"
  if grep -q '"route":"/health"' "$log"; then
    echo "access lines of /health come from $(grep '"route":"/health"' "$log" | grep -o '"pid":[0-9]*' | sort -u | wc -l) worker pid(s)"
  fi
  [ "$counted" -ge 20 ] || { echo "error: /metrics does not count every worker's requests" >&2; exit 1; }
  echo "sending SIGTERM to pid $pid"
  kill -TERM "$pid"
  local status=0
  wait "$runner" || status=$?
  SERVER_PID=""
  echo "exit status after SIGTERM: $status"
  grep -v '^ ' "$log" | tail -n 3 | cut -c1-200
  "${BA[@]}" umount "$c" >/dev/null
  [ "$status" = 0 ] || { echo "error: expected exit status 0" >&2; exit 1; }
  [ "$(http_get "$base/health")" = "000" ] || { echo "error: port still answers" >&2; exit 1; }
}

secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(48))'; }

smoke_test() {
  need python3
  have_image "$IMAGE" || { echo "error: no image $IMAGE (build it first)" >&2; exit 1; }
  say "image configuration"
  "${BA[@]}" inspect --type image "$IMAGE" | python3 -c '
import json, sys
c = json.load(sys.stdin)["Docker"]["config"]
for key in ("User", "WorkingDir", "ExposedPorts", "Entrypoint", "Cmd", "StopSignal", "Healthcheck"):
    print(f"{key}: {json.dumps(c.get(key))}")
print("Env:", " ".join(e for e in c["Env"] if e.startswith(("PULSEPLAN_", "DATABASE_URL"))))
'
  local c
  new_container
  c=$NEW_CONTAINER

  say "contents: no compiler, no build tools, no wheels or caches"
  # shellcheck disable=SC2016  # this script runs inside the image
  "${BA[@]}" run --isolation chroot --user 0:0 "$c" -- sh -c '
    found=0
    for tool in gcc cc g++ c++ make clang uv; do
      if command -v "$tool" >/dev/null; then echo "found $tool"; found=1; fi
    done
    for path in /wheels /src /root/.cache /var/cache/uv /opt/uv; do
      if [ -e "$path" ]; then echo "found $path"; found=1; fi
    done
    # The base image keeps ensurepip'"'"'s own wheels; only what our layers added counts.
    if [ -n "$(find /opt /var/lib/pulseplan /run /tmp /root -xdev -name "*.whl" -print -quit)" ]; then
      echo "found a wheel file"; found=1
    fi
    echo "precompiled modules in the venv: $(find /opt/pulseplan -name "*.pyc" | wc -l) .pyc files"
    [ -e /opt/pulseplan/bin/pip ] && { echo "found pip in the venv"; found=1; }
    python -c "import sys; print(\"python\", sys.version.split()[0])"
    /opt/pulseplan/bin/python -c "import importlib.metadata as m; print(\"providers:\", sorted(e.name for e in m.entry_points(group=\"pulseplan\")))"
    echo "image size on disk: $(du -sxm / | cut -f1) MB"
    exit $found'
  echo "no compiler, build tool, wheel or cache found"

  say "production without secrets must refuse to start"
  local out line status=0
  out=$("${BA[@]}" run --isolation chroot "$c" -- pulseplan serve 2>&1) || status=$?
  while IFS= read -r line; do echo "  $line"; done <<<"$out"
  echo "exit status: $status"
  if [ "$status" = 0 ] || ! grep -q "TOKEN_ENCRYPTION_KEY is not set" <<<"$out"; then
    echo "error: expected a refusal naming TOKEN_ENCRYPTION_KEY" >&2
    exit 1
  fi

  JWT_SECRET=$(secret)
  serve_and_probe "$c" development PULSEPLAN_ENV=development "SUPABASE_JWT_SECRET=$JWT_SECRET"
  echo "development secrets were generated into the data dir:"
  "${BA[@]}" run --isolation chroot "$c" -- sh -c 'ls -l /var/lib/pulseplan | tail -n +2'

  local prod
  new_container
  prod=$NEW_CONTAINER
  serve_and_probe "$prod" production \
    "TOKEN_ENCRYPTION_KEY=$(python3 -c 'import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())')" \
    "SECRET_KEY=$(secret)" "SUPABASE_JWT_SECRET=$(secret)" \
    PUBLIC_BASE_URL=https://pulseplan.invalid PULSEPLAN_PROVIDERS=
  local ro
  new_container
  ro=$NEW_CONTAINER
  readonly_pid1_run "$ro" readonly PULSEPLAN_ENV=development
  if [ -n "${SMOKE_REDIS_URL:-}" ]; then
    local multi
    new_container
    multi=$NEW_CONTAINER
    readonly_pid1_run "$multi" workers PULSEPLAN_ENV=development PULSEPLAN_WORKERS=2 LOG_FORMAT=json \
      "REDIS_URL=$SMOKE_REDIS_URL" REDIS_KEY_PREFIX=pulseplan:smoke: \
      PROMETHEUS_MULTIPROC_DIR=/run/pulseplan/metrics
  fi
  say "smoke test passed"
}

if [ "$build" = 1 ]; then build_image; fi
if [ "$smoke" = 1 ]; then smoke_test; fi
