#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine, idempotently: Debian packages
# (Java, Maven, MariaDB) when missing, the venv with the locked Python set, the Maven jars.
# Downloads are cached only in git-ignored places (.venv/, var/) and the tools' own caches.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[bootstrap] %s\n' "$*"; }

missing=()
# A JDK, not only a JRE: jvm/udf (the pipeline's own Spark functions) is compiled here.
command -v javac >/dev/null 2>&1 || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
command -v mariadbd >/dev/null 2>&1 || missing+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || missing+=(mariadb-client)
# Headless browser of the UI tests (berka_assets_tests/dev): Debian's, never a downloaded one.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then apt=(apt-get); else apt=(sudo apt-get); fi
  if ! { "${apt[@]}" update -q >/dev/null &&
         DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q --no-install-recommends \
           "${missing[@]}" >/dev/null; }; then
    say "could not install ${missing[*]} (are Debian's package servers reachable?)" >&2
    exit 1
  fi
fi

python_bin=${PYTHON:-}
if [ -z "$python_bin" ]; then
  for candidate in python3.11 python3.12 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python_bin=$candidate; break; fi
  done
fi
if ! "$python_bin" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 13)))'; then
  say "Python 3.11 or 3.12 is required; found $("$python_bin" --version 2>&1). Set PYTHON=..." >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $python_bin"
  "$python_bin" -m venv .venv
fi
stamp=$(cat setup.py constraints.txt | sha256sum | cut -c1-16)
if [ "$(cat .venv/.installed 2>/dev/null)" != "$stamp" ]; then
  say "installing Python packages (locked by constraints.txt)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
  echo "$stamp" > .venv/.installed
fi

say "resolving JVM jars from Maven Central and building jvm/udf (once)"
.venv/bin/python -c '
from berka_stack import prereqs
prereqs.check_java()
for jar_set in prereqs.JAR_SETS:
    print("  ", jar_set, "->", prereqs.ensure_jars(jar_set))
print("   udf ->", prereqs.ensure_udf_jar())
'
say "ready"
