# Sourced by servers.sh: Debian's Python packages for the interop tests
# (a real Celery, kombu, redis-py and requests), installed when absent.

need_python() {
  local py=/usr/bin/python3 dist=/usr/lib/python3/dist-packages pkg
  need_pkg python3 "$py"
  # need_pkg skips a package whose command or file exists; for a Python
  # module that is its package directory (a directory tests as -x).
  for pkg in celery kombu redis requests; do
    need_pkg "python3-$pkg" "$dist/$pkg"
    "$py" -c "import $pkg" || die "$py cannot import $pkg from python3-$pkg"
  done
  # The interop tests run this interpreter, and Celery's worker as
  # "python3 -m celery": Debian's package installs no celery command.
  export CONVEYOR_PYTHON="$py"
}
