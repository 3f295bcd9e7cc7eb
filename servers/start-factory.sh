#!/usr/bin/env bash
# Start an openmdao_like object server (ObjServerFactory) in the background.
#
# usage: start-factory.sh [DIR] [-- extra `server start` options]
#
# DIR (default ./factory) holds everything the server uses:
#   DIR/key          the owner key (mode 0600), created here if missing
#   DIR/server.json  {host, port, pid, tls}, written once the server listens, removed on stop
#   DIR/server.log   the server's log (INFO and up)
#   DIR/server.out   its stdout and stderr
#   DIR/root/        the objects' directories
#
# Environment: OML_HOST (default 127.0.0.1), OML_PORT (default 0: a free port),
# OML_ALLOWED_HOSTS (space-separated; default: loopback only), OML_ALLOWED_TYPES
# (space-separated globs; default: any installed component), OML_CLI (the command, default
# openmdao-like), OML_START_TIMEOUT (seconds to wait for the server file, default 60).
#
# Example:
#   OML_HOST=10.0.0.5 OML_PORT=18861 OML_ALLOWED_HOSTS=10.0.0.0/24 \
#       servers/start-factory.sh /srv/oml -- --allowed-types 'paraboloid_plugin.*'

set -euo pipefail
umask 077  # the key, log and objects' files are for this user only

DIR=factory
if [[ $# -gt 0 && $1 != -- ]]; then
    DIR=$1
    shift
fi
if [[ $# -gt 0 && $1 == -- ]]; then
    shift
fi

HOST=${OML_HOST:-127.0.0.1}
PORT=${OML_PORT:-0}
TIMEOUT=${OML_START_TIMEOUT:-60}
read -r -a CLI <<< "${OML_CLI:-openmdao-like}"

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
KEY=$DIR/key
SERVER_FILE=$DIR/server.json
LOG=$DIR/server.log
OUT=$DIR/server.out

if [[ -e $SERVER_FILE ]]; then
    echo "start-factory.sh: $SERVER_FILE exists: a server may be running there." >&2
    echo "  stop it:   ${CLI[*]} server stop --server-file $SERVER_FILE" >&2
    echo "  or, if it is stale, remove the file." >&2
    exit 1
fi

if [[ ! -e $KEY ]]; then
    "${CLI[@]}" server keygen "$KEY"
fi

ARGS=(server start --host "$HOST" --port "$PORT" --key-file "$KEY" --root "$DIR/root"
      --server-file "$SERVER_FILE" --log-file "$LOG")
if [[ -n ${OML_ALLOWED_HOSTS:-} ]]; then
    read -r -a hosts <<< "$OML_ALLOWED_HOSTS"
    ARGS+=(--allowed-hosts "${hosts[@]}")
fi
if [[ -n ${OML_ALLOWED_TYPES:-} ]]; then
    read -r -a types <<< "$OML_ALLOWED_TYPES"
    ARGS+=(--allowed-types "${types[@]}")
fi
ARGS+=("$@")

# Detached from this shell: no terminal, its own output file, survives the shell's exit.
nohup "${CLI[@]}" "${ARGS[@]}" > "$OUT" 2>&1 < /dev/null &
PID=$!

deadline=$((SECONDS + TIMEOUT))
until [[ -s $SERVER_FILE ]] && grep -q "^listening on" "$OUT"; do
    if ! kill -0 "$PID" 2> /dev/null; then
        echo "start-factory.sh: the server exited before listening; its output:" >&2
        tail -n 20 "$OUT" >&2
        exit 1
    fi
    if ((SECONDS >= deadline)); then
        echo "start-factory.sh: no server file after ${TIMEOUT} s; stopping pid $PID" >&2
        kill "$PID" 2> /dev/null || true
        tail -n 20 "$OUT" >&2
        exit 1
    fi
    sleep 0.1
done

cat <<EOF
$(grep -m 1 "^listening on" "$OUT")
server file: $SERVER_FILE
log:         $LOG

connect from Python (copy the key file to the client over a secure channel):
    from openmdao_like.remote import connect_to_server
    factory = connect_to_server(server_file='$SERVER_FILE', key_file='$KEY')

status:  ${CLI[*]} server status --server-file $SERVER_FILE --key-file $KEY
stop:    ${CLI[*]} server stop --server-file $SERVER_FILE
EOF
