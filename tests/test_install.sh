#!/usr/bin/env bash
# cmake --install into a DESTDIR: every file a user needs lands where the README says, the unit
# points at the installed binary, the man pages are real roff, and the installed daemon runs.
# Usage: test_install.sh CMAKE BUILD_DIR [EXTENSION_DIR VERSION]
set -uo pipefail

cmake_bin=$1
build=$2
ext_dir=${3:-}
version=${4:-}
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
n=0
failed=0

ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; echo "#   $2"; }
check() { # NAME COMMAND...
    local name=$1
    shift
    if "$@" >/dev/null 2>&1; then ok "$name"; else not_ok "$name" "failed: $*"; fi
}

if ! out=$(DESTDIR="$dest" "$cmake_bin" --install "$build" --prefix /opt/mvr 2>&1); then
    not_ok "cmake --install with DESTDIR and a prefix" "$out"
    echo "1..$n"
    exit 1
fi
ok "cmake --install with DESTDIR and a prefix"
root=$dest/opt/mvr
check "the daemon, executable" test -x "$root/bin/mvrefreshd"
check "the installed daemon runs" "$root/bin/mvrefreshd" --version
check "the SQL" cmp "$root/share/mvrefresh/mvrefresh.sql" "$(dirname "$0")/../sql/mvrefresh.sql"
for f in mvrefresh.ini README.md CHANGELOG.md LICENSE quiet-triggers.md grafana-mvrefresh.json; do
    check "docs: $f" test -s "$root/share/doc/mvrefresh/$f"
done
check "the example configuration passes --check" \
    "$root/bin/mvrefreshd" --check --config "$root/share/doc/mvrefresh/mvrefresh.ini"
unit=$root/lib/systemd/system/mvrefreshd.service
check "a systemd unit" test -s "$unit"
check "...that starts the installed binary, as Type=notify" \
    grep -q "^ExecStart=/opt/mvr/bin/mvrefreshd --config " "$unit"
check "...Type=notify" grep -qx "Type=notify" "$unit"
check "...hardened" grep -qx "NoNewPrivileges=yes" "$unit"
if command -v scdoc >/dev/null 2>&1; then
    for page in man1/mvrefreshd.1 man5/mvrefresh.ini.5 man7/mvrefresh.7; do
        check "man page $page, roff with a title" grep -q '^\.TH' "$root/share/man/$page"
    done
else
    echo "ok $((n += 1)) - man pages # SKIP scdoc is not installed"
fi
# The extension goes to PostgreSQL's directory (pg_config), not under the prefix; DESTDIR applies.
if [ -n "$ext_dir" ]; then
    check "the extension's control file, at version $version" \
        grep -qx "default_version = '$version'" "$dest$ext_dir/mvrefresh.control"
    check "...its script, without BEGIN/COMMIT and guarded against psql -f" \
        sh -c '! grep -qx -e "BEGIN;" -e "COMMIT;" "$1" && grep -q "^\\\\echo Use \"CREATE EXTENSION mvrefresh\"" "$1"' \
        sh "$dest$ext_dir/mvrefresh--$version.sql"
    check "...and an update script" test -s "$dest$ext_dir/mvrefresh--0.1.0--$version.sql"
else
    echo "ok $((n += 1)) - the extension # SKIP pg_config was not found at configure time"
fi
# Nothing outside DESTDIR: a second install over the first is idempotent.
check "installing again over it works" env DESTDIR="$dest" "$cmake_bin" --install "$build" --prefix /opt/mvr
echo "1..$n"
[ "$failed" -eq 0 ]
