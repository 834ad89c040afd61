# Sourced by setup.sh (`make test`) and demo.sh (`make demo`): virtual environments built once.
# The caller may define log(); otherwise messages get a [venv] prefix.
declare -F log >/dev/null || log() { printf '[venv] %s\n' "$*"; }

# ensure_venv DIR INSTALL KEY_FILES...: build DIR with the function INSTALL unless it was already
# built from the same KEY_FILES (a stamp named by their hash).
ensure_venv() {
  local dir="$1" install="$2"; shift 2
  local stamp
  stamp="$dir/.installed-$(cat "$@" | sha256sum | cut -c1-16)"
  [ -e "$stamp" ] && return 0
  log "creating the virtual environment $dir"
  python3 -m venv "$dir"
  "$dir/bin/python" -m pip install -q --upgrade pip
  "$install" "$dir/bin/python"
  rm -f "$dir"/.installed-*
  touch "$stamp"
}
