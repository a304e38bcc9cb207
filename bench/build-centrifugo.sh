#!/usr/bin/env bash
# bench/build-centrifugo.sh: builds the Centrifugo server the load generator
# is compared and tested against, once, and prints the binary's path.
#
#   bench/build-centrifugo.sh [DIR]    # default DIR: bench/.cache/bin
#
# Centrifugo is not a dependency of the imload module: it is built from the
# Go module proxy with `go install github.com/centrifugal/centrifugo/v6@VERSION`
# (its version stamped with -ldflags, as in its release builds) into DIR,
# which is gitignored. An existing binary of the right version is kept. The
# build goes to a temporary directory first and is renamed into place, so
# concurrent callers (test packages, compare.sh) never see half a binary.
set -euo pipefail

VERSION=6.9.1
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${1:-$ROOT/bench/.cache/bin}
BIN=$DIR/centrifugo

if [[ -x $BIN ]] && "$BIN" version 2>/dev/null | grep -q "Centrifugo v$VERSION "; then
	echo "$BIN"
	exit 0
fi
command -v go >/dev/null || { echo "build-centrifugo.sh: go is not installed" >&2; exit 1; }
mkdir -p "$DIR"
TMP=$(mktemp -d "$DIR/.build.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
echo "build-centrifugo.sh: building Centrifugo $VERSION into $DIR (go install, a few minutes the first time)" >&2
# Outside any module: GOFLAGS such as -mod=vendor must not apply to it.
(cd "$TMP" && GOFLAGS=-buildvcs=false GOBIN="$TMP" go install \
	-ldflags="-X github.com/centrifugal/centrifugo/v6/internal/build.Version=$VERSION" \
	"github.com/centrifugal/centrifugo/v6@v$VERSION") >&2
mv -f "$TMP/centrifugo" "$BIN"
"$BIN" version | grep -q "Centrifugo v$VERSION " || { echo "build-centrifugo.sh: $BIN does not say version $VERSION" >&2; exit 1; }
echo "$BIN"
