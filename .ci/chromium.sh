# Sourced by .ci/run: Debian's chromium for the dashboard's real-browser test (headless, driven over the
# DevTools pipe: no driver download). Installed with apt-get when missing, as postgres.sh does for PostgreSQL.

ensure_chromium() {
    if command -v chromium >/dev/null 2>&1; then return; fi
    echo "ci: installing Chromium (Debian package)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    command -v chromium >/dev/null 2>&1 || { echo "ci: no chromium binary after installing" >&2; return 1; }
}
