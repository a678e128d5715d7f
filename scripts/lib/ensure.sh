# shellcheck shell=bash
# Helpers that install what the checks need when it is missing, so scripts pass on a fresh
# Debian machine. Sourced by scripts/test and scripts/lab.

_apt_updated=""

# ensure_apt PKG...: install the Debian packages that are not installed yet.
ensure_apt() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing Debian packages: ${missing[*]}" >&2
    if [ -z "$_apt_updated" ]; then
        apt-get update -qq
        _apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ensure_cargo_tool BINARY CRATE VERSION: cargo install a pinned tool unless that version is there.
ensure_cargo_tool() {
    local bin=$1 crate=$2 version=$3
    if command -v "$bin" >/dev/null && "$bin" --version 2>/dev/null | grep -q "$version"; then
        return 0
    fi
    echo "installing $crate $version (cached in ~/.cargo/bin afterwards)" >&2
    cargo install --locked --quiet "$crate" --version "$version"
}

# ensure_pip MODULE PACKAGE VERSION: pip install a pinned Python package unless MODULE imports.
# Debian 12's python3 is "externally managed": fall back to --break-system-packages there.
ensure_pip() {
    local module=$1 pkg=$2 version=$3
    python3 -c "import $module" 2>/dev/null && return 0
    echo "installing Python package $pkg $version" >&2
    python3 -m pip install --quiet "$pkg==$version" 2>/dev/null ||
        python3 -m pip install --quiet --break-system-packages "$pkg==$version"
}
