# Shared settings for Sluice's scripts: everything installed or built lives outside the
# clone, under $SLUICE_CACHE (default ~/.cache/sluice), so later runs reuse it.
# shellcheck shell=bash
export SLUICE_CACHE="${SLUICE_CACHE:-$HOME/.cache/sluice}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SLUICE_CACHE/target}"
export SLUICE_TOOLS="$SLUICE_CACHE/tools"
export SLUICE_VENV="$SLUICE_CACHE/venv"
export SLUICE_PYTHON="$SLUICE_VENV/bin/python"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export WRANGLER_SEND_METRICS=false WRANGLER_SEND_ERROR_REPORTS=false WRANGLER_HIDE_BANNER=true CLOUDFLARE_CF_FETCH_ENABLED=false
SLUICE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SLUICE_ROOT

step() { printf '\n==> %s\n' "$*"; }
elapsed() { printf '    (%ss)\n' "$(( $(date +%s) - $1 ))"; }
