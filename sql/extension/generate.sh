#!/bin/sh
# Make an extension script from sql/mvrefresh.sql, so the extension and the psql -f install
# share one source: head.sql, then the file without its top-level BEGIN; and COMMIT; (an
# extension script runs inside CREATE/ALTER EXTENSION's transaction and may not end it) and
# without its "-- [psql only]" ... "-- [end psql only]" blocks, then tail.sql.
# Usage: generate.sh SQL HEAD TAIL OUT        (also used by the tests on older releases' SQL)
set -eu
sql=$1 head=$2 tail=$3 out=$4
for stmt in 'BEGIN;' 'COMMIT;'; do
    count=$(grep -c -x "$stmt" "$sql" || true)
    if [ "$count" != 1 ]; then
        echo "generate.sh: $sql has $count lines '$stmt', expected exactly one" >&2
        exit 1
    fi
done
{
    cat "$head"
    sed -e '/^-- \[psql only\]/,/^-- \[end psql only\]/d' -e '/^BEGIN;$/d' -e '/^COMMIT;$/d' "$sql"
    cat "$tail"
} >"$out.tmp"
mv "$out.tmp" "$out"
