#!/usr/bin/env bash
# Builds a stand-in for the Dockerfile's FROM image (node:20-bookworm-slim) on a machine that
# has a Docker engine but no registry to pull from: busybox, this machine's own node and npm
# with the libraries node links, its CA bundle, and a user `node` (uid 1000), as the official
# image has. `docker import`ed and tagged with the FROM name, so the project's Dockerfile
# builds unchanged. Used by `npm run test:docker`; never needed where images can be pulled.
#
# usage: scripts/docker-standin-base.sh [IMAGE]      (default: the Dockerfile's FROM)
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:-$(awk 'toupper($1) == "FROM" { print $2; exit }' Dockerfile)}
for tool in busybox node docker; do
  command -v "$tool" >/dev/null || { echo "docker-standin-base: $tool is needed (Debian: busybox-static, nodejs, docker.io)" >&2; exit 2; }
done

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 755 "$root"
mkdir -p "$root"/{bin,usr/bin,usr/local/bin,usr/local/lib/node_modules,etc/ssl/certs,tmp,root,home/node}
chmod 1777 "$root/tmp"

cp "$(command -v busybox)" "$root/bin/busybox"
for applet in $(busybox --list); do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
ln -s /bin/busybox "$root/usr/bin/env"

node_bin=$(readlink -f "$(command -v node)")
cp "$node_bin" "$root/usr/local/bin/node"
# The libraries node links, at the paths the loader looks for them.
for lib in $(ldd "$node_bin" | awk '/=>/ { print $3 } /^[ \t]*\/lib/ { print $1 }'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"

cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\nnode:x:1000:\n' >"$root/etc/group"
chown 1000:1000 "$root/home/node"

tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
  --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["node"]' \
  - "$image" >/dev/null
echo "docker-standin-base: built $image from this machine's node $(node --version)"
