# Sourced by the set-up scripts: `apt_install PKG...` installs Debian packages (sudo when not root),
# running `apt-get update` once per script.
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_updated=0
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "apt-get not found: install $* with your system's package manager" >&2; return 1
  fi
  if [ -n "$SUDO" ] && ! command -v sudo >/dev/null 2>&1; then
    echo "installing $* needs root: run as root or install sudo" >&2; return 1
  fi
  if [ $apt_updated -eq 0 ]; then $SUDO apt-get update -qq >&2; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}
