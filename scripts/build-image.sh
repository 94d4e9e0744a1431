#!/usr/bin/env bash
# Builds wsherd's container image (deploy/Dockerfile) with buildah, no daemon and no
# container registry, then runs a short load from it: the image's wsherd, as the
# image's user, loads a `wsherd serve` on loopback and its JSON is checked.
#
# Usage: scripts/build-image.sh [TAG]        (default localhost/wsherd:<version>)
#
# The Dockerfile's base, `debian:bookworm-slim`, is taken from buildah's store when
# it is there (pulled, or made by an earlier run); otherwise it is made here from
# Debian's archive: a minbase bootstrap of Debian 12 with the host's apt sources
# (bookworm, bookworm-updates, bookworm-security), committed under that name. Both
# stages then reach only Debian's archive and crates.io. On a machine with Docker
# and a registry, `docker build -f deploy/Dockerfile .` does the same from the
# official base.
#
# Storage is buildah's vfs driver (no overlay mounts needed) under IMAGE_STORE
# (default target/image-store; about 3 GB while building), RUN steps use chroot
# isolation. Installs buildah and debootstrap from Debian's archive when missing
# (root). Behind a TLS-inspecting proxy cargo gets the host's CA bundle as a
# build secret (CARGO_CA, default /etc/ssl/certs/ca-certificates.crt), never a
# layer of the image. IMAGE_KEEP_STORE=0 deletes the store afterwards (CI).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
say() { echo "build-image: $*" >&2; }
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
TAG=${1:-localhost/wsherd:$VERSION}
BASE=docker.io/library/debian:bookworm-slim
STORE=${IMAGE_STORE:-$ROOT/target/image-store}
CA=${CARGO_CA:-/etc/ssl/certs/ca-certificates.crt}

need=()
command -v buildah >/dev/null 2>&1 || need+=(buildah)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if ((${#need[@]})); then
    say "installing ${need[*]} from Debian's archive"
    [[ $(id -u) == 0 ]] || { say "installing needs root; or install ${need[*]} yourself"; exit 1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null; }
fi

mkdir -p "$STORE"
B=(buildah --storage-driver vfs --root "$STORE/root" --runroot "$STORE/run")
export BUILDAH_ISOLATION=chroot
cleanup() {
    [[ -n ${CTR:-} ]] && "${B[@]}" rm "$CTR" >/dev/null 2>&1 || true
    [[ -n ${SERVER_PID:-} ]] && kill "$SERVER_PID" 2>/dev/null || true
    rm -rf "${ROOTFS:-/nonexistent}"
    if [[ ${IMAGE_KEEP_STORE:-1} == 0 ]]; then
        "${B[@]}" rm --all >/dev/null 2>&1 || true
        rm -rf "$STORE"
    fi
}
trap cleanup EXIT

if "${B[@]}" inspect --type image "$BASE" >/dev/null 2>&1; then
    say "base $BASE: from the store"
else
    # Debian 12's sources as the host has them: the official image lists the same
    # three suites. Another host names its mirrors in DEBIAN_SOURCES (a deb822 file).
    SOURCES=${DEBIAN_SOURCES:-/etc/apt/sources.list.d/debian.sources}
    grep -q 'bookworm-security' "$SOURCES" 2>/dev/null || {
        say "$SOURCES lists no bookworm-security suite: set DEBIAN_SOURCES to a deb822 file with bookworm, bookworm-updates and bookworm-security"
        exit 1
    }
    MIRROR=$(awk '/^URIs:/ {print $2; exit}' "$SOURCES")
    say "base $BASE: bootstrapping Debian 12 (minbase) from the host's mirror"
    ROOTFS=$(mktemp -d "$STORE/rootfs.XXXXXX")
    debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >"$STORE/debootstrap.log" 2>&1 \
        || { say "debootstrap failed:"; tail -5 "$STORE/debootstrap.log" >&2; exit 1; }
    rm -f "$ROOTFS/etc/apt/sources.list"
    cp "$SOURCES" "$ROOTFS/etc/apt/sources.list.d/debian.sources"
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
    CTR=$("${B[@]}" from scratch)
    MNT=$("${B[@]}" mount "$CTR")
    cp -a "$ROOTFS/." "$MNT/"
    "${B[@]}" umount "$CTR" >/dev/null
    "${B[@]}" config --cmd /bin/bash "$CTR"
    "${B[@]}" commit -q "$CTR" "$BASE" >/dev/null
    "${B[@]}" rm "$CTR" >/dev/null
    CTR=
    rm -rf "$ROOTFS"
fi

SECRET=()
[[ -s $CA ]] && SECRET=(--secret "id=cargo-ca,src=$CA")
say "building $TAG from deploy/Dockerfile"
start=$(date +%s)
"${B[@]}" bud --layers=false --pull=false "${SECRET[@]}" \
    --ignorefile deploy/Dockerfile.dockerignore -f deploy/Dockerfile -t "$TAG" . \
    >"$STORE/build.log" 2>&1 \
    || { say "the build failed ($STORE/build.log):"; tail -20 "$STORE/build.log" >&2; exit 1; }
say "built in $(($(date +%s) - start)) s"

# The image as a pod runs it: its entrypoint, its user, no shell.
CTR=$("${B[@]}" from --pull=false "$TAG")
user=$("${B[@]}" inspect --type container --format '{{.OCIv1.Config.User}}' "$CTR")
entry=$("${B[@]}" inspect --type container --format '{{.OCIv1.Config.Entrypoint}}' "$CTR")
[[ $user == 10001:10001 ]] || { say "the image's user is '$user', not 10001:10001"; exit 1; }
[[ $entry == "[/usr/local/bin/wsherd]" ]] || { say "the image's entrypoint is $entry"; exit 1; }
uid=$("${B[@]}" run "$CTR" -- id -u)
[[ $uid == 10001 ]] || { say "the image's processes run as user $uid, not 10001"; exit 1; }
say "image: user $user, entrypoint $entry, $("${B[@]}" run "$CTR" -- /usr/local/bin/wsherd --version)"

# A short load from the image against a server on loopback (the host's network:
# chroot isolation shares it), its results read from standard output as the
# launcher reads an agent's log.
cargo build --release --quiet
PORT=19590
target/release/wsherd serve --addr "127.0.0.1:$PORT" --shards 1 -q >"$STORE/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.05
done
"${B[@]}" run "$CTR" -- /usr/local/bin/wsherd run "ws://127.0.0.1:$PORT/" -c 20 -d 2s \
    --shards 1 --agent 1/2 --json - -q >"$STORE/agent.json" 2>"$STORE/agent.err" \
    || { say "the load from the image failed:"; tail -5 "$STORE/agent.err" >&2; exit 1; }
python3 - "$STORE/agent.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c, m = r["connections"], r["messages"]
assert c["established"] == 10, f"agent 1/2 of 20 connections opened {c['established']}, not 10"
assert m["sent"] > 0 and m["received"] > 0, f"sent {m['sent']}, received {m['received']}"
assert m["received"] + m["in_flight_at_stop"] + m["failed"] == m["sent"], f"unbalanced: {m}"
print(f"build-image: the image's wsherd, agent 1/2: {c['established']} connections, "
      f"{m['sent']:,} messages sent, {m['received']:,} echoed", file=sys.stderr)
PY
say "ok: $TAG"
