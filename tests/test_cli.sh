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
# --foreground: without it timeout follows its SIGTERM with a SIGCONT, and a
# SIGCONT that lands while LeakSanitizer stops the exiting daemon to scan it
# cancels that stop: the sanitized build then spins for ever.
run() {
    env PGHOST="$work/no-server" PGPORT=1 PGCONNECT_TIMEOUT=1 \
        timeout --foreground -k 5 10 "$bin" "$@" >"$out" 2>"$err"
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

run -c ''
check "an empty config path exits 64" 64 '^mvrefreshd: --config: the path is empty' stderr

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

conf=$work/comments.ini
printf '[mvrefreshd]\n# a comment\n  ; another\ndebounce = 2s ; inline, after a space\nmax_wait = 40s\n' >"$conf"
run --check --config "$conf"
check "--check: comment lines and an inline '; ...' are comments; exit 0" 0 '^debounce = 2000ms$' stdout
check "--check prints every setting in effect" 0 '^max_wait = 40000ms$' stdout

conf=$work/hash-inline.ini
printf '[mvrefreshd]\ndebounce = 2s # not a comment after a value\n' >"$conf"
run --check --config "$conf"
check "a '#' after a value is part of it (README): exit 78 with FILE:2:" 78 "$conf:2:" stderr

# ---- metrics_listen ----

conf=$work/bad-listen.ini
printf '[mvrefreshd]\nmax_concurrent = 2\nmetrics_listen = localhost:9187\n' >"$conf"
run --check --config "$conf"
check "metrics_listen that is no numeric ADDRESS:PORT exits 78 and names FILE:3:" 78 \
    "^mvrefreshd: $conf:3: metrics_listen: .*localhost:9187" stderr

conf=$work/listen.ini
printf '[mvrefreshd]\nmetrics_listen = [::1]:9187\n' >"$conf"
run --check --config "$conf"
if grep -q 'without metrics' "$err"; then
    # A build without libmicrohttpd says so, at the line, rather than ignoring the key.
    check "metrics_listen in a build without metrics exits 78 and names FILE:2:" 78 \
        "^mvrefreshd: $conf:2: metrics_listen: .*without metrics" stderr
else
    check "--check prints metrics_listen" 0 '^metrics_listen = \[::1\]:9187$' stdout
    # An address this host does not have (TEST-NET-1): the start fails, naming it and why.
    printf '[mvrefreshd]\nmetrics_listen = 192.0.2.1:9187\n' >"$conf"
    run --config "$conf"
    check "metrics_listen that cannot be bound exits 1, naming the address and the reason" 1 \
        'cannot listen on 192\.0\.2\.1:9187: Cannot assign requested address' stderr
fi

conf=$work/secret.ini
printf '[mvrefreshd]\ndsn = dbname=x password=hunter2\n' >"$conf"
chmod 600 "$conf"
run --check --config "$conf"
if [ "$status" -eq 0 ] && ! grep -q hunter2 "$out" "$err" && grep -q '^dsn = (25 bytes, not shown)$' "$out"; then
    ok "--check shows the dsn by its length only, never a byte of the password"
else
    not_ok "--check shows the dsn by its length only, never a byte of the password" "status $status"
fi

# ---- malformed DSNs: refused at start without a byte of the password ----
# (libpq's own parse errors quote the text they choke on, often part of the password.)

pw=Zq9xW7kV3jQ # distinctive: no 3 bytes of it occur in a message by chance

# no_fragment NAME SECRET: no output holds 3 bytes in a row of SECRET (longer fragments contain
# one). The work directory's random name is masked first, so it cannot match by chance.
no_fragment() {
    local name=$1 secret=$2 i frags=$work/fragments found
    : >"$frags"
    for ((i = 0; i + 3 <= ${#secret}; i++)); do
        printf '%s\n' "${secret:i:3}" >>"$frags"
    done
    found=$(sed "s|$work|WORK|g" "$out" "$err" | grep -oF -f "$frags" | head -n 1)
    if [ -n "$found" ]; then
        not_ok "$name" "\"$found\" (from the password) in the output"
    else
        ok "$name"
    fi
}

# malformed NAME SECRET DSN WHAT: DSN is refused via --dsn (64) and via the file (78, naming
# FILE:LINE), with WHAT (a regex) in the message and no fragment of SECRET anywhere.
malformed() {
    local name=$1 secret=$2 dsn=$3 what=$4 conf=$work/malformed.ini
    run --dsn "$dsn"
    check "$name: --dsn exits 64" 64 "^mvrefreshd: --dsn: malformed dsn: $what" stderr
    no_fragment "$name: --dsn does not print the password" "$secret"
    printf '[mvrefreshd]\nmax_concurrent = 2\ndsn = %s\n' "$dsn" >"$conf"
    chmod 600 "$conf"
    run --config "$conf"
    check "$name: in the file exits 78" 78 "^mvrefreshd: $conf:3: malformed dsn: $what" stderr
    no_fragment "$name: in the file does not print the password" "$secret"
}

malformed "space in a password" "Zq9xW7 kV3jQ" "host=x password=Zq9xW7 kV3jQ dbname=d" \
    'a word without "=" at byte 24 \(after the value of "password"\)'
malformed "space in a password, then =" "Zq9xW7 kV3jQ=1" \
    "host=x password=Zq9xW7 kV3jQ=1 dbname=d" \
    'unknown keyword at byte 24 \(after the value of "password"\)'
malformed "space and = in a password" "Zq9xW7 =kV3jQ" "host=x password=Zq9xW7 =kV3jQ" \
    '"=" without a keyword at byte 24'
malformed "unterminated quote" "Zq9xW7 kV3jQ" "host=x password='Zq9xW7 kV3jQ" \
    'unterminated quote at byte 17 \(in the value of "password"\)'
malformed "value missing at the end" "$pw" "host=x password=$pw dbname" \
    'a word without "=" at byte 29'
malformed "bad percent-encoding in a URI password" "Zq9%zzW7kV3jQ" \
    "postgresql://u:Zq9%zzW7kV3jQ@h/db" 'bad percent-encoding at byte 19 \(in the password\)'
malformed "cut percent-encoding in a URI password" "${pw}%4" "postgresql://u:${pw}%4@h/db" \
    'bad percent-encoding at byte 27'
malformed "%00 in a URI password" "Zq9%00W7kV3jQ" "postgresql://u:Zq9%00W7kV3jQ@h/db" \
    'a percent-encoded zero byte at byte 19'
malformed "unterminated [ after a URI password" "$pw" "postgresql://bob:$pw@[bad/db" \
    'unterminated "\[" at byte 30'
malformed "empty [] after a URI password" "$pw" "postgresql://bob:$pw@[]/db" \
    'empty IPv6 address "\[\]" at byte 30'
malformed "a character after ] in a URI" "$pw" "postgresql://bob:$pw@[::1]x/db" \
    'unexpected character after "\]" at byte 35'
malformed "& in a URI query password" "Zq9xW7&kV3jQ" "postgresql://bob@h/db?password=Zq9xW7&kV3jQ" \
    'query parameter without "=" at byte 39 \(after the value of "password"\)'
malformed "& and = in a URI query password" "Zq9xW7&kV3jQ=1" \
    "postgresql://bob@h/db?password=Zq9xW7&kV3jQ=1" 'unknown query parameter at byte 39'
malformed "= in a URI query password" "Zq9x=W7kV3jQ" "postgresql://bob@h/db?password=Zq9x=W7kV3jQ" \
    'a second "=" at byte 36 \(in query parameter "password"\)'
malformed "bad percent-encoding in a URI query password" "Zq9%zzW7kV3jQ" \
    "postgresql://bob@h/db?password=Zq9%zzW7kV3jQ" \
    'bad percent-encoding at byte 35 \(in the value of "password"\)'
# libpq parses these, but part of the password lands in the port or the host, which its
# connection error would quote.
malformed "/ in a URI password (the rest lands in the port and the database)" "Zq9x/W7kV3jQ" \
    "postgresql://bob:Zq9x/W7kV3jQ@h/db" '"@" in the database name at byte 30; .*%2F'
malformed "/ in a URI password that starts with digits (a valid port)" "2024/W7kV3jQ" \
    "postgresql://bob:2024/W7kV3jQ@h/db" '"@" in the database name at byte 30; .*%2F'
malformed "@ in a URI password (the rest lands in the host)" "Zq9x@W7kV3jQ" \
    "postgresql://bob:Zq9x@W7kV3jQ@h/db" '"@" inside a host at byte 30; .*%40'
malformed "a port that is no number" "$pw" "postgresql://bob:$pw@host:sec/db" \
    'a port is not a number'

# ---- a password in a file others may read: a WARNING at start ----
# A malformed dsn (with its password) makes these runs end after the warning.

# no_warning NAME STATUS: exit STATUS and no WARNING.
no_warning() {
    if [ "$status" -ne "$2" ]; then
        not_ok "$1" "exit status $status, expected $2"
    elif grep -q WARNING "$err"; then
        not_ok "$1" "unexpected WARNING"
    else
        ok "$1"
    fi
}

conf=$work/exposed.ini
printf '[mvrefreshd]\ndsn = host=x password=Zq9xW7 kV3jQ\n' >"$conf"
chmod 644 "$conf"
run --config "$conf"
check "password in a 0644 file: WARNING with its mode and chmod 600" 78 \
    "^mvrefreshd: WARNING: configuration file \"$conf\" .*mode 0644.*chmod 600 $conf" stderr
no_fragment "password in a 0644 file: the WARNING does not print it" "Zq9xW7 kV3jQ"
chmod 640 "$conf"
run --config "$conf"
check "password in a 0640 file: WARNING" 78 "WARNING: .*mode 0640" stderr
chmod 600 "$conf"
run --config "$conf"
no_warning "password in a 0600 file: no WARNING" 78

printf '[mvrefreshd]\ndsn = host=x dbname=d user\n' >"$conf"
chmod 644 "$conf"
run --config "$conf"
no_warning "no password in a 0644 file: no WARNING" 78
printf "[mvrefreshd]\ndsn = host=x password='' dbname\n" >"$conf"
run --config "$conf"
no_warning "empty password in a 0644 file: no WARNING" 78

# The file holds the password even when --dsn overrides it.
printf '[mvrefreshd]\ndsn = postgresql://bob:%s@h/db\n' "$pw" >"$conf"
run --config "$conf" --dsn "host=x dbname"
check "password in a 0644 file, --dsn given: WARNING" 64 "WARNING: .*mode 0644" stderr

# A valid dsn: the daemon starts (and keeps trying to connect), so wait until it has logged
# its start (its signal handlers are in place then; the warning comes before), then stop it.
# The daemon runs unwrapped so that the SIGTERM is the only signal it gets (see run()).
printf '[mvrefreshd]\ndsn = postgresql://bob:%s@/db\n' "$pw" >"$conf"
env PGHOST="$work/no-server" PGPORT=1 PGCONNECT_TIMEOUT=1 \
    "$bin" --config "$conf" >"$out" 2>"$err" &
pid=$!
for ((i = 0; i < 100; i++)); do
    grep -q ' starting: ' "$err" && break
    sleep 0.1
done
kill -TERM "$pid" 2>/dev/null
for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
kill -KILL "$pid" 2>/dev/null # still there after 10 s: fails the check below
wait "$pid"
status=$? # SIGTERM: a graceful stop, status 0
check "password in a 0644 file, valid dsn: WARNING at start" 0 "WARNING: .*mode 0644" stderr
no_fragment "password in a 0644 file, valid dsn: not printed" "$pw"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
