#!/usr/bin/env bash
# Command-line and config-file handling of mvrefreshd. Needs no server: every
# case here must be decided before the daemon tries to connect.
#   MVREFRESHD=build/mvrefreshd bash tests/test_cli.sh
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${MVREFRESHD:-$root/build/mvrefreshd}
if [ ! -x "$bin" ]; then
    echo "mvrefreshd not found at $bin (set MVREFRESHD)" >&2
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/mvr-cli.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
out=$work/stdout
err=$work/stderr
status=0

# run ARGS...: run the daemon with a time limit (a daemon that wrongly
# accepted its arguments would otherwise try to connect and keep running).
# No server is reachable, whatever the caller's environment says.
run() {
    env PGHOST="$work/no-server" PGPORT=1 PGCONNECT_TIMEOUT=1 \
        timeout 10 "$bin" "$@" >"$out" 2>"$err"
    status=$?
}

ok() { passed=$((passed + 1)); echo "ok   - $1"; }
not_ok() {
    failed=$((failed + 1))
    echo "FAIL - $1: $2"
    echo "       stdout: $(head -c 400 "$out")"
    echo "       stderr: $(head -c 400 "$err")"
}

# check NAME EXPECTED_STATUS [GREP_PATTERN [stdout|stderr|any]]
check() {
    local name=$1 want=$2 pattern=${3:-} where=${4:-any} files
    if [ "$status" -ne "$want" ]; then
        not_ok "$name" "exit status $status, expected $want"
        return
    fi
    if [ -n "$pattern" ]; then
        case $where in
            stdout) files=("$out") ;;
            stderr) files=("$err") ;;
            *) files=("$out" "$err") ;;
        esac
        if ! grep -qE -- "$pattern" "${files[@]}"; then
            not_ok "$name" "no match for /$pattern/ in $where"
            return
        fi
    fi
    ok "$name"
}

run -h
check "-h prints usage and exits 0" 0 '[Uu]sage'

run --help
check "--help prints usage and exits 0" 0 '[Uu]sage'

run -V
check "-V prints a version and exits 0" 0 '[0-9]+\.[0-9]+'

run --no-such-option
check "unknown option exits 64" 64

run -Z
check "unknown short option exits 64" 64

run --dsn
check "--dsn without a value exits 64" 64

run --config /nonexistent/mvrefresh.ini
check "missing config file exits 78" 78

conf=$work/unknown-key.ini
printf '[mvrefreshd]\nmax_concurrent = 2\nno_such_key = 1\n' >"$conf"
run --config "$conf"
check "unknown key exits 78 and names FILE:3:" 78 "$conf:3:" stderr

conf=$work/bad-duration.ini
printf '[mvrefreshd]\ndebounce = 10 parsecs\n' >"$conf"
run --config "$conf"
check "bad duration exits 78 and names FILE:2:" 78 "$conf:2:" stderr

conf=$work/bad-number.ini
printf '[mvrefreshd]\nmax_concurrent = banana\n' >"$conf"
run --config "$conf"
check "non-numeric max_concurrent exits 78" 78 "$conf:2:" stderr

# A malformed dsn can never connect: refused at start, without echoing the password.
run --dsn 'postgresql://bob:s3cr3t-pw@[bad/db'
check "malformed --dsn exits 64" 64 'invalid dsn' stderr
if grep -q 's3cr3t-pw' "$out" "$err"; then
    not_ok "malformed --dsn does not print the password" "password found in output"
else
    ok "malformed --dsn does not print the password"
fi

conf=$work/bad-dsn.ini
printf '[mvrefreshd]\ndsn = host=x password=s3cr3t-pw dbname\n' >"$conf"
run --config "$conf"
check "malformed dsn in the file exits 78" 78 'invalid dsn' stderr
if grep -q 's3cr3t-pw' "$out" "$err"; then
    not_ok "malformed dsn in the file does not print the password" "password found in output"
else
    ok "malformed dsn in the file does not print the password"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
