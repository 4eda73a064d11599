#!/usr/bin/env bash
# Makes sure a virtualenv holds MaestroNG 0.8.3, the oracle of the parity test
# (tests/bed/parity.rs), and prints the path of its python. The venv lives in
# $MAESTRO_MAESTRONG_VENV (default target/maestrong-venv) and is made once; later runs only
# check that MaestroNG imports. Its docker-py 1.10 breaks with requests >= 2.29 and urllib3 2,
# and setuptools gives it the distutils it still imports.
set -euo pipefail
venv=${MAESTRO_MAESTRONG_VENV:-$(cd "$(dirname "$0")/../.." && pwd)/target/maestrong-venv}
python=$venv/bin/python
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if ! "$python" -c 'import maestro.loader, maestro.maestro' >/dev/null 2>&1; then
    echo "installing MaestroNG 0.8.3 into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q 'maestro-ng==0.8.3' 'requests<2.29' 'urllib3<2' 'setuptools<70' >&2
    "$python" -c 'import maestro.loader, maestro.maestro' >&2
fi
echo "$python"
