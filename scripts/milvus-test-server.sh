#!/usr/bin/env bash
# Starts the Milvus servers the Milvus tests (tests/milvus.rs) and benchmarks run against, from
# registry packages only: PyPI `milvus` 2.3.5 (the real Milvus standalone binary) and
# `milvus-lite` 3.2.2 (the tests start their own Lite servers from it). Installs them into a
# virtualenv on first use.
#
#   eval "$(scripts/milvus-test-server.sh start)"   # prints IVT_TEST_MILVUS_URI, IVT_TEST_MILVUS_LITE
#   cargo test --test milvus
#   scripts/milvus-test-server.sh stop
#
# Environment: IVT_MILVUS_VENV (default target/milvus-venv), IVT_MILVUS_DATA (default
# target/milvus-data), IVT_MILVUS_PORT (default 19530).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${IVT_MILVUS_VENV:-$PWD/target/milvus-venv}
DATA=${IVT_MILVUS_DATA:-$PWD/target/milvus-data}
PORT=${IVT_MILVUS_PORT:-19530}
PIDFILE=$DATA/server.pid

# The wrapper prints its banner ("Ctrl+C to exit") once Milvus answers its health check, and
# gives up with "timeout" otherwise.
healthy() { grep -q "Ctrl+C to exit" "$DATA/server.log" 2>/dev/null; }
failed() { grep -q "started timeout" "$DATA/server.log" 2>/dev/null; }

port_busy() {
  python3 -c "import socket,sys; s=socket.socket(); sys.exit(0 if s.connect_ex(('127.0.0.1', $PORT)) == 0 else 1)"
}

case "${1:-start}" in
start)
  if [ ! -x "$VENV/bin/milvus-server" ] || [ ! -x "$VENV/bin/milvus-lite" ] ||
    ! "$VENV/bin/python3" -c "import pymilvus" 2>/dev/null; then
    # milvus-lite imports pymilvus without declaring it.
    echo "installing milvus 2.3.5 and milvus-lite 3.2.2 into $VENV" >&2
    if python3 -m venv "$VENV" >&2; then
      "$VENV/bin/pip" install -q --disable-pip-version-check milvus==2.3.5 milvus-lite==3.2.2 pymilvus==3.0.2 >&2
    else
      # No venv module (e.g. Debian without python3-venv): a plain --prefix install.
      python3 -m pip install -q --disable-pip-version-check --prefix "$VENV" \
        milvus==2.3.5 milvus-lite==3.2.2 pymilvus==3.0.2 >&2
    fi
  fi
  lite_env=""
  if [ ! -f "$VENV/pyvenv.cfg" ]; then
    site=$(find "$VENV/lib" -maxdepth 2 -name site-packages -type d | head -1)
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    # The tests start milvus-lite themselves: they need the path too.
    lite_env="export PYTHONPATH=$PYTHONPATH"
  fi
  mkdir -p "$DATA"
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "Milvus already running (pid $(cat "$PIDFILE"))" >&2
  else
    if port_busy; then
      echo "port $PORT is already in use: stop what listens there or set IVT_MILVUS_PORT" >&2
      exit 1
    fi
    # Its own session, so that `stop` ends the wrapper and the server it spawns together.
    setsid "$VENV/bin/milvus-server" --data "$DATA" --proxy-port "$PORT" >"$DATA/server.log" 2>&1 &
    echo $! >"$PIDFILE"
  fi
  for _ in $(seq 1 240); do
    if healthy || failed; then break; fi
    sleep 1
  done
  if ! healthy; then
    tail -40 "$DATA/server.log" >&2
    echo "Milvus did not become healthy in 240 s" >&2
    exit 1
  fi
  echo "Milvus standalone ready on 127.0.0.1:$PORT" >&2
  echo "export IVT_TEST_MILVUS_URI=http://127.0.0.1:$PORT"
  echo "export IVT_TEST_MILVUS_LITE=$VENV/bin/milvus-lite"
  [ -z "$lite_env" ] || echo "$lite_env"
  ;;
stop)
  if [ -f "$PIDFILE" ]; then
    pid=$(cat "$PIDFILE")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
  fi
  ;;
*)
  echo "usage: $0 start|stop" >&2
  exit 2
  ;;
esac
