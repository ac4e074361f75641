# Sourced by servers.sh: Debian's Python packages for the interop tests
# (a real Celery, kombu, redis-py and requests), installed when absent.

need_python() {
  :
}
