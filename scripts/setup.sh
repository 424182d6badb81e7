#!/usr/bin/env bash
# One set-up path for a fresh Debian bookworm machine (see ../shared/ENVIRONMENT.md for why each pin).
# Idempotent: a second run only checks and returns within seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

# Debian's QGIS (3.22) brings qgis.core, PyQt5 through qgis.PyQt, osgeo.gdal and qgis_process.
apt_pkgs=()
/usr/bin/python3 -c "import qgis.core" 2>/dev/null || apt_pkgs+=(python3-qgis qgis-providers)
# qgis_process (headless Processing) ships in the desktop package
command -v qgis_process >/dev/null 2>&1 || apt_pkgs+=(qgis)
command -v xvfb-run >/dev/null 2>&1 || apt_pkgs+=(xvfb)
/usr/bin/python3 -c "import ensurepip" 2>/dev/null || apt_pkgs+=(python3-venv)
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing Debian packages: ${apt_pkgs[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
fi

# Debian's python sees QGIS; the venv sees Debian's site packages (qgis, PyQt5, osgeo).
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
stamp=.venv/.sarmae-installed
constraints=constraints/debian-qgis.txt
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$constraints" -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade "pip>=23.2"
  # [dev] = [train,export] + test tools; the constraints hold this machine's pins (numpy<2 for
  # Debian's GDAL, attrs, torch/torchvision built together), kept out of the package metadata.
  .venv/bin/python -m pip install -q -c "$constraints" -e ".[dev]"
  touch "$stamp"
fi
