#!/usr/bin/env bash
# The system programs the real-component tests use: redis-server (result cache), chromium and
# chromedriver (the browser UI tests). `make test` runs this first: where one is missing it installs
# it with apt-get when it can (root, or passwordless sudo); where it cannot, it prints one line naming
# what is missing and the command that installs it, and the tests that need it are skipped with that reason.
# Never fails: a missing service skips tests, it does not break the run.
set -u
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
{ command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; } || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# optional: docker-compose for the compose file's static check (tests/test_serve_docker.py skips without it)
optional=()
{ command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1; } || optional+=(docker-compose)
[ ${#need[@]} -eq 0 ] && [ ${#optional[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo="none"; fi
fi
if [ "$sudo" != "none" ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >/dev/null 2>&1
  if [ ${#optional[@]} -gt 0 ]; then
    $sudo apt-get install -y -qq --no-install-recommends "${optional[@]}" >/dev/null 2>&1 || true
  fi
  [ ${#need[@]} -eq 0 ] && exit 0
  echo "make test: installing ${need[*]} for the real-component tests (apt-get)"
  if $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1; then
    exit 0
  fi
  echo "make test: apt-get could not install ${need[*]}; their tests will be skipped"
  exit 0
fi
[ ${#need[@]} -eq 0 ] && exit 0
echo "make test: missing ${need[*]}; their tests will be skipped (install: sudo apt-get install ${need[*]})"
exit 0
