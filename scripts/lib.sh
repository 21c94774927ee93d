# Shared by the scripts in scripts/: small, idempotent steps. Sourced, not run.
# shellcheck shell=bash

SAFEEVAL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOCKER_SOCK=${DOCKER_SOCK:-/var/run/docker.sock}

say() { printf '==> %s\n' "$*" >&2; }

# Debian packages the build, the tests and the base images need.
SAFEEVAL_PACKAGES=(
    build-essential cmake pkg-config git curl ca-certificates
    libgrpc-dev protobuf-c-compiler libprotobuf-c-dev
    libcurl4-openssl-dev libcjson-dev libarchive-dev libseccomp-dev libcmocka-dev libsystemd-dev
    libmicrohttpd-dev libssl-dev grpc-proto
    docker.io debootstrap
    python3 python3-grpcio python3-grpc-tools python3-protobuf
    python3-venv python3-setuptools python3-wheel python3-pytest
)

install_packages() {
    local missing=() p
    for p in "${SAFEEVAL_PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        missing+=(nodejs npm)
    fi
    if [ ${#missing[@]} -eq 0 ]; then
        say "packages: all present"
        return 0
    fi
    say "packages: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

engine_answers() {
    curl -sf --max-time 2 --unix-socket "$DOCKER_SOCK" http://d/_ping >/dev/null 2>&1
}

# Starts dockerd in the background when no engine answers on $DOCKER_SOCK.
ensure_dockerd() {
    if engine_answers; then
        say "docker engine: answering on $DOCKER_SOCK"
        return 0
    fi
    say "docker engine: starting dockerd (log: /var/log/safeeval-dockerd.log)"
    nohup dockerd >/var/log/safeeval-dockerd.log 2>&1 &
    local i
    for i in $(seq 1 60); do
        engine_answers && return 0
        sleep 1
    done
    tail -n 20 /var/log/safeeval-dockerd.log >&2
    say "docker engine: dockerd did not answer within 60 s"
    return 1
}

# ensure_base_images SUITE...: the local base images of these Debian suites
# (bookworm = safeeval/python:3.11, trixie = :3.13, bullseye = :3.9); each
# takes a few minutes the first time, nothing after. One more later:
#   docker/base/build-base trixie
ensure_base_images() {
    local suite
    for suite in "$@"; do
        "$SAFEEVAL_ROOT/docker/base/build-base" "$suite"
    done
}

# prepare_machine WHO SUITE...: as root, the packages, a running engine and
# the base images of these suites: what every command here needs before it
# builds.
prepare_machine() {
    local who=$1
    shift
    [ "$(id -u)" = 0 ] || { echo "$who: run as root (apt-get, dockerd)" >&2; exit 1; }
    install_packages
    ensure_dockerd
    ensure_base_images "$@"
}

# build_tree DIR [cmake args...]: configure and build into DIR.
build_tree() {
    local dir=$1
    shift
    say "build: $dir $*"
    cmake -S "$SAFEEVAL_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
    cmake --build "$dir" -j"$(nproc)"
}
