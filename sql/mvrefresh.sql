-- mvrefresh: change-driven refresh of materialized views.
--
-- Install (or upgrade in place) with:   psql -d DB -f sql/mvrefresh.sql
-- The file is idempotent: running it again keeps every registration and only
-- (re)defines functions, views and triggers. It contains no psql meta-commands,
-- so it can equally be sent as one string through PQexec.
--
-- How it works: statement-level triggers on the base tables of every watched
-- materialized view send NOTIFY mvrefresh with the table's OID as payload; the
-- daemon mvrefreshd listens, debounces and runs REFRESH MATERIALIZED VIEW.
-- A watched view that reads another watched materialized view depends on that
-- view rather than on its tables, so the daemon refreshes the upstream view
-- first and its readers after it (see mvrefresh.dependency).
-- Requires PostgreSQL 13 or later.

BEGIN;

-- Resolve every unqualified type name in this script from pg_catalog only, so a
-- hostile or merely unusual search_path of the installing session cannot
-- change what gets created. SET LOCAL ends with this transaction.
SET LOCAL search_path = pg_catalog, pg_temp;
-- Re-running the script would otherwise print a NOTICE per existing object.
SET LOCAL client_min_messages = warning;

-- [psql only] The extension's scripts are made from this file without this block
-- (sql/extension/generate.sh). A database where mvrefresh is an extension is upgraded
-- with ALTER EXTENSION: this file would fail there half-way (it may not drop what the
-- extension owns), or leave new objects outside the extension.
DO $do$
DECLARE
    ext text;
BEGIN
    SELECT e.extversion INTO ext FROM pg_catalog.pg_extension e WHERE e.extname = 'mvrefresh';
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = pg_catalog.format(
                'mvrefresh is installed in this database as an extension (version %s)', ext),
            DETAIL = 'A database is installed and upgraded one way only.',
            HINT = 'Install the new release''s extension files (cmake --install), then run ALTER EXTENSION mvrefresh UPDATE.';
    END IF;
END
$do$;
-- [end psql only]

-- Whoever owns the schema, or anything in it, can replace the functions the
-- daemon calls, and the daemon often runs as a powerful role. So an existing
-- mvrefresh schema is only taken over when it and everything in it belong to
-- the installing role or to a superuser; anything else is refused before a
-- single object is created. (The daemon checks the same at every connect.)
DO $do$
DECLARE
    odd record;
BEGIN
    SELECT o.kind, o.name, r.rolname AS owner INTO odd
    FROM (
        SELECT 'schema' AS kind, n.nspname::pg_catalog.text AS name, n.nspowner AS owner
        FROM pg_catalog.pg_namespace n WHERE n.nspname = 'mvrefresh'
      UNION ALL
        SELECT 'function', p.oid::pg_catalog.regprocedure::pg_catalog.text, p.proowner
        FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'mvrefresh'
      UNION ALL
        SELECT 'relation', c.oid::pg_catalog.regclass::pg_catalog.text, c.relowner
        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'mvrefresh'
      UNION ALL
        SELECT 'type', t.oid::pg_catalog.regtype::pg_catalog.text, t.typowner
        FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = 'mvrefresh'
    ) AS o
    JOIN pg_catalog.pg_roles r ON r.oid = o.owner
    WHERE r.rolname <> current_user AND NOT r.rolsuper
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = pg_catalog.format(
                'cannot install mvrefresh: %s %s is owned by role %I, which is neither the installing role (%I) nor a superuser',
                odd.kind, odd.name, odd.owner, current_user),
            DETAIL = 'Whoever owns the schema mvrefresh or an object in it can replace the functions mvrefreshd calls, and with them run code with the daemon''s rights.',
            HINT = 'Inspect the schema, then drop it or hand it over (ALTER ... OWNER TO) before installing.';
    END IF;
END
$do$;

CREATE SCHEMA IF NOT EXISTS mvrefresh;

COMMENT ON SCHEMA mvrefresh IS
    'mvrefresh: materialized views refreshed by mvrefreshd when their base tables change';

--------------------------------------------------------------------------------
-- The daemon's role
--------------------------------------------------------------------------------

-- Everything mvrefreshd calls is granted to this role and to nobody else, so
-- the daemon's login role needs one statement: GRANT mvrefresh_daemon TO it.
-- Roles belong to the whole cluster; each database's install grants to the same
-- one. Creating it needs CREATEROLE: without, the install goes on and only
-- superusers (and the installing role) can run the daemon.
DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = 'mvrefresh_daemon') THEN
        BEGIN
            CREATE ROLE mvrefresh_daemon NOLOGIN;
            COMMENT ON ROLE mvrefresh_daemon IS
                'mvrefresh: may run mvrefreshd (GRANT mvrefresh_daemon TO the daemon''s login role)';
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'mvrefresh: cannot create role mvrefresh_daemon: %', SQLERRM
                USING HINT = 'A role with CREATEROLE can run: CREATE ROLE mvrefresh_daemon NOLOGIN; then install again.';
        END;
    END IF;
END
$do$;

-- It may have existed before (made by whoever could create roles): say who can
-- hand it out, since whoever holds it reads every registration and writes
-- the status of every view.
DO $do$
DECLARE
    admins text;
BEGIN
    SELECT pg_catalog.string_agg(pg_catalog.quote_ident(r.rolname), ', ' ORDER BY r.rolname)
    INTO admins
    FROM pg_catalog.pg_auth_members m
    JOIN pg_catalog.pg_roles g ON g.oid = m.roleid AND g.rolname = 'mvrefresh_daemon'
    JOIN pg_catalog.pg_roles r ON r.oid = m.member
    WHERE m.admin_option AND NOT r.rolsuper AND r.rolname <> current_user;
    IF admins IS NOT NULL THEN
        RAISE WARNING 'mvrefresh: roles that may grant mvrefresh_daemon to others: %', admins
            USING HINT = 'Whoever holds mvrefresh_daemon may call the daemon''s functions. REVOKE ADMIN OPTION FOR mvrefresh_daemon FROM them unless that is intended.';
    END IF;
END
$do$;

--------------------------------------------------------------------------------
-- Registry
--------------------------------------------------------------------------------

-- One row per watched materialized view. regclass (not a name) so a rename of
-- the view keeps the registration. NULL debounce/max_wait mean "use the
-- daemon's defaults from mvrefresh.ini", so tuning the daemon file retunes
-- every view that was not tuned individually. CONCURRENTLY is a keyword that
-- cannot be a bare column name, so write "concurrently" (or v.concurrently).
CREATE TABLE IF NOT EXISTS mvrefresh.view (
    view         regclass    PRIMARY KEY,
    debounce     interval    NULL,
    max_wait     interval    NULL,
    "concurrently" boolean   NOT NULL DEFAULT true,
    enabled      boolean     NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- The edges of the refresh graph, found by watch(). For a watched view, base
-- is either a table (relkind r or p) the view reads directly or through plain
-- views, or a watched materialized view it reads directly or through plain
-- views (its "upstream" view). The walk stops at the first materialized view
-- on each path: the upstream view's tables are the upstream view's
-- dependencies, so a change to them refreshes it first, and the daemon
-- refreshes its readers only after that refresh committed. Only tables carry
-- notify triggers. base has no foreign key: it points into pg_class.
-- Set by unwatch() (or by hand, by the view's owner): the row is removed, and
-- the triggers no view needs any more with it, in the same statement. A flag
-- rather than a DELETE grant: DELETE would let any role take any lock on this
-- table, and hold back the daemon's every read of it.
ALTER TABLE mvrefresh.view ADD COLUMN IF NOT EXISTS unwatched boolean NOT NULL DEFAULT false;

CREATE TABLE IF NOT EXISTS mvrefresh.dependency (
    view regclass NOT NULL REFERENCES mvrefresh.view ON DELETE CASCADE,
    base regclass NOT NULL,
    PRIMARY KEY (view, base)
);

-- "Does any view still need this table?" and "which watched views read this
-- view?" are asked by base, not by view.
CREATE INDEX IF NOT EXISTS dependency_base_idx ON mvrefresh.dependency (base);

-- Whether the view reads the table with its partitions and inheritance
-- children (FROM base), or the table alone (FROM ONLY base). Only in the first
-- case are the descendants, at every level, what the view reads: they carry
-- triggers of their own, and a write aimed straight at one changes the view.
-- Rows from before this column read the children (a plain FROM is by far the
-- common case); the upgrade at the end of this file corrects the others.
ALTER TABLE mvrefresh.dependency ADD COLUMN IF NOT EXISTS with_children boolean NOT NULL DEFAULT true;

-- Checks live on the tables (not only in watch()) because users retune with
-- plain UPDATEs and may edit the registry by hand. Added by name so an older
-- installation gains them on upgrade.
DO $do$
DECLARE
    chk record;
BEGIN
    FOR chk IN
        SELECT c.tbl::pg_catalog.regclass AS tbl, c.name, c.expr
        FROM (VALUES
            ('mvrefresh.view',       'view_debounce_positive',    'debounce > interval ''0'''),
            ('mvrefresh.view',       'view_max_wait_positive',    'max_wait > interval ''0'''),
            ('mvrefresh.view',       'view_max_wait_ge_debounce', 'max_wait >= debounce'),
            -- 'infinity' passes the checks above, and no daemon could schedule it.
            ('mvrefresh.view',       'view_debounce_finite',      'isfinite(debounce)'),
            ('mvrefresh.view',       'view_max_wait_finite',      'isfinite(max_wait)'),
            -- A view cannot wait for its own refresh. Longer cycles need a
            -- query, so dependency_acyclic (below) catches those.
            ('mvrefresh.dependency', 'dependency_not_self',       'base <> view')
        ) AS c(tbl, name, expr)
    LOOP
        IF NOT EXISTS (SELECT 1
                       FROM pg_catalog.pg_constraint k
                       WHERE k.conrelid = chk.tbl
                         AND k.conname = chk.name) THEN
            EXECUTE pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I CHECK (%s)',
                                      chk.tbl, chk.name, chk.expr);
        END IF;
    END LOOP;
END
$do$;

-- A duration in milliseconds as interval comparison reads it (a month is 30
-- days, a year 360; days and hours are not folded into each other), which is
-- how the checks above and watch() judge a setting: registry() hands the
-- daemon this, so '-1 year 361 days', which PostgreSQL finds equal to a day,
-- is a day to the daemon too. (date_part('epoch') reads a year as 365.25 days:
-- that value was minus four days, which the daemon took for "the default".)
-- No SET, so that it is inlined; hence every operator qualified.
CREATE OR REPLACE FUNCTION mvrefresh.setting_ms(i interval)
RETURNS double precision
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $fn$
    -- The epoch less the 5.25 days (453,600 s) it counts more per year. (An
    -- OPERATOR() has no precedence of its own: the parentheses give it.)
    SELECT (pg_catalog.date_part('epoch', i) OPERATOR(pg_catalog.-)
            (pg_catalog.date_part('year', i) OPERATOR(pg_catalog.*) 453600))
           OPERATOR(pg_catalog.*) 1000
$fn$;
-- Checks of an unreleased development version; registry() reads what they
-- guarded the same way now.
ALTER TABLE mvrefresh.view DROP CONSTRAINT IF EXISTS view_debounce_at_least_1ms,
                           DROP CONSTRAINT IF EXISTS view_max_wait_at_least_1ms;

-- Refresh bookkeeping, written only by the daemon through refresh_begin() and
-- refresh_end(). Kept apart from mvrefresh.view so the daemon's frequent
-- writes do not fire the registry-change trigger below.
CREATE TABLE IF NOT EXISTS mvrefresh.refresh_state (
    view          regclass    PRIMARY KEY REFERENCES mvrefresh.view ON DELETE CASCADE,
    refreshing    boolean     NOT NULL DEFAULT false,
    last_start    timestamptz,
    last_finish   timestamptz,
    last_duration interval,
    last_mode     text,
    refresh_count bigint      NOT NULL DEFAULT 0,
    failure_count bigint      NOT NULL DEFAULT 0,
    last_error    text,
    last_sqlstate text,
    pending_since timestamptz
);
-- When take_changes() (or a backstop round, a watch()) last marked the view
-- pending since its last refresh began (refresh_begin() clears it): a refresh
-- that began before the mark must not clear it when it ends (the daemon may
-- never have heard of those changes: the result of take_changes() can be lost
-- with its connection after it committed). Cleared rather than compared with
-- last_start, so that a server clock stepped back does not make an old mark
-- look newer than the refresh.
ALTER TABLE mvrefresh.refresh_state ADD COLUMN IF NOT EXISTS marked_at timestamptz;

-- The backstop's memory (docs/quiet-triggers.md): the last fingerprint of
-- each watched table's write statistics and storage. In the database, so that
-- a change only the backstop can see is still found after a daemon restart.
CREATE TABLE IF NOT EXISTS mvrefresh.table_state (
    table_oid   oid  PRIMARY KEY,
    fingerprint text NOT NULL
);

-- And what each view's last refresh covered: the fingerprint of each table it
-- reads (partitions and children included) as the refresh found it, read in
-- the refresh's transaction before the REFRESH took its snapshot, so every
-- write it counts is one the refresh saw. The backstop marks the readers of a
-- table whose fingerprint moved only where this differs: a write signalled and
-- refreshed already is not one more refresh at every round, nor at a start.
-- Written by rearm_view() (refresh()); rows of views no longer watched go at
-- the backstop's next round (a refresh still running may hold them).
CREATE TABLE IF NOT EXISTS mvrefresh.view_fingerprint (
    view        oid  NOT NULL,
    table_oid   oid  NOT NULL,
    fingerprint text NOT NULL,
    PRIMARY KEY (view, table_oid)
);

--------------------------------------------------------------------------------
-- Who may do what
--------------------------------------------------------------------------------
--
-- A registration belongs to the view's owner. Only roles with the privileges
-- of the owner (members that inherit it) and superusers may watch, unwatch,
-- retune or pause a view; everybody else is refused with SQLSTATE 42501.
--
-- Who is asking is always current_user, decided in code that runs as the
-- caller: watch() and unwatch() are SECURITY INVOKER, and every write to the
-- registry passes check_owner(). The session's identity is never used for
-- that: a view's own code runs inside the daemon's session during REFRESH
-- (as the view's owner), and must not pass for the daemon. What needs the
-- installer's rights (the dependency rows, the triggers on base tables, the
-- status rows) is done by SECURITY DEFINER code whose effect does not depend
-- on who calls it: it makes them agree with the registry and the catalog,
-- and it checks privileges against the view's owner, never its caller.
--
-- Grants are only SELECT, INSERT of a registration and UPDATE of the tuning
-- columns: at most ROW EXCLUSIVE, a lock that neither the daemon's reads nor
-- this file's own serialization (SHARE UPDATE EXCLUSIVE) has to wait for.
-- Registry rows and status rows are visible only to roles that may SELECT the
-- view (errors can quote data). The refresh bookkeeping is written only
-- through the daemon's functions, which only mvrefresh_daemon may execute.

-- The role the session acts as: its SET ROLE, or else its login role. Used
-- only where the session itself is the subject, in the daemon's own functions
-- ("may this daemon refresh that view?"), never to authorize a registration.
CREATE OR REPLACE FUNCTION mvrefresh.acting_role()
RETURNS name
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT CASE pg_catalog.current_setting('role')
               WHEN 'none' THEN session_user
               ELSE pg_catalog.current_setting('role')::pg_catalog.name
           END;
$fn$;

-- May role `who` manage the registration of `view`? Yes when it has the
-- privileges of the view's owner (superusers have everyone's), or of the
-- owner of the mvrefresh schema (who owns the registry tables anyway). A
-- relation that no longer exists protects nothing: its rows may be cleaned up.
CREATE OR REPLACE FUNCTION mvrefresh.may_manage(view regclass, who name)
RETURNS boolean
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT COALESCE(
        (SELECT pg_catalog.pg_has_role(may_manage.who, c.relowner, 'USAGE')
                OR pg_catalog.pg_has_role(may_manage.who, n.nspowner, 'USAGE')
         FROM pg_catalog.pg_class c, pg_catalog.pg_namespace n
         WHERE c.oid = may_manage.view AND n.nspname = 'mvrefresh'),
        true);
$fn$;

-- The same rule as an error, for functions and triggers to call.
CREATE OR REPLACE FUNCTION mvrefresh.require_owner(view regclass, who name, action text)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    owner name;
BEGIN
    IF mvrefresh.may_manage(require_owner.view, require_owner.who) THEN
        RETURN;
    END IF;
    SELECT r.rolname INTO owner
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles r ON r.oid = c.relowner
    WHERE c.oid = require_owner.view;
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
        MESSAGE = pg_catalog.format('permission denied to %s materialized view %s',
                                    require_owner.action, require_owner.view),
        DETAIL = pg_catalog.format('Role %I does not have the privileges of its owner, role %I.',
                                   require_owner.who, owner),
        HINT = 'Only the owner of a view (or a member of the owning role) and superusers may watch, unwatch, retune or pause it.';
END
$fn$;

-- Every write to the registry, by watch(), unwatch() or by hand. current_user
-- is the real caller here (inside this file's SECURITY DEFINER code it is the
-- installer, whose writes follow a check already made, or none is needed).
CREATE OR REPLACE FUNCTION mvrefresh.check_owner()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM mvrefresh.require_owner(OLD.view, current_user,
            CASE WHEN TG_OP = 'DELETE' OR NEW.unwatched THEN 'unwatch' ELSE 'retune' END);
    END IF;
    IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.view IS DISTINCT FROM OLD.view) THEN
        -- Only an existing materialized view can be registered: an OID nobody uses yet has
        -- no owner to ask, and would register whatever view later gets it.
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                       WHERE c.oid = NEW.view AND c.relkind = 'm') THEN
            RAISE EXCEPTION USING ERRCODE = 'wrong_object_type',
                MESSAGE = pg_catalog.format('"%s" is not a materialized view', NEW.view);
        END IF;
        PERFORM mvrefresh.require_owner(NEW.view, current_user, 'watch');
    END IF;
    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END
$fn$;

DROP TRIGGER IF EXISTS view_owner_guard ON mvrefresh.view;
CREATE TRIGGER view_owner_guard
    BEFORE INSERT OR UPDATE OR DELETE ON mvrefresh.view
    FOR EACH ROW EXECUTE FUNCTION mvrefresh.check_owner();

-- Row visibility. The tables' owner (the installer) is not subject to it, nor
-- are superusers, nor this file's SECURITY DEFINER functions.
ALTER TABLE mvrefresh.view ENABLE ROW LEVEL SECURITY;
ALTER TABLE mvrefresh.dependency ENABLE ROW LEVEL SECURITY;
ALTER TABLE mvrefresh.refresh_state ENABLE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS view_visible ON mvrefresh.view;
CREATE POLICY view_visible ON mvrefresh.view FOR SELECT
    USING (pg_catalog.has_table_privilege(view::pg_catalog.oid, 'SELECT'));
-- Only its owners can aim an UPDATE (or SELECT ... FOR UPDATE, which needs
-- the same) at a row: anyone else could hold its row lock and stall the
-- owner, or the daemon. A non-owner's hand-made UPDATE so changes no row;
-- mvrefresh.watch(), unwatch(), pause() and resume() say 42501 instead.
DROP POLICY IF EXISTS view_retune ON mvrefresh.view;
CREATE POLICY view_retune ON mvrefresh.view FOR UPDATE
    USING (mvrefresh.may_manage(view, current_user))
    WITH CHECK (true);
DROP POLICY IF EXISTS view_watch ON mvrefresh.view;
CREATE POLICY view_watch ON mvrefresh.view FOR INSERT
    WITH CHECK (true);
DROP POLICY IF EXISTS dependency_visible ON mvrefresh.dependency;
CREATE POLICY dependency_visible ON mvrefresh.dependency FOR SELECT
    USING (pg_catalog.has_table_privilege(view::pg_catalog.oid, 'SELECT'));
-- refresh_state has no policy: nobody but its owner reads or writes it
-- directly; people read mvrefresh.status.

-- Start from nothing on every install, so that grants from older versions (or
-- made by hand) cannot keep a path around these rules; then grant exactly this.
-- The same for the schema: CREATE in it would let a role add a function there,
-- which the daemon would then refuse to work beside.
-- REVOKE ALL ON obj (e.g. 'TABLE mvrefresh.view') from everyone in acl but
-- owner: whatever an older version, default privileges or a hand-made GRANT gave.
CREATE OR REPLACE FUNCTION mvrefresh.revoke_all_but(obj text, acl aclitem[], owner oid)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    grantee oid;
BEGIN
    FOR grantee IN
        SELECT DISTINCT a.grantee FROM pg_catalog.aclexplode(revoke_all_but.acl) AS a
        WHERE a.grantee <> revoke_all_but.owner
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM %s', revoke_all_but.obj,
            CASE grantee WHEN 0 THEN 'PUBLIC'
                 ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(grantee)) END);
    END LOOP;
END
$fn$;

DO $do$
BEGIN
    PERFORM mvrefresh.revoke_all_but('TABLE ' || c.oid::pg_catalog.regclass::pg_catalog.text,
                                     c.relacl, c.relowner)
    FROM pg_catalog.pg_class c
    WHERE c.oid IN ('mvrefresh.view'::pg_catalog.regclass,
                    'mvrefresh.dependency'::pg_catalog.regclass,
                    'mvrefresh.refresh_state'::pg_catalog.regclass);
    PERFORM mvrefresh.revoke_all_but('SCHEMA mvrefresh', n.nspacl, n.nspowner)
    FROM pg_catalog.pg_namespace n WHERE n.nspname = 'mvrefresh';
END
$do$;
GRANT USAGE ON SCHEMA mvrefresh TO PUBLIC;
GRANT SELECT ON mvrefresh.view, mvrefresh.dependency TO PUBLIC;
GRANT INSERT (view, debounce, max_wait, "concurrently", enabled) ON mvrefresh.view TO PUBLIC;
GRANT UPDATE (debounce, max_wait, "concurrently", enabled, unwatched) ON mvrefresh.view TO PUBLIC;

--------------------------------------------------------------------------------
-- Registry consistency
--------------------------------------------------------------------------------

-- The daemon refreshes a view after the views it depends on; a cycle would
-- leave it nothing to start with. PostgreSQL cannot create a materialized view
-- over one that does not exist yet, but CREATE OR REPLACE VIEW of a plain view
-- in between can close a loop later, and the registry can be edited by hand.
-- So every new or changed edge (view -> base) is refused when base already
-- reaches view. Only registered views have rows of their own (the foreign
-- key), so the walk goes on through watched views and ends at tables; UNION
-- visits each node once, so it ends even on a graph that is somehow cyclic.
CREATE OR REPLACE FUNCTION mvrefresh.check_dependency()
RETURNS trigger
LANGUAGE plpgsql
-- It must see every row, not only those the caller may read.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- The lock every change of dependencies holds (sync_view(), forget()):
    -- two sessions adding the two halves of a cycle at once would each find
    -- no cycle. In READ COMMITTED the query below then sees whatever the
    -- other session committed.
    LOCK TABLE mvrefresh.view IN SHARE UPDATE EXCLUSIVE MODE;

    IF EXISTS (
        WITH RECURSIVE reached(node) AS (
            SELECT NEW.base
          UNION
            SELECT d.base
            FROM reached r
            JOIN mvrefresh.dependency d ON d.view = r.node
        )
        SELECT 1 FROM reached r WHERE r.node = NEW.view)
    THEN
        RAISE EXCEPTION USING ERRCODE = 'check_violation',
            MESSAGE = pg_catalog.format(
                'dependency of "%s" on "%s" would make a cycle', NEW.view, NEW.base),
            DETAIL = pg_catalog.format(
                '"%s" already depends on "%s", directly or through other watched views.',
                NEW.base, NEW.view),
            TABLE = 'dependency',
            SCHEMA = 'mvrefresh';
    END IF;
    RETURN NULL;
END
$fn$;

-- A constraint trigger runs after the whole statement, so it also sees the
-- other rows of a multi-row INSERT (both halves of a cycle in one statement).
-- NOT DEFERRABLE: the graph must never be cyclic, not even until commit.
DROP TRIGGER IF EXISTS dependency_acyclic ON mvrefresh.dependency;
CREATE CONSTRAINT TRIGGER dependency_acyclic
    AFTER INSERT OR UPDATE ON mvrefresh.dependency
    NOT DEFERRABLE
    FOR EACH ROW EXECUTE FUNCTION mvrefresh.check_dependency();

-- A watched view must not disappear from the registry while another watched
-- view still depends on it: the reader would wait for refreshes nobody runs.
-- Checked on the table (not only in unwatch()) so a hand-made DELETE is held
-- to the same rule. After the statement, readers deleted by the same
-- statement (DELETE of several views, DROP ... CASCADE) are already gone.
CREATE OR REPLACE FUNCTION mvrefresh.check_not_upstream()
RETURNS trigger
LANGUAGE plpgsql
-- It must see every row, not only those the caller may read.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    reader regclass;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.view = OLD.view THEN
        RETURN NULL;
    END IF;
    SELECT d.view INTO reader
    FROM mvrefresh.dependency d
    JOIN mvrefresh.view v ON v.view = d.view
    WHERE d.base = OLD.view
      AND NOT EXISTS (SELECT 1 FROM mvrefresh.view u WHERE u.view = OLD.view)
    ORDER BY d.view::pg_catalog.oid
    LIMIT 1;
    IF reader IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = pg_catalog.format(
                'materialized view "%s" is read by watched materialized view "%s"',
                OLD.view, reader),
            HINT = 'Unwatch that view first.';
    END IF;
    RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS view_upstream_guard ON mvrefresh.view;
CREATE CONSTRAINT TRIGGER view_upstream_guard
    AFTER DELETE OR UPDATE ON mvrefresh.view
    NOT DEFERRABLE
    FOR EACH ROW EXECUTE FUNCTION mvrefresh.check_not_upstream();

--------------------------------------------------------------------------------
-- The contract with mvrefreshd
--------------------------------------------------------------------------------

-- The two notification channels are named here and nowhere else in this file.
-- mvrefreshd names them once as well (src/session.h), checks at every connect
-- that version() reports the same, and the tests check that both sides agree.
-- IMMUTABLE and without a SET clause, so that a call is folded into a constant
-- when the trigger's plan is made: it costs the write path nothing.
CREATE OR REPLACE FUNCTION mvrefresh.change_channel()
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $fn$ SELECT 'mvrefresh'::pg_catalog.text $fn$;

CREATE OR REPLACE FUNCTION mvrefresh.control_channel()
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $fn$ SELECT 'mvrefresh_control'::pg_catalog.text $fn$;

-- The release of this file, and the protocol: what the daemon calls and reads
-- (these functions, their arguments and columns, the channels, the payloads).
-- The protocol number changes whenever that changes incompatibly, and a daemon
-- refuses, naming both versions, an installed SQL whose protocol is not its own.
-- Protocol 1 was every release before version() existed; 2 brought quiet
-- triggers; 3 the pipelined refresh (refresh(view, NULL) after refresh_begin());
-- 4 the lease fence (take_changes(), backstop() and refresh_begin() name the
-- daemon that calls them and its term, which take_lease() returns:
-- check_holder()); 5 refresh_end() behind the fence too.
CREATE OR REPLACE FUNCTION mvrefresh.version()
RETURNS TABLE (version text, protocol integer, change_channel text, control_channel text)
LANGUAGE sql
STABLE
ROWS 1
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT '0.2.0'::pg_catalog.text, 5, mvrefresh.change_channel(), mvrefresh.control_channel();
$fn$;

COMMENT ON FUNCTION mvrefresh.version() IS
    'The installed mvrefresh release and the daemon protocol it speaks';

--------------------------------------------------------------------------------
-- Change signals
--------------------------------------------------------------------------------

-- Quiet triggers (docs/quiet-triggers.md has the protocol and the argument
-- that nothing is missed). Each watched table has a generation, a sequence
-- mvrefresh."gen_<oid>" whose values come from the global sequence below, so
-- that a generation never repeats. The table is armed while its sequence
-- reads as called, disarmed while it reads as NULL (is_called false); a
-- sequence is not read through the transaction's snapshot. The trigger's
-- WHEN condition, evaluated without calling any PL/pgSQL, only asks whether
-- the table is armed. The daemon arms a table, with a new generation, when it
-- needs to hear from it again, and disarms it as soon as it has heard: from
-- then on every view that reads it is pending, and its next refresh arms it
-- again before taking its snapshot. While armed, a session signals a table
-- once per generation, remembered in a setting that an abort takes back.
--
-- The global sequence starts at the clock in microseconds: a session that
-- lived through a complete uninstall and reinstall may remember a generation
-- of the old install, and the new one must never hand that value out again.
-- A generation is 2 * nextval + 1 when the daemon wants a doorbell for the
-- next signal, 2 * nextval when polling will do (see rearm()).
DO $do$
BEGIN
    IF pg_catalog.to_regclass('mvrefresh.generation') IS NULL THEN
        EXECUTE pg_catalog.format('CREATE SEQUENCE mvrefresh.generation START WITH %s',
            (pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()) * 1000000)::pg_catalog.int8);
    END IF;
END
$do$;

-- Markers: one row per table and writing transaction that took the armed
-- path, written by that transaction (so visible when it commits, gone if it
-- aborts, waiting while it is prepared), taken by the daemon. Nobody but
-- record_change() writes here.
CREATE TABLE IF NOT EXISTS mvrefresh.change_log (
    table_oid  oid         NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
ALTER TABLE mvrefresh.change_log ADD COLUMN IF NOT EXISTS xact xid8;
-- The armed path's wish to ring the doorbell (a ringing generation, and a
-- server where no transaction can be prepared): ring() decides at commit.
ALTER TABLE mvrefresh.change_log ADD COLUMN IF NOT EXISTS ring boolean NOT NULL DEFAULT false;
-- The generation the marker was written in (NULL: none was armed, or the
-- table has no generation): ring() compares it.
ALTER TABLE mvrefresh.change_log ADD COLUMN IF NOT EXISTS gen int8;
CREATE UNIQUE INDEX IF NOT EXISTS change_log_table_xact ON mvrefresh.change_log (table_oid, xact);

-- Views that a take_changes() found changed but could not mark pending in
-- their status row, because another transaction held the row (a watch() or a
-- partition DDL not committed yet): pending all the same, durably, for
-- registry(); refresh_begin() of the view clears its row (what it marked is
-- covered by the refresh that follows).
CREATE TABLE IF NOT EXISTS mvrefresh.pending_view (
    view      oid         PRIMARY KEY,
    marked_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);

-- The doorbell, rung at commit by the first transaction to commit a marker
-- of the table's current generation, and by nobody else: a ring only says
-- "take the markers", and one per generation is enough. Every armed session
-- writes a marker after each re-arm, and a NOTIFY per session would make all
-- of them queue for the cluster-wide lock that notifying commits hold across
-- their commit record's flush. A deferred trigger runs at commit, so a
-- transaction that stays open long after its write does not hold the claim.
-- Among transactions committing at once, the one that gets the lock of the
-- table's generation (transaction-scoped, advisory) rings; the lock is released after its
-- commit is visible, so one committing later sees its marker and keeps
-- quiet. Only a marker of the same generation keeps it quiet: a marker of an
-- older one may be one whose transaction saw another's marker at its commit
-- and committed only after the daemon had taken that one (so it rang for
-- nobody); counting it would keep every later generation from ringing until
-- the next poll, the table armed all the while, and every statement on it
-- paying the armed path meanwhile. For the same reason the lock is the
-- generation's, not the table's: a late committer of an older generation
-- holding it must not keep the first of the new one quiet. A skipped ring
-- never loses a change: the marker is durable, the daemon takes every marker
-- at each doorbell, each rearm_interval while a view that writes could still
-- postpone debounces, and every poll_interval, and the view that reads the table
-- is pending from the first marker taken. At worst (the ringing transaction
-- fails in its very commit, or commits after the daemon took the others) a
-- marker waits for the next poll. The lock's key is (1836479078 = 'mvrf',
-- the table's OID shifted into int4, XOR a hash of the generation): an
-- application's two-key advisory lock that happens to match, or another
-- table's generation that hashes alike, only makes a ring skipped, or waits
-- as long as one commit.
CREATE OR REPLACE FUNCTION mvrefresh.ring()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- Only as change_log's own trigger: NEW's columns are then mvrefresh's
    -- types, not a caller's whose casts and operators would run as the
    -- installer. (PUBLIC cannot attach it anyway: EXECUTE is revoked below.)
    IF TG_RELID OPERATOR(pg_catalog.<>) 'mvrefresh.change_log'::pg_catalog.regclass THEN
        RAISE EXCEPTION 'mvrefresh.ring() is the trigger of mvrefresh.change_log only'
            USING ERRCODE = '42501';
    END IF;
    IF pg_catalog.pg_try_advisory_xact_lock(
           1836479078,
           (NEW.table_oid::pg_catalog.int8 - 2147483648)::pg_catalog.int4
           OPERATOR(pg_catalog.#) pg_catalog.hashint8(COALESCE(NEW.gen, 0)))
       AND NOT EXISTS (SELECT 1 FROM mvrefresh.change_log m
                       WHERE m.table_oid = NEW.table_oid AND m.xact <> NEW.xact
                         AND m.gen IS NOT DISTINCT FROM NEW.gen) THEN
        PERFORM pg_catalog.pg_notify(mvrefresh.change_channel(), NEW.table_oid::pg_catalog.text);
    END IF;
    RETURN NULL;
END
$fn$;

DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                   WHERE t.tgrelid = 'mvrefresh.change_log'::pg_catalog.regclass
                     AND t.tgname = 'mvrefresh_ring') THEN
        CREATE CONSTRAINT TRIGGER mvrefresh_ring AFTER INSERT ON mvrefresh.change_log
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.ring)
            EXECUTE FUNCTION mvrefresh.ring();
    END IF;
END
$do$;

-- Partitions and inheritance children. A statement trigger fires only for the
-- table a statement names: one on a partitioned table does not fire for an
-- INSERT, COPY, UPDATE, DELETE or TRUNCATE aimed straight at a partition, nor
-- one on an inheritance parent for writes to its children. So every
-- descendant, at every level, of a table that a watched view reads with its
-- children (not FROM ONLY: dependency.with_children) is watched in its own
-- right: it has its own generation and the same two triggers as the table
-- itself (so the trigger condition stays one sequence read and the protocol
-- of docs/quiet-triggers.md holds per table unchanged), its markers name it,
-- and the views that read it are those that read one of its ancestors with
-- children. The daemon learns those from registry(), which lists the
-- descendants among each view's tables, so that a write to a child makes
-- exactly those views due and not one that reads the parent ONLY.

-- The watched views that read each of these tables: as one of their bases, or
-- as a partition or inheritance descendant (any depth) of a base they read
-- with its children. A write to the table changes exactly these views.
CREATE OR REPLACE FUNCTION mvrefresh.readers(tables oid[])
RETURNS TABLE (tbl oid, view regclass)
LANGUAGE plpgsql
STABLE
ROWS 10
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        WITH RECURSIVE up(start, rel, inherited) AS (
            SELECT t, t, false FROM pg_catalog.unnest(readers.tables) AS t
          UNION
            SELECT up.start, i.inhparent, true
            FROM up JOIN pg_catalog.pg_inherits i ON i.inhrelid = up.rel
        )
        SELECT DISTINCT up.start, d.view
        FROM up
        JOIN mvrefresh.dependency d ON d.base::pg_catalog.oid = up.rel
        WHERE NOT up.inherited OR d.with_children;
END
$fn$;

-- These tables, and every partition or inheritance descendant (any depth)
-- through which a watched view reads one of them or one of their ancestors:
-- the tables whose writes must be signalled for them. Descendants that cannot
-- carry triggers (foreign tables) are left out.
CREATE OR REPLACE FUNCTION mvrefresh.with_descendants(tables oid[])
RETURNS SETOF oid
LANGUAGE plpgsql
STABLE
ROWS 10
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
BEGIN
    -- Most tables have no parent and no child: then the walks below are not
    -- even planned (this statement's plan is cached; theirs cost about 0.2 ms
    -- of every watch()).
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_inherits i
                   WHERE i.inhrelid = ANY (with_descendants.tables)
                      OR i.inhparent = ANY (with_descendants.tables)) THEN
        RETURN QUERY SELECT DISTINCT t FROM pg_catalog.unnest(with_descendants.tables) AS t;
        RETURN;
    END IF;
    RETURN QUERY
        WITH RECURSIVE up(start, rel) AS (
            SELECT t, t FROM pg_catalog.unnest(with_descendants.tables) AS t
          UNION
            SELECT up.start, i.inhparent FROM up JOIN pg_catalog.pg_inherits i ON i.inhrelid = up.rel
        ), down(rel) AS (
            -- The given tables read with their children, themselves or through an
            -- ancestor, and everything below them.
            SELECT up.start FROM up
            WHERE EXISTS (SELECT FROM mvrefresh.dependency d
                          WHERE d.base = up.rel::pg_catalog.regclass AND d.with_children)
          UNION
            SELECT i.inhrelid FROM down JOIN pg_catalog.pg_inherits i ON i.inhparent = down.rel
        )
        SELECT t FROM pg_catalog.unnest(with_descendants.tables) AS t
      UNION
        SELECT down.rel FROM down
        JOIN pg_catalog.pg_class c ON c.oid = down.rel AND c.relkind IN ('r', 'p');
END
$fn$;

-- Has this backend written tbl (or a partition or inheritance child of it)
-- in this transaction, or truncated it (TRUNCATE leaves no row counts)? The
-- row counts are the backend's own statistics not yet reported, which may
-- include a transaction that committed in the last second or so: either way
-- a session that could write tbl did. A lock alone proves nothing: PREPARE
-- of an INSERT takes ROW EXCLUSIVE without any privilege check, and dropping
-- a foreign key that references tbl takes ACCESS EXCLUSIVE with nothing but
-- REFERENCES. So a TRUNCATE is recognised by what it does besides its lock:
-- it gives tbl (or, for a partitioned tbl, each partition) a new relfilenode,
-- writing its pg_class row in this transaction: a row whose xmin is one of
-- the transaction ids this backend holds a lock on (its own and its
-- subtransactions'), with a relfilenode other than the one the backstop
-- stored last (a GRANT by a holder of a grant option writes the row too, but
-- keeps the file). A table the backstop has not seen yet is taken on the
-- first alone, and a tree without storage of its own (a partitioned table of
-- foreign partitions, which a foreign key cannot reference) on the lock
-- alone. With track_counts off there are no counts, and the write-mode lock
-- is the best evidence left.
CREATE OR REPLACE FUNCTION mvrefresh.wrote(tbl oid)
RETURNS boolean
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    tree    oid[];
    counted boolean := pg_catalog.current_setting('track_counts')::boolean;
    modes   text[] := ARRAY['AccessExclusiveLock'];
    locked  boolean;
BEGIN
    IF pg_catalog.pg_current_xact_id_if_assigned() IS NULL THEN
        RETURN false; -- no transaction id: this transaction has written nothing
    END IF;
    tree := ARRAY(WITH RECURSIVE down(rel) AS (
                      SELECT wrote.tbl
                    UNION
                      SELECT i.inhrelid FROM down JOIN pg_catalog.pg_inherits i
                      ON i.inhparent = down.rel
                  )
                  SELECT down.rel FROM down);
    IF EXISTS (SELECT 1 FROM pg_catalog.unnest(tree) AS r
               WHERE pg_catalog.pg_stat_get_xact_tuples_inserted(r)
                   + pg_catalog.pg_stat_get_xact_tuples_updated(r)
                   + pg_catalog.pg_stat_get_xact_tuples_deleted(r) > 0) THEN
        RETURN true;
    END IF;
    IF NOT counted THEN
        modes := modes || ARRAY['RowExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock'];
    END IF;
    locked := EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                      WHERE l.locktype = 'relation' AND l.relation = wrote.tbl
                        AND l.pid = pg_catalog.pg_backend_pid() AND l.granted
                        AND l.mode = ANY (modes));
    IF NOT counted THEN
        RETURN locked; -- no row counts: the write-mode lock is the evidence left
    END IF;
    RETURN locked
       AND (NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                        WHERE c.oid = ANY (tree) AND c.relkind IN ('r', 'm'))
            OR EXISTS (SELECT 1
                       FROM pg_catalog.pg_class c
                       LEFT JOIN mvrefresh.table_state s ON s.table_oid = c.oid
                       WHERE c.oid = ANY (tree)
                         AND c.xmin IN (SELECT l.transactionid FROM pg_catalog.pg_locks l
                                        WHERE l.locktype = 'transactionid'
                                          AND l.pid = pg_catalog.pg_backend_pid())
                         AND (s.fingerprint IS NULL
                              OR pg_catalog.split_part(s.fingerprint, '/', 2)
                                 <> c.relfilenode::pg_catalog.text)));
END
$fn$;

-- The armed path's proof: a marker is recorded only for a watched table (or a
-- partition or child read through one: readers()) the calling transaction
-- wrote (wrote()), i.e. only by someone who may write it.
-- Anyone can NOTIFY; nobody can make a view refresh without writing what it
-- reads. At most one marker per table and transaction. Runs as the installer
-- (nobody else may write change_log). True when this transaction has a marker
-- for tbl: only then may the session remember the generation.
CREATE OR REPLACE FUNCTION mvrefresh.record_change(tbl oid)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    armed_gen pg_catalog.int8;
BEGIN
    -- A partition or child counts when a view reads an ancestor with children.
    -- readers() reads the registry and pg_inherits through the writer's
    -- snapshot, which in REPEATABLE READ may predate the watch() or the
    -- ATTACH that made the table read: a table with a generation of its own
    -- (looked up in the catalog as it is now) is admitted all the same, and
    -- take_changes() finds its readers as they are when it takes the marker.
    IF (pg_catalog.to_regclass('mvrefresh.gen_' || record_change.tbl::pg_catalog.text) IS NULL
        AND NOT EXISTS (SELECT 1 FROM mvrefresh.readers(ARRAY[record_change.tbl])))
       OR NOT mvrefresh.wrote(record_change.tbl) THEN
        RETURN false;
    END IF;
    -- The doorbell (ring(), at commit) for a ringing generation, or for a table
    -- without one (after a dump and restore: every write signals until the
    -- install repairs the triggers); never where transactions can be prepared
    -- (see notify()). The generation is read here, not taken from the caller:
    -- notify() runs as the writer, and what a writer says is not evidence. (The
    -- sequence is looked up again, not kept from the check above: one dropped
    -- meanwhile then reads as NULL instead of failing the write.)
    armed_gen := pg_catalog.pg_sequence_last_value(
                     pg_catalog.to_regclass('mvrefresh.gen_' || record_change.tbl::pg_catalog.text));
    INSERT INTO mvrefresh.change_log AS m (table_oid, xact, ring, gen)
    VALUES (record_change.tbl, pg_catalog.pg_current_xact_id(),
            pg_catalog.current_setting('max_prepared_transactions')::pg_catalog.int4 = 0
            AND COALESCE(armed_gen % 2 = 1, true),
            armed_gen)
    ON CONFLICT (table_oid, xact) DO NOTHING;
    RETURN true;
END
$fn$;

-- The armed path, run only when the trigger's WHEN condition found the table
-- armed. A session that signalled this generation already (or a table
-- disarmed since the condition looked) returns at once; otherwise: record a
-- marker (which rings the doorbell at commit if the generation asks for one
-- and nobody else does: ring()), remember the generation. It runs on the
-- application's write path as the writer, with the writer's search_path: no
-- SET clause (that would save and restore settings on every call), so every
-- name and every operator is qualified. The generation is found from the
-- table's OID, never from the trigger's argument: after a dump and restore
-- the OIDs differ, the sequence is not found, and every write signals (and
-- nothing is remembered) until reinstalling the SQL repairs the triggers.
--
-- Where transactions can be prepared (max_prepared_transactions > 0): no
-- doorbell, since PREPARE TRANSACTION refuses a transaction that has notified
-- (and a signal sent only sometimes would make it fail only sometimes; the
-- daemon polls instead); and the generation is remembered for this
-- transaction only, since PREPARE keeps the session's settings while the
-- marker waits in the prepared transaction, which may yet be rolled back.
CREATE OR REPLACE FUNCTION mvrefresh.notify()
RETURNS trigger
LANGUAGE plpgsql
AS $fn$
DECLARE
    seq pg_catalog.regclass;
    gen pg_catalog.int8;
BEGIN
    -- The common case, a session that signalled this generation already, in one
    -- expression: PL/pgSQL prepares every expression anew in each transaction,
    -- and on a table left armed (no daemon running) this is what every
    -- statement pays. Text, never a cast: a setting rolled back with the
    -- savepoint that created it reads as '', and a cast that fails would fail
    -- the write. (No sequence, or disarmed: NULL, and the slower path decides.)
    IF pg_catalog.pg_sequence_last_value(pg_catalog.to_regclass(
           pg_catalog.textcat('mvrefresh.gen_', TG_RELID::pg_catalog.text)))::pg_catalog.text
       OPERATOR(pg_catalog.=)
       pg_catalog.current_setting(
           pg_catalog.textcat('mvrefresh.seen_', TG_RELID::pg_catalog.text), true) THEN
        RETURN NULL;
    END IF;
    seq := pg_catalog.to_regclass(pg_catalog.textcat('mvrefresh.gen_', TG_RELID::pg_catalog.text));
    IF seq IS NOT NULL THEN
        gen := pg_catalog.pg_sequence_last_value(seq);
        IF gen IS NULL THEN
            RETURN NULL; -- disarmed since the condition looked
        END IF;
        -- Not compared with the remembered generation again: a re-arm since the
        -- check above gave a new one (they never repeat), and should the check
        -- have missed for any other reason, the cost is one marker more.
    END IF;
    -- The marker, and with it the doorbell (rung at commit: see ring()).
    IF mvrefresh.record_change(TG_RELID) IS NOT TRUE THEN
        RETURN NULL;
    END IF;
    IF gen IS NOT NULL THEN
        PERFORM pg_catalog.set_config(
            pg_catalog.textcat('mvrefresh.seen_', TG_RELID::pg_catalog.text),
            gen::pg_catalog.text,
            pg_catalog.current_setting('max_prepared_transactions')::pg_catalog.int4
            OPERATOR(pg_catalog.>) 0);
    END IF;
    RETURN NULL;
END
$fn$;

COMMENT ON FUNCTION mvrefresh.notify() IS
    'Armed path of the quiet statement triggers on base tables: marker, doorbell, remembered generation';

-- Any change to the registry tells a running daemon to reload it, so watch(),
-- unwatch() and plain UPDATEs take effect without a restart.
CREATE OR REPLACE FUNCTION mvrefresh.notify_control()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM pg_catalog.pg_notify(mvrefresh.control_channel(), 'reload');
    RETURN NULL;
END
$fn$;

-- Dropped and recreated (rather than "create if missing") so that
-- reinstalling also updates their definition. Atomic inside this transaction.
DROP TRIGGER IF EXISTS mvrefresh_control ON mvrefresh.view;
CREATE TRIGGER mvrefresh_control
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON mvrefresh.view
    FOR EACH STATEMENT EXECUTE FUNCTION mvrefresh.notify_control();

DROP TRIGGER IF EXISTS mvrefresh_control ON mvrefresh.dependency;
CREATE TRIGGER mvrefresh_control
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON mvrefresh.dependency
    FOR EACH STATEMENT EXECUTE FUNCTION mvrefresh.notify_control();

--------------------------------------------------------------------------------
-- Dependency discovery
--------------------------------------------------------------------------------

-- Earlier versions followed materialized views down to their tables; that
-- function no longer describes what a view depends on, so it goes.
DROP FUNCTION IF EXISTS mvrefresh.base_tables(regclass);

-- What a materialized view reads, as far as its refresh is concerned. A
-- view's query is stored as its "_RETURN" rule, and pg_depend records every
-- relation that rule references. We expand the view itself and plain views
-- (their queries run inside the refresh) and stop at everything else: tables
-- (r, p), materialized views (m: upstream views, refreshed on their own) and
-- foreign tables (f), which watch() refuses. Other relkinds a rule can
-- reference (sequences, composite types) hold no rows the view shows.
--
-- The view itself is left out: a plain view in between can be replaced to
-- read the view it feeds, and its old contents are no dependency to wait for.
-- Limits: tables read only inside functions called by the view are invisible
-- to the catalog. System catalogs are skipped: they cannot carry triggers.
--
-- with_children: whether the view, or a plain view it expands, reads the
-- relation without ONLY, i.e. with its partitions and inheritance children.
-- pg_depend cannot tell; the stored rules can. A rule is kept as the text of
-- its query tree (pg_rewrite.ev_action), in which every range table entry is
-- a {RANGETBLENTRY ...} node ({RTE ...} before PostgreSQL 14) that names its
-- relation as ":relid N" and, after it, whether to expand the relation's
-- children as ":inh true|false" (so on PostgreSQL 13 to 18; the node's own
-- fields are written before any nested node's, as from PostgreSQL 16 on the
-- enclosing query's RTEPERMISSIONINFO, which repeats relid and inh, comes
-- after its last entry). Nested queries (subqueries, CTEs, sublinks) have
-- their own entries, so each chunk between two node headers holds at most one
-- relation's entry, fields first; what follows its own fields in that chunk
-- belongs to the enclosing node and comes after them. Names cannot fake a
-- field: the text escapes spaces and braces in identifiers. Whatever cannot be
-- read this way counts as read with children: at worst the children carry
-- triggers they need not.
--
-- (Dropped first where it is the older one: its result grew a column.)
DO $do$
BEGIN
    -- (NULL, so no drop, where there is no such function yet.)
    IF pg_catalog.pg_get_function_result(pg_catalog.to_regprocedure('mvrefresh.sources(regclass)'))
       NOT LIKE '%with_children boolean)' THEN
        DROP FUNCTION mvrefresh.sources(regclass);
    END IF;
END
$do$;
CREATE OR REPLACE FUNCTION mvrefresh.sources(view regclass)
RETURNS TABLE (source regclass, kind "char", with_children boolean)
LANGUAGE plpgsql
STABLE
ROWS 10
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        WITH RECURSIVE reached(rel) AS (
            SELECT sources.view::pg_catalog.oid
          UNION  -- not UNION ALL: a relation reached twice is expanded once
            SELECT dep.refobjid
            FROM reached r
            JOIN pg_catalog.pg_class src
              ON src.oid = r.rel
             AND (src.oid = sources.view::pg_catalog.oid OR src.relkind = 'v')
            JOIN pg_catalog.pg_rewrite rule
              ON rule.ev_class = src.oid AND rule.rulename = '_RETURN'
            JOIN pg_catalog.pg_depend dep
              ON dep.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
             AND dep.objid = rule.oid
             AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
             AND dep.refobjid <> src.oid  -- the rule also "depends" on its own view
        ), entries AS (
            -- Every range table entry of the rules expanded above. ([{], not a
            -- backslash: this text must not depend on standard_conforming_strings.)
            SELECT e.rte
            FROM reached r
            JOIN pg_catalog.pg_class src
              ON src.oid = r.rel
             AND (src.oid = sources.view::pg_catalog.oid OR src.relkind = 'v')
            JOIN pg_catalog.pg_rewrite rule
              ON rule.ev_class = src.oid AND rule.rulename = '_RETURN'
            CROSS JOIN LATERAL pg_catalog.regexp_split_to_table(
                rule.ev_action::pg_catalog.text, '[{](RANGETBLENTRY|RTE) ') AS e(rte)
            WHERE pg_catalog.strpos(e.rte, ':relid ') > 0
        ), reads(rel, inh) AS (
            -- The first ":relid" of a chunk is its entry's own, and the first
            -- ":inh" after it too (leftmost matches: no greedy quantifier spans
            -- the two).
            SELECT (pg_catalog.regexp_match(x.rte, ':relid ([0-9]+)'))[1]::pg_catalog.oid,
                   (pg_catalog.regexp_match(pg_catalog.substr(x.rte, pg_catalog.strpos(x.rte, ':relid ')),
                                            ':inh (true|false)'))[1]::boolean
            FROM entries x
        )
        SELECT c.oid::pg_catalog.regclass, c.relkind,
               -- A relation read once without ONLY is read with its children.
               pg_catalog.bool_or(COALESCE(x.inh, true))
        FROM reached r
        JOIN pg_catalog.pg_class c ON c.oid = r.rel
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN reads x ON x.rel = c.oid
        WHERE c.oid <> sources.view::pg_catalog.oid
          AND c.relkind IN ('r', 'p', 'm', 'f')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        GROUP BY c.oid, c.relkind
        ORDER BY c.oid;
END
$fn$;

COMMENT ON FUNCTION mvrefresh.sources(regclass) IS
    'Tables (r, p), materialized views (m) and foreign tables (f) a materialized view reads, through plain views only, and whether with their children (not ONLY)';

--------------------------------------------------------------------------------
-- Registration
--------------------------------------------------------------------------------

-- Shared cleanup for watch(), unwatch() and the event triggers.
-- Dependency rows on relations that no longer exist and registrations of
-- materialized views that were dropped are forgotten first (their OIDs point
-- nowhere and would otherwise keep triggers alive forever); then the notify
-- triggers are removed from those candidate tables, and their partitions and
-- inheritance descendants, that no registered view reads any more (readers()).
-- Only triggers that call mvrefresh.notify() are touched.
-- Callers hold (or, in the event triggers, take) the lock on mvrefresh.view.
CREATE OR REPLACE FUNCTION mvrefresh.release_tables(candidates regclass[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    tbl       regclass;
    trg       name;
    lock_wait text;
BEGIN
    -- Each DELETE only when there is something to delete: the registry's
    -- statement triggers NOTIFY whether or not a row went, and the event
    -- triggers call this inside DDL that may be prepared (PREPARE TRANSACTION
    -- refuses a transaction that has notified).
    -- A relation gone without the event trigger noticing (installed by a
    -- non-superuser) that a view had stopped reading before it was dropped.
    IF EXISTS (SELECT 1 FROM mvrefresh.dependency d
               WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = d.base)) THEN
        DELETE FROM mvrefresh.dependency d
        WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = d.base);
    END IF;

    candidates := candidates || ARRAY(
        SELECT d.base
        FROM mvrefresh.dependency d
        WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                          WHERE c.oid = d.view AND c.relkind = 'm'));

    IF EXISTS (SELECT 1 FROM mvrefresh.view v
               WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                                 WHERE c.oid = v.view AND c.relkind = 'm')) THEN
        DELETE FROM mvrefresh.view v
        WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                          WHERE c.oid = v.view AND c.relkind = 'm');
    END IF;

    -- What was read through a candidate may have lost its readers with it.
    candidates := ARRAY(
        WITH RECURSIVE down(rel) AS (
            SELECT c::pg_catalog.oid FROM pg_catalog.unnest(candidates) AS c
          UNION
            SELECT i.inhrelid FROM down JOIN pg_catalog.pg_inherits i ON i.inhparent = down.rel
        )
        SELECT down.rel::pg_catalog.regclass FROM down);

    FOR tbl, trg IN
        SELECT t.tgrelid::pg_catalog.regclass, t.tgname
        FROM pg_catalog.pg_trigger t
        WHERE t.tgrelid::pg_catalog.regclass = ANY (candidates)
          AND t.tgname IN ('mvrefresh_notify', 'mvrefresh_notify_truncate')
          AND t.tgfoid = 'mvrefresh.notify()'::pg_catalog.regprocedure
          AND NOT EXISTS (SELECT 1 FROM mvrefresh.readers(ARRAY[t.tgrelid]))
        ORDER BY t.tgrelid, t.tgname  -- a stable lock order across sessions
    LOOP
        EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', trg, tbl);
    END LOOP;

    -- Generations of tables nobody watches: the triggers that read them are
    -- gone. (A later watch makes a new one, from the global sequence.)
    FOR tbl IN
        SELECT c.oid::pg_catalog.regclass
        FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'mvrefresh'
        WHERE c.relkind = 'S' AND c.relname LIKE 'gen\_%'
          AND NOT EXISTS (SELECT 1 FROM mvrefresh.dependency d
                          WHERE 'gen_' || d.base::pg_catalog.oid::pg_catalog.text = c.relname)
          -- (refclassid too: pg_depend's index on what is depended on starts with it.)
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend p
                          WHERE p.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                            AND p.refobjid = c.oid
                            AND p.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass)
    LOOP
        -- Every writer's trigger locked it, so a prepared transaction may
        -- hold it for as long as it stays prepared: then leave it for a later
        -- cleanup rather than fail the caller.
        BEGIN
            lock_wait := pg_catalog.current_setting('lock_timeout');
            PERFORM pg_catalog.set_config('lock_timeout', '100ms', true);
            EXECUTE pg_catalog.format('DROP SEQUENCE %s', tbl);
            PERFORM pg_catalog.set_config('lock_timeout', lock_wait, true);
        EXCEPTION WHEN lock_not_available THEN
            NULL;
        END;
    END LOOP;
END
$fn$;

-- From PostgreSQL 17 on, REFRESH needs only the MAINTAIN privilege on the
-- view. watch() grants it to mvrefresh_daemon (the owner asked for the view to
-- be refreshed; MAINTAIN allows nothing but maintenance of this one view), and
-- unwatch() takes it back, so a daemon role needs no membership in the owners'
-- roles. Before 17 only ownership will do: see the README's Security section.
CREATE OR REPLACE FUNCTION mvrefresh.grant_maintain(view regclass, grant_it boolean)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF pg_catalog.current_setting('server_version_num')::integer >= 170000
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = 'mvrefresh_daemon')
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = grant_maintain.view) THEN
        EXECUTE pg_catalog.format(
            CASE WHEN grant_it THEN 'GRANT MAINTAIN ON %s TO mvrefresh_daemon'
                 ELSE 'REVOKE MAINTAIN ON %s FROM mvrefresh_daemon' END,
            grant_maintain.view);
        -- REFRESH names the view: without USAGE on its schema MAINTAIN is of no
        -- use. Granting that is the schema owner's call; say so now, not at the
        -- first refresh.
        IF grant_it AND NOT pg_catalog.has_schema_privilege(
                'mvrefresh_daemon',
                (SELECT c.relnamespace FROM pg_catalog.pg_class c WHERE c.oid = grant_maintain.view),
                'USAGE') THEN
            RAISE WARNING 'mvrefreshd may not be able to refresh %: role mvrefresh_daemon has no USAGE on its schema',
                grant_maintain.view
                USING HINT = pg_catalog.format(
                    'GRANT USAGE ON SCHEMA %I TO mvrefresh_daemon (or make the daemon''s role a member of the view''s owner).',
                    (SELECT n.nspname FROM pg_catalog.pg_class c
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                     WHERE c.oid = grant_maintain.view));
        END IF;
    END IF;
END
$fn$;

-- Make a registered view's dependency rows, the triggers on its tables and its
-- status row agree with the catalog. Runs as the installer (it puts triggers on
-- tables the caller may not own), so it decides nothing by its caller: it only
-- follows the registry, which only owners can write, and checks privileges
-- against the view's owner. Called by the registry's trigger, i.e. only when
-- an owner made or changed a registration. The
-- view's owner must be able to read every relation the view reads (its refresh
-- could not work otherwise, and nobody may tie a view to relations they cannot
-- read), and must hold TRIGGER on its tables: a trigger runs on every write to
-- a table, and creating one is what that privilege is for.
CREATE OR REPLACE FUNCTION mvrefresh.sync_view(view regclass)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
-- Serializing on the registry lock must not make an owner wait for long on
-- another owner who left a transaction open after watch(): fail instead.
SET lock_timeout = '5s'
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    owner   oid;
    bases   regclass[];
    tables  regclass[];
    shallow regclass[];
    stale   regclass[];
    targets regclass[];
    changed boolean;
    replaced boolean;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM mvrefresh.view v
                   WHERE v.view = sync_view.view AND NOT v.unwatched) THEN
        RETURN;
    END IF;
    -- Serializes every change of dependencies and triggers; taken by nobody
    -- else (no role is granted a lock mode that conflicts with it).
    LOCK TABLE mvrefresh.view IN SHARE UPDATE EXCLUSIVE MODE;
    SELECT c.relowner INTO owner
    FROM mvrefresh.view v JOIN pg_catalog.pg_class c ON c.oid = v.view AND c.relkind = 'm'
    WHERE v.view = sync_view.view AND NOT v.unwatched;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- shallow: the tables it reads FROM ONLY, whose children are none of its business.
    SELECT a.bases, a.tables, a.shallow INTO bases, tables, shallow
    FROM mvrefresh.admissible_sources(view, owner) a;

    -- Replaced below: the old bases may leave triggers on tables (and on their
    -- descendants) that nothing reads any more.
    stale := ARRAY(SELECT d.base FROM mvrefresh.dependency d WHERE d.view = sync_view.view);
    -- Replace the dependency rows by difference so unchanged rows stay put.
    -- A new edge that would close a cycle fails in dependency_acyclic.
    DELETE FROM mvrefresh.dependency d WHERE d.view = sync_view.view AND d.base <> ALL (bases);
    changed := FOUND;
    INSERT INTO mvrefresh.dependency AS d (view, base, with_children)
    SELECT sync_view.view, b, b <> ALL (shallow) FROM pg_catalog.unnest(bases) AS b
    ON CONFLICT ON CONSTRAINT dependency_pkey DO UPDATE
        SET with_children = EXCLUDED.with_children
        WHERE d.with_children IS DISTINCT FROM EXCLUDED.with_children;
    -- A view new to the registry, or reading other relations now, may have
    -- missed changes nobody signalled: pending, so that a daemon catches up on
    -- it even if it is not running now.
    changed := changed OR FOUND
               OR NOT EXISTS (SELECT 1 FROM mvrefresh.refresh_state s WHERE s.view = sync_view.view);
    IF changed THEN
        INSERT INTO mvrefresh.refresh_state AS s (view, pending_since, marked_at)
        VALUES (sync_view.view, pg_catalog.clock_timestamp(), pg_catalog.clock_timestamp())
        ON CONFLICT ON CONSTRAINT refresh_state_pkey DO UPDATE
            SET pending_since = COALESCE(s.pending_since, EXCLUDED.pending_since),
                marked_at = EXCLUDED.marked_at;
    END IF;

    -- Descendants carry triggers whoever owns them: the view's owner reads their
    -- rows through the parent with the parent's privileges alone, as PostgreSQL
    -- does, and the triggers only tell that a write happened.
    targets := ARRAY(SELECT t::pg_catalog.regclass
                     FROM mvrefresh.with_descendants(tables::pg_catalog.oid[]) AS t);
    -- Triggers of another form (an older release's, or naming OIDs that a
    -- restore changed) are replaced below: the generations they named become
    -- orphans for the sweep.
    replaced := EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g
                        WHERE g.tgrelid = ANY (targets::pg_catalog.oid[])
                          AND g.tgname IN ('mvrefresh_notify', 'mvrefresh_notify_truncate')
                          AND NOT mvrefresh.has_own_triggers(g.tgrelid));
    PERFORM mvrefresh.add_triggers(targets);
    -- Only when the view stopped reading something or triggers were replaced:
    -- release_tables() also sweeps the whole registry for leftovers
    -- (relations dropped unseen, orphaned generations), work that grows with
    -- the number of watched views and has nothing to do with a view that is
    -- new or reads what it read. unwatch(), forget() and the DROP handlers
    -- still sweep.
    stale := ARRAY(SELECT t FROM pg_catalog.unnest(stale) AS t WHERE t <> ALL (bases));
    IF pg_catalog.cardinality(stale) > 0 OR replaced THEN
        PERFORM mvrefresh.release_tables(stale);
    END IF;
    PERFORM mvrefresh.grant_maintain(view, true);
    PERFORM mvrefresh.warn_daemons(view);

    IF changed AND pg_catalog.cardinality(bases) = 0 THEN
        RAISE WARNING '"%" reads no table that can carry a trigger', view
            USING HINT = 'It is registered, but no change will ever notify the daemon.';
    END IF;
END
$fn$;

-- Say at once, not at the first refresh, when a daemon working on this
-- database (alive in mvrefresh.daemon) runs as a role that may not refresh
-- view, with the grant that fixes it (refresh_denied()).
CREATE OR REPLACE FUNCTION mvrefresh.warn_daemons(view regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    who name;
    why text;
BEGIN
    FOR who IN
        -- (One rule for "alive": the view's.)
        SELECT DISTINCT d.role FROM mvrefresh.daemons d
        WHERE d.alive
          AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = d.role)
    LOOP
        why := mvrefresh.refresh_denied(warn_daemons.view, who);
        IF why IS NOT NULL THEN
            RAISE WARNING 'mvrefreshd will not be able to refresh %: %', warn_daemons.view, why;
        END IF;
    END LOOP;
END
$fn$;

-- What view reads, checked against its owner: every relation it reads
-- (bases), the tables among them (tables), which get triggers, and those it
-- reads FROM ONLY (shallow). Refuses, with SQLSTATE and hint, what cannot be
-- watched.
-- It grew shallow, which changes its result type: the old form goes (only that
-- one, so that re-running this file keeps the function, its owner and grants).
DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
               WHERE p.oid = pg_catalog.to_regprocedure('mvrefresh.admissible_sources(regclass, oid)')
                 AND 'shallow' <> ALL (p.proargnames)) THEN
        DROP FUNCTION mvrefresh.admissible_sources(regclass, oid);
    END IF;
END
$do$;
CREATE OR REPLACE FUNCTION mvrefresh.admissible_sources(view regclass, owner oid,
                                            OUT bases regclass[], OUT tables regclass[],
                                            OUT shallow regclass[])
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    src record;
BEGIN
    bases := '{}';
    tables := '{}';
    shallow := '{}';
    -- Ordered by OID, so concurrent callers lock tables in one order.
    FOR src IN SELECT s.source, s.kind, s.with_children FROM mvrefresh.sources(view) s
               ORDER BY s.source::pg_catalog.oid LOOP
        IF NOT src.with_children THEN
            shallow := shallow || src.source;
        END IF;
        IF src.kind = 'f' THEN
            -- No trigger can fire for changes made on the foreign server.
            RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
                MESSAGE = pg_catalog.format(
                    'materialized view "%s" reads foreign table "%s", whose changes cannot be detected',
                    view, src.source);
        END IF;
        IF NOT pg_catalog.has_table_privilege(owner, src.source, 'SELECT') THEN
            RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
                MESSAGE = pg_catalog.format(
                    'permission denied to watch materialized view %s: its owner %I may not read %s',
                    view, pg_catalog.pg_get_userbyid(owner), src.source);
        END IF;
        IF src.kind = 'm' THEN
            -- Its readers are refreshed after it, so it must be watched itself;
            -- watching it implicitly would choose its settings for the user.
            IF NOT EXISTS (SELECT 1 FROM mvrefresh.view u
                           WHERE u.view = src.source AND NOT u.unwatched) THEN
                RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
                    MESSAGE = pg_catalog.format(
                        'materialized view "%s" reads materialized view "%s", which is not watched',
                        view, src.source),
                    HINT = pg_catalog.format('Watch it first: SELECT mvrefresh.watch(%L);',
                                             src.source::pg_catalog.text);
            END IF;
        ELSE
            IF NOT pg_catalog.has_table_privilege(owner, src.source, 'TRIGGER') THEN
                RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
                    MESSAGE = pg_catalog.format(
                        'permission denied to watch materialized view %s: its owner %I may not create triggers on table %s, which it reads',
                        view, pg_catalog.pg_get_userbyid(owner), src.source),
                    HINT = pg_catalog.format('The table''s owner can GRANT TRIGGER ON %s TO %I.',
                                             src.source, pg_catalog.pg_get_userbyid(owner));
            END IF;
            tables := tables || src.source;
        END IF;
        bases := bases || src.source;
    END LOOP;
END
$fn$;

-- Revoke every privilege on rel from everyone but its owner: what default
-- privileges or a hand-made GRANT gave away.
CREATE OR REPLACE FUNCTION mvrefresh.reset_grants(rel regclass)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT mvrefresh.revoke_all_but('TABLE ' || c.oid::pg_catalog.regclass::pg_catalog.text,
                                    c.relacl, c.relowner)
    FROM pg_catalog.pg_class c WHERE c.oid = reset_grants.rel;
$fn$;

-- The generation sequence of a table (docs/quiet-triggers.md), made on first
-- use, armed. Its first value comes from the global sequence, never one a
-- session may have seen before; setval() marks it called (a sequence never
-- called reads as NULL: disarmed). CACHE 1, or a new value could hide in
-- another session's cache.
CREATE OR REPLACE FUNCTION mvrefresh.generation_of(tbl regclass)
RETURNS regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    name text := 'gen_' || tbl::pg_catalog.oid::pg_catalog.text;
    seq  regclass := pg_catalog.to_regclass('mvrefresh.' || name);
BEGIN
    IF seq IS NULL THEN
        EXECUTE pg_catalog.format('CREATE SEQUENCE mvrefresh.%I CACHE 1', name);
        seq := pg_catalog.to_regclass('mvrefresh.' || name);
        PERFORM pg_catalog.setval(seq, pg_catalog.nextval('mvrefresh.generation'::pg_catalog.regclass) * 2 + 1);
        -- Whatever default privileges gave away goes (whoever may setval() it can
        -- disarm the table); every writer's trigger reads it (pg_sequence_last_value
        -- needs SELECT).
        PERFORM mvrefresh.reset_grants(seq);
        EXECUTE pg_catalog.format('GRANT SELECT ON SEQUENCE %s TO PUBLIC', seq);
    END IF;
    RETURN seq;
END
$fn$;

-- The quiet triggers on each table, unless there already in this form. Any
-- other form is replaced: an older release's (a NOTIFY on every statement), or
-- one whose OIDs no longer match after a dump and restore (the WHEN condition
-- names the generation and the setting by OID; the argument is the
-- generation's OID, kept only to recognise the form). So reinstalling the SQL
-- upgrades and repairs triggers in place. The views reading a table whose
-- triggers were replaced are marked pending: what happened under the old ones
-- was only in the memory of a daemon that may be gone. So are the views
-- reading a table that had none and is already read (a partition attached or
-- created under a watched table, or one that missed its triggers): nothing
-- signalled its writes, nor that it came. Tables in OID order, a
-- stable lock order. The WHEN condition names the generation as a regclass
-- constant, which also makes the triggers depend on it; it is all a statement
-- on a disarmed table pays (one sequence read, no PL/pgSQL).
CREATE OR REPLACE FUNCTION mvrefresh.add_triggers(tables regclass[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    tbl      regclass;
    seq      regclass;
    trg      record;
    replaced boolean;
BEGIN
    FOR tbl IN SELECT DISTINCT t::pg_catalog.oid::pg_catalog.regclass
               FROM pg_catalog.unnest(tables) AS t ORDER BY 1 LOOP
        seq := mvrefresh.generation_of(tbl);
        replaced := false;
        FOR trg IN SELECT * FROM (VALUES ('mvrefresh_notify', 'INSERT OR UPDATE OR DELETE'),
                                         ('mvrefresh_notify_truncate', 'TRUNCATE')) AS v(name, events)
        LOOP
            CONTINUE WHEN EXISTS (
                SELECT 1 FROM pg_catalog.pg_trigger t
                WHERE t.tgrelid = tbl AND t.tgname = trg.name AND t.tgnargs = 1
                  AND t.tgenabled IN ('O', 'A') -- not disabled (DISABLE TRIGGER)
                  AND t.tgfoid = 'mvrefresh.notify()'::pg_catalog.regprocedure
                  AND pg_catalog.encode(t.tgargs, 'escape')
                      = seq::pg_catalog.oid::pg_catalog.text || E'\\000'
                  AND pg_catalog.strpos(pg_catalog.pg_get_triggerdef(t.oid),
                                        pg_catalog.quote_literal(seq::pg_catalog.text)
                                        || '::regclass) IS NOT NULL') > 0);
            IF EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                       WHERE t.tgrelid = tbl AND t.tgname = trg.name) THEN
                EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', trg.name, tbl);
            END IF;
            replaced := true;
            EXECUTE pg_catalog.format(
                'CREATE TRIGGER %I AFTER %s ON %s FOR EACH STATEMENT'
                ' WHEN (pg_catalog.pg_sequence_last_value(%L::pg_catalog.regclass) IS NOT NULL)'
                ' EXECUTE FUNCTION mvrefresh.notify(%L)',
                trg.name, trg.events, tbl, seq::pg_catalog.text,
                seq::pg_catalog.oid::pg_catalog.text);
        END LOOP;
        IF replaced THEN
            UPDATE mvrefresh.refresh_state AS s
            SET pending_since = COALESCE(s.pending_since, pg_catalog.clock_timestamp()),
                marked_at = pg_catalog.clock_timestamp()
            FROM mvrefresh.readers(ARRAY[tbl::pg_catalog.oid]) AS r
            WHERE s.view = r.view;
        END IF;
    END LOOP;
END
$fn$;

-- Whether tbl carries both quiet triggers in the form add_triggers() makes:
-- named ours, calling notify(), with tbl's own generation as their argument
-- (a trigger anyone else made on their own table calls notify() with no such
-- argument, and is not taken for ours), and enabled: ALTER TABLE ... DISABLE
-- TRIGGER (or ENABLE REPLICA, which ordinary sessions skip) silences a table
-- as a dropped trigger would.
CREATE OR REPLACE FUNCTION mvrefresh.has_own_triggers(tbl oid)
RETURNS boolean
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT pg_catalog.count(*) = 2
    FROM pg_catalog.pg_trigger t
    WHERE t.tgrelid = has_own_triggers.tbl
      AND t.tgname IN ('mvrefresh_notify', 'mvrefresh_notify_truncate')
      AND t.tgenabled IN ('O', 'A')
      AND t.tgfoid = 'mvrefresh.notify()'::pg_catalog.regprocedure
      AND pg_catalog.encode(t.tgargs, 'escape')
          = pg_catalog.to_regclass('mvrefresh.gen_' || has_own_triggers.tbl::pg_catalog.text)
                ::pg_catalog.oid::pg_catalog.text || E'\\000';
$fn$;

-- After DDL that may have changed which tables lie under a watched table:
-- CREATE TABLE ... PARTITION OF or INHERITS, ALTER TABLE ... ATTACH or DETACH
-- PARTITION, INHERIT or NO INHERIT, DROP TABLE. touched: the tables the DDL
-- named (the parent for ATTACH and DETACH, the new or altered child
-- otherwise); dropped: tables a DROP removed that had a generation.
--
-- It works on what the DDL touched, never across the database, and takes no
-- lock of its own beyond those of the triggers it creates: the user's DDL
-- already locks the tree it changes, and a registry lock here would be held
-- until the user's transaction ends (a loader's CREATE PARTITION + COPY), so
-- that two loaders, or a loader and watch(), would stall or deadlock each
-- other. What a concurrent watch() or unwatch() does to the same tables at
-- worst leaves a trigger too many (a sequence read per statement, cleaned by
-- the next watch(), unwatch() or install) or fails this part with a WARNING.
--  1. The tables under touched that a watched view reads and that lack their
--     triggers get them (add_triggers() marks their readers pending), each
--     try in a subtransaction of its own so that the rest still happens.
--  2. Tables this transaction detached (or un-inherited) from a watched tree:
--     their triggers, if ours (named, calling notify(), with their own
--     generation as argument), go when nothing reads them any more, only if
--     this transaction already holds a lock on them (it took them away from
--     their parent) and only under READ COMMITTED (an older snapshot may miss
--     a newer registration): nothing else is locked or waited for.
--  3. Always, when the DDL concerned a watched tree: a marker, as a write
--     would leave, for every watched table read with its children at or above
--     a touched table, and for the tables dropped or released (their former
--     parents cannot be found any more); then the doorbell and a registry
--     reload where transactions cannot be prepared (see notify()).
CREATE OR REPLACE FUNCTION mvrefresh.sync_descendants(touched oid[], dropped oid[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    missing  oid[];
    released oid[] := '{}';
    marked   oid[];
    tbl      oid;
    prepared boolean := pg_catalog.current_setting('max_prepared_transactions')::pg_catalog.int4 > 0;
BEGIN
    -- No watched table with the triggers that name its own generation: the
    -- catalog is in no state of this file's making. A dump is being restored
    -- (its triggers come last, and name the generations of the old OIDs), or
    -- was restored without the repair that registry() asks for. That repair
    -- (installing the SQL again, or watch()) puts the descendants right too.
    -- (Not when some table lacks them: its owner may drop them, and that must
    -- not stop this for every other owner's tables.)
    IF EXISTS (SELECT 1 FROM mvrefresh.dependency d
               JOIN pg_catalog.pg_class c ON c.oid = d.base AND c.relkind IN ('r', 'p'))
       AND NOT EXISTS (SELECT 1 FROM mvrefresh.dependency d
                       JOIN pg_catalog.pg_class c ON c.oid = d.base AND c.relkind IN ('r', 'p')
                       WHERE mvrefresh.has_own_triggers(d.base)) THEN
        RETURN;
    END IF;
    -- 1.
    missing := ARRAY(
        SELECT w FROM mvrefresh.with_descendants(touched) AS w
        WHERE EXISTS (SELECT 1 FROM mvrefresh.readers(ARRAY[w]))
          AND NOT mvrefresh.has_own_triggers(w));
    FOREACH tbl IN ARRAY missing LOOP
        BEGIN
            PERFORM mvrefresh.add_triggers(ARRAY[tbl::pg_catalog.regclass]);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'mvrefresh: could not put the triggers on %: %', tbl::pg_catalog.regclass, SQLERRM
                USING HINT = 'Run mvrefresh.watch() again on the views that read it; the backstop finds its writes meanwhile.';
        END;
    END LOOP;
    -- 2.
    IF pg_catalog.current_setting('transaction_isolation') = 'read committed' THEN
        FOR tbl IN
            SELECT DISTINCT t.tgrelid FROM pg_catalog.pg_trigger t
            WHERE t.tgfoid = 'mvrefresh.notify()'::pg_catalog.regprocedure
              AND mvrefresh.has_own_triggers(t.tgrelid)
              AND NOT EXISTS (SELECT 1 FROM mvrefresh.readers(ARRAY[t.tgrelid]))
              AND EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                          WHERE l.locktype = 'relation' AND l.relation = t.tgrelid
                            AND l.pid = pg_catalog.pg_backend_pid() AND l.granted)
            ORDER BY 1
        LOOP
            BEGIN
                PERFORM mvrefresh.release_tables(ARRAY[tbl::pg_catalog.regclass]);
                released := released || tbl;
            EXCEPTION WHEN OTHERS THEN
                NULL; -- left for the next watch(), unwatch() or install
            END;
        END LOOP;
    END IF;
    -- 3.
    marked := ARRAY(
        WITH RECURSIVE up(rel) AS (
            SELECT t FROM pg_catalog.unnest(touched) AS t
          UNION
            SELECT i.inhparent FROM up JOIN pg_catalog.pg_inherits i ON i.inhrelid = up.rel
        )
        SELECT d.base::pg_catalog.oid FROM up
        JOIN mvrefresh.dependency d ON d.base::pg_catalog.oid = up.rel AND d.with_children
      UNION
        SELECT pg_catalog.unnest(released)
      UNION
        SELECT pg_catalog.unnest(dropped));
    IF pg_catalog.cardinality(marked) = 0 AND pg_catalog.cardinality(missing) = 0 THEN
        RETURN;
    END IF;
    -- And a marker naming mvrefresh.change_log itself, which no view reads: a
    -- daemon that takes a marker of a table no loaded view reads loads the
    -- registry again, so that it learns which views now read which tables
    -- even where no NOTIFY may be sent (a table it knows already, attached
    -- under another, would otherwise keep mapping to its old readers only).
    INSERT INTO mvrefresh.change_log AS m (table_oid, xact)
    SELECT t, pg_catalog.pg_current_xact_id()
    FROM pg_catalog.unnest(marked || 'mvrefresh.change_log'::pg_catalog.regclass::pg_catalog.oid) AS t
    ON CONFLICT (table_oid, xact) DO NOTHING;
    IF NOT prepared THEN
        FOREACH tbl IN ARRAY marked LOOP
            PERFORM pg_catalog.pg_notify(mvrefresh.change_channel(), tbl::pg_catalog.text);
        END LOOP;
        PERFORM pg_catalog.pg_notify(mvrefresh.control_channel(), 'reload');
    END IF;
END
$fn$;

-- A registration marked unwatched goes, with what only it needed. Views of
-- other owners that read it lose that dependency (they stay watched, and are
-- named in a WARNING): one owner must not be able to pin another's
-- registration. Runs as the installer, and decides nothing by its caller: the
-- mark could only be set by the view's owner (check_owner()).
CREATE OR REPLACE FUNCTION mvrefresh.forget(view regclass)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET lock_timeout = '5s'
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    stale  regclass[];
    reader regclass;
BEGIN
    LOCK TABLE mvrefresh.view IN SHARE UPDATE EXCLUSIVE MODE;
    IF NOT EXISTS (SELECT 1 FROM mvrefresh.view v WHERE v.view = forget.view AND v.unwatched) THEN
        RETURN;
    END IF;
    stale := ARRAY(SELECT d.base FROM mvrefresh.dependency d WHERE d.view = forget.view);
    FOR reader IN SELECT d.view FROM mvrefresh.dependency d WHERE d.base = forget.view
                  ORDER BY d.view::pg_catalog.oid LOOP
        RAISE WARNING 'materialized view "%" reads "%", which is no longer watched', reader, view
            USING DETAIL = 'Its changes no longer cascade to the reader.',
                  HINT = 'Watch it again, or unwatch the reader.';
    END LOOP;
    DELETE FROM mvrefresh.dependency d WHERE d.base = forget.view;
    -- dependency and refresh_state rows go with it (ON DELETE CASCADE).
    DELETE FROM mvrefresh.view v WHERE v.view = forget.view;
    DELETE FROM mvrefresh.pending_view p WHERE p.view = forget.view::pg_catalog.oid;
    PERFORM mvrefresh.release_tables(stale);
    PERFORM mvrefresh.grant_maintain(view, false);
END
$fn$;

-- A registration made or unwatched, by watch()/unwatch() or by hand.
CREATE OR REPLACE FUNCTION mvrefresh.on_registration()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- A row that comes with a created_at of its own is being restored: pg_dump writes every
    -- column (an extension's registrations are loaded while this trigger exists), whereas
    -- watch() and other roles' INSERTs cannot set it. Its dependencies, status and triggers
    -- come with the dump; making them here would collide with them. registry() then asks
    -- for the repair, as after any restore.
    IF TG_OP = 'INSERT' AND NEW.created_at IS DISTINCT FROM pg_catalog.now() THEN
        RETURN NULL;
    END IF;
    IF NEW.unwatched THEN
        PERFORM mvrefresh.forget(NEW.view);
    ELSE
        PERFORM mvrefresh.sync_view(NEW.view);
    END IF;
    RETURN NULL;
END
$fn$;

-- Every registration made or changed is synced (a retune too: what the view
-- reads may have changed since). Only owners can make or change one, so only
-- they start this work, and only for their own views.
DROP TRIGGER IF EXISTS view_unwatched ON mvrefresh.view;
DROP TRIGGER IF EXISTS view_registered ON mvrefresh.view;
CREATE TRIGGER view_registered
    AFTER INSERT OR UPDATE ON mvrefresh.view
    FOR EACH ROW EXECUTE FUNCTION mvrefresh.on_registration();

-- SECURITY INVOKER, like unwatch(): the caller is current_user, which is right
-- even inside another role's code (see "Who may do what").
CREATE OR REPLACE FUNCTION mvrefresh.watch(
    view         regclass,
    debounce     interval DEFAULT '1 second',
    max_wait     interval DEFAULT '30 seconds',
    concurrently boolean  DEFAULT true)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- Validate everything before changing anything. (The call is one
    -- transaction anyway; this also gives the clearest message first.)
    IF watch.view IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'view must not be NULL';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                   WHERE c.oid = watch.view AND c.relkind = 'm') THEN
        RAISE EXCEPTION USING ERRCODE = 'wrong_object_type',
            MESSAGE = pg_catalog.format('"%s" is not a materialized view', watch.view),
            HINT = 'Only materialized views can be watched; plain views are always current.';
    END IF;
    -- The daemon counts whole milliseconds (setting_ms()): less than one would
    -- be none.
    IF mvrefresh.setting_ms(watch.debounce) < 1 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'debounce must be at least 1 ms',
            DETAIL = pg_catalog.format('debounce is %s.', watch.debounce);
    END IF;
    IF mvrefresh.setting_ms(watch.max_wait) < 1 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'max_wait must be at least 1 ms',
            DETAIL = pg_catalog.format('max_wait is %s.', watch.max_wait);
    END IF;
    IF watch.max_wait < watch.debounce THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = pg_catalog.format('max_wait (%s) must not be less than debounce (%s)',
                                        watch.max_wait, watch.debounce);
    END IF;
    IF watch.concurrently IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'concurrently must not be NULL';
    END IF;
    PERFORM mvrefresh.require_owner(watch.view, current_user, 'watch');

    -- Re-watching retunes only; "enabled" stays whatever the user set. Either
    -- way the registry's trigger syncs dependencies and triggers, since what
    -- the view reads may have changed (CREATE OR REPLACE VIEW in between).
    INSERT INTO mvrefresh.view AS v (view, debounce, max_wait, "concurrently")
    VALUES (watch.view, watch.debounce, watch.max_wait, watch.concurrently)
    -- By constraint name: in PL/pgSQL "(view)" would clash with the parameter.
    ON CONFLICT ON CONSTRAINT view_pkey DO UPDATE
        SET debounce = EXCLUDED.debounce,
            max_wait = EXCLUDED.max_wait,
            "concurrently" = EXCLUDED.concurrently;
END
$fn$;

COMMENT ON FUNCTION mvrefresh.watch(regclass, interval, interval, boolean) IS
    'Register (or retune) a materialized view and install notify triggers on its base tables';

CREATE OR REPLACE FUNCTION mvrefresh.unwatch(view regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    reader regclass;
BEGIN
    IF unwatch.view IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'view must not be NULL';
    END IF;
    PERFORM mvrefresh.require_owner(unwatch.view, current_user, 'unwatch');
    -- A watched view of one's own still reads it: unwatch that first. (Other
    -- owners' readers do not hold it: see forget().)
    SELECT d.view INTO reader
    FROM mvrefresh.dependency d
    WHERE d.base = unwatch.view AND mvrefresh.may_manage(d.view, current_user)
    ORDER BY d.view::pg_catalog.oid
    LIMIT 1;
    IF reader IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = pg_catalog.format(
                'materialized view "%s" is read by watched materialized view "%s"',
                unwatch.view, reader),
            HINT = 'Unwatch that view first.';
    END IF;
    UPDATE mvrefresh.view v SET unwatched = true WHERE v.view = unwatch.view;
    IF NOT FOUND THEN
        RAISE NOTICE '"%" is not watched', unwatch.view;
    END IF;
END
$fn$;

COMMENT ON FUNCTION mvrefresh.unwatch(regclass) IS
    'Forget a watched view and drop notify triggers no remaining view needs';

-- Stop and start refreshing a watched view; its triggers and registration stay
-- (changes still mark it pending, so it is caught up when resumed). A plain
-- UPDATE of "enabled" by the view's owner does the same, silently matching no
-- row for anyone else; these say why.
CREATE OR REPLACE FUNCTION mvrefresh.set_enabled(view regclass, enabled boolean, verb text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF set_enabled.view IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'view must not be NULL';
    END IF;
    PERFORM mvrefresh.require_owner(set_enabled.view, current_user, set_enabled.verb);
    UPDATE mvrefresh.view v SET enabled = set_enabled.enabled WHERE v.view = set_enabled.view;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = pg_catalog.format('"%s" is not watched', set_enabled.view);
    END IF;
END
$fn$;

CREATE OR REPLACE FUNCTION mvrefresh.pause(view regclass)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT mvrefresh.set_enabled(pause.view, false, 'pause') $fn$;

CREATE OR REPLACE FUNCTION mvrefresh.resume(view regclass)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT mvrefresh.set_enabled(resume.view, true, 'resume') $fn$;

-- Refresh requests (mvrefresh.refresh()): at most one per view, made by its
-- owners, deleted by the first refresh that succeeds after it was made. A
-- table of its own rather than a column of mvrefresh.view, so that the daemon
-- never waits on a lock an owner holds: owners may only INSERT here (the time
-- and the role come from defaults, not from them), and an INSERT ... ON
-- CONFLICT DO NOTHING locks no existing row. Only the daemon's refresh_end()
-- deletes (and unwatch(), through the foreign key).
CREATE TABLE IF NOT EXISTS mvrefresh.refresh_request (
    view         regclass    PRIMARY KEY REFERENCES mvrefresh.view ON DELETE CASCADE,
    requested_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    requested_by name        NOT NULL DEFAULT CURRENT_USER
);
ALTER TABLE mvrefresh.refresh_request ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS request_own ON mvrefresh.refresh_request;
CREATE POLICY request_own ON mvrefresh.refresh_request FOR INSERT
    WITH CHECK (mvrefresh.may_manage(view, current_user));
DO $do$
BEGIN
    PERFORM mvrefresh.revoke_all_but('TABLE mvrefresh.refresh_request', c.relacl, c.relowner)
    FROM pg_catalog.pg_class c WHERE c.oid = 'mvrefresh.refresh_request'::pg_catalog.regclass;
END
$do$;
GRANT INSERT (view) ON mvrefresh.refresh_request TO PUBLIC;

-- A request made, or served: the daemon loads the registry again (a paused
-- view is in it only while it has a request). Statements that changed no row
-- say nothing, so calling refresh() again while a request waits costs no
-- reload.
CREATE OR REPLACE FUNCTION mvrefresh.notify_request()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF EXISTS (SELECT 1 FROM changed) THEN
        PERFORM pg_catalog.pg_notify(mvrefresh.control_channel(), 'reload');
    END IF;
    RETURN NULL;
END
$fn$;
DROP TRIGGER IF EXISTS request_made ON mvrefresh.refresh_request;
CREATE TRIGGER request_made AFTER INSERT ON mvrefresh.refresh_request
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION mvrefresh.notify_request();
DROP TRIGGER IF EXISTS request_served ON mvrefresh.refresh_request;
CREATE TRIGGER request_served AFTER DELETE ON mvrefresh.refresh_request
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION mvrefresh.notify_request();

-- Refresh a watched view now: the daemon refreshes it as soon as a worker is
-- free, ignoring its debounce (and a retry backoff: once per request), paused
-- or not (a paused view stays paused: it is loaded only while it has a
-- request). The request waits for a daemon that is not running, survives a
-- restart, and outlives a failed refresh; calling this again while it waits
-- asks for nothing more. It is served when refresh_requested is NULL again in
-- mvrefresh.status. Runs as its caller, like pause(): only the view's owners
-- may ask.
CREATE OR REPLACE FUNCTION mvrefresh.refresh(view regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF refresh.view IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'view must not be NULL';
    END IF;
    PERFORM mvrefresh.require_owner(refresh.view, current_user, 'refresh');
    IF NOT EXISTS (SELECT 1 FROM mvrefresh.view v
                   WHERE v.view = refresh.view AND NOT v.unwatched) THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = pg_catalog.format('"%s" is not watched', refresh.view),
            HINT = pg_catalog.format('Watch it first: SELECT mvrefresh.watch(%L);',
                                     refresh.view::pg_catalog.text);
    END IF;
    INSERT INTO mvrefresh.refresh_request (view) VALUES (refresh.view) ON CONFLICT DO NOTHING;
    IF NOT EXISTS (SELECT 1 FROM mvrefresh.daemons d WHERE d.alive) THEN
        RAISE WARNING 'no mvrefreshd is working on this database: % is refreshed when one starts',
            refresh.view
            USING HINT = 'SELECT * FROM mvrefresh.daemons shows the last heartbeat of each daemon.';
    END IF;
END
$fn$;

--------------------------------------------------------------------------------
-- Daemon interface
--------------------------------------------------------------------------------

-- What each daemon working on this database last said of itself
-- (mvrefresh.heartbeat(), every heartbeat_interval). Only the installer writes
-- it; everyone reads it through mvrefresh.daemons. A daemon that cannot
-- connect, authenticate or work says nothing: its heartbeat goes stale.
CREATE TABLE IF NOT EXISTS mvrefresh.daemon (
    host             text        NOT NULL,
    pid              integer     NOT NULL,
    started          timestamptz NOT NULL,
    version          text        NOT NULL,
    role             name        NOT NULL,
    heartbeat        timestamptz NOT NULL,
    interval_ms      bigint      NOT NULL,
    status           text        NOT NULL,
    doorbells        bigint      NOT NULL,
    invalid_payloads bigint      NOT NULL,
    PRIMARY KEY (host, pid, started)
);
-- How its connections are ("listener up, registry up, control up, workers
-- 1/2 up"), and the last connection failure any of them had, with its time:
-- a daemon that works but cannot keep a worker connected shows it here.
ALTER TABLE mvrefresh.daemon ADD COLUMN IF NOT EXISTS connections text;
ALTER TABLE mvrefresh.daemon ADD COLUMN IF NOT EXISTS last_error text;
ALTER TABLE mvrefresh.daemon ADD COLUMN IF NOT EXISTS last_error_at timestamptz;
-- Whether it holds the leader lease and does the work, or stands by (several
-- daemons on one database: README, High availability).
ALTER TABLE mvrefresh.daemon ADD COLUMN IF NOT EXISTS active boolean;

-- One heartbeat: info is host, pid, version, started (epoch seconds), the
-- interval to the next one (ms), the status line, doorbells heard, invalid
-- payloads ignored, the connections, the last connection error ('' if none)
-- and its time (epoch seconds, 0 if never), and whether it is the active
-- daemon ('true' or 'false'; daemons from before the leader lease send no
-- such element, and were always active). The role is the session's own: no
-- daemon speaks for another. Rows not heard of for a day go.
CREATE OR REPLACE FUNCTION mvrefresh.heartbeat(info text[])
RETURNS void
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
    INSERT INTO mvrefresh.daemon AS d (host, pid, started, version, role, heartbeat, interval_ms,
                                       status, doorbells, invalid_payloads, connections,
                                       last_error, last_error_at, active)
    VALUES (heartbeat.info[1], heartbeat.info[2]::pg_catalog.int4,
            pg_catalog.to_timestamp(heartbeat.info[4]::pg_catalog.float8), heartbeat.info[3],
            session_user, pg_catalog.clock_timestamp(), heartbeat.info[5]::pg_catalog.int8,
            heartbeat.info[6], heartbeat.info[7]::pg_catalog.int8, heartbeat.info[8]::pg_catalog.int8,
            heartbeat.info[9], NULLIF(heartbeat.info[10], ''),
            pg_catalog.to_timestamp(NULLIF(heartbeat.info[11]::pg_catalog.float8, 0)),
            COALESCE(heartbeat.info[12]::pg_catalog.bool, true))
    ON CONFLICT (host, pid, started) DO UPDATE
        SET version = EXCLUDED.version, role = EXCLUDED.role, heartbeat = EXCLUDED.heartbeat,
            interval_ms = EXCLUDED.interval_ms, status = EXCLUDED.status,
            doorbells = EXCLUDED.doorbells, invalid_payloads = EXCLUDED.invalid_payloads,
            connections = EXCLUDED.connections, last_error = EXCLUDED.last_error,
            last_error_at = EXCLUDED.last_error_at, active = EXCLUDED.active;
    DELETE FROM mvrefresh.daemon d
    WHERE d.heartbeat OPERATOR(pg_catalog.<) pg_catalog.clock_timestamp() - '1 day'::pg_catalog.interval;
$fn$;

-- The leader lease (README, High availability): which daemon does the work.
-- One row, written only by take_lease() and release_lease(), which only
-- mvrefresh_daemon may call: no other role can take the lease or keep it from
-- the daemons (an advisory lock, which needs no privilege, could). The holder
-- is named as in mvrefresh.daemon (host, pid, started). Every time here is the
-- server's clock_timestamp(): one clock for all daemons, whatever their hosts'
-- clocks say.
CREATE TABLE IF NOT EXISTS mvrefresh.lease (
    id       boolean     PRIMARY KEY DEFAULT true CHECK (id), -- one row
    host     text        NOT NULL,
    pid      integer     NOT NULL,
    started  timestamptz NOT NULL,
    role     name        NOT NULL,
    acquired timestamptz NOT NULL, -- when this holder took it
    expires  timestamptz NOT NULL
);
-- The term: a new one each time the lease is taken, by another daemon or by
-- its holder once it had expired, never by a renewal (check_holder()). From a
-- sequence, so that no term comes twice, whatever happens to the row (while
-- the install lasts: the fenced calls also name the daemon's host, pid and
-- start).
CREATE SEQUENCE IF NOT EXISTS mvrefresh.lease_term CACHE 1;
ALTER TABLE mvrefresh.lease ADD COLUMN IF NOT EXISTS term bigint;
-- A unique key over the holder and its term makes them the row's key columns:
-- the row lock the fenced calls take (FOR KEY SHARE) conflicts with an update
-- that changes them (a new term), not with a renewal, which changes only
-- expires.
CREATE UNIQUE INDEX IF NOT EXISTS lease_holder_term ON mvrefresh.lease (host, pid, started, term);
-- Readable by all (who leads, until when); written by the functions below only.
DO $do$
BEGIN
    PERFORM mvrefresh.reset_grants('mvrefresh.lease'::pg_catalog.regclass);
    PERFORM mvrefresh.reset_grants('mvrefresh.lease_term'::pg_catalog.regclass);
END
$do$;
GRANT SELECT ON mvrefresh.lease TO PUBLIC;

-- Whether host, pid and started name the daemon in holder, the array the
-- daemon passes to every call below: host, pid, start (epoch seconds) and,
-- for the fenced calls, the term of its lease. The one place that matches a
-- row to the array, the lease's and the daemon's alike (take_lease() and
-- heartbeat() read it to write the row; the fence compares the term). A
-- single expression in SQL, without SET or SECURITY DEFINER, so that the
-- planner inlines it into its callers (refresh_begin() runs it on every
-- refresh); hence every name in it qualified, whatever search_path it is
-- inlined under.
CREATE OR REPLACE FUNCTION mvrefresh.names_holder(host text, pid integer, started timestamptz,
                                                  holder text[])
RETURNS boolean
LANGUAGE sql
IMMUTABLE
AS $fn$
    SELECT names_holder.host OPERATOR(pg_catalog.=) names_holder.holder[1]
       AND names_holder.pid OPERATOR(pg_catalog.=) names_holder.holder[2]::pg_catalog.int4
       AND names_holder.started OPERATOR(pg_catalog.=)
           pg_catalog.to_timestamp(names_holder.holder[3]::pg_catalog.float8)
$fn$;

-- Take or renew the lease for ttl_ms: holder is host, pid, started (epoch
-- seconds). It is taken when nobody holds it, when it expired, or when the
-- caller holds it already (a renewal). Two first callers race on the primary
-- key: ON CONFLICT makes the second one's attempt an update, judged on the
-- row the first committed. Returns whether the caller holds it, until when,
-- and in which term (a new one unless this was a renewal of a lease that had
-- not expired). Taking it anew waits for the fenced calls in progress of the
-- term before (check_holder()). A session that keeps the row locked can delay
-- this call, not win the lease: lock_timeout bounds the wait to a third of the
-- TTL (one renewal interval of the daemon), so that the caller learns of it in
-- time.
-- (Its result gained term in protocol 4: the old form goes, as CREATE OR
-- REPLACE cannot change a result.)
DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
               WHERE p.oid = pg_catalog.to_regprocedure('mvrefresh.take_lease(text[], bigint)')
                 AND NOT ('term' = ANY (p.proargnames))) THEN
        DROP FUNCTION mvrefresh.take_lease(text[], bigint);
    END IF;
END
$do$;
CREATE OR REPLACE FUNCTION mvrefresh.take_lease(holder text[], ttl_ms bigint)
RETURNS TABLE (held boolean, expires timestamptz, term bigint)
LANGUAGE plpgsql
VOLATILE
ROWS 1
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    h_host    text        := take_lease.holder[1];
    h_pid     integer     := take_lease.holder[2]::pg_catalog.int4;
    h_started timestamptz := pg_catalog.to_timestamp(take_lease.holder[3]::pg_catalog.float8);
BEGIN
    -- (At most an hour: a lease nobody can break for longer would be an outage.)
    IF take_lease.ttl_ms IS NULL OR take_lease.ttl_ms < 1 OR take_lease.ttl_ms > 3600000
       OR h_host IS NULL OR h_pid IS NULL OR h_started IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'mvrefresh.take_lease: holder needs host, pid, started; 0 < ttl_ms <= 3600000';
    END IF;
    -- Another daemon's lease that has not expired: say so without locking the
    -- row (an upsert locks it even where its WHERE is false, and would take a
    -- transaction id and a commit flush every interval per standby, with the
    -- leader's renewal queued behind them).
    RETURN QUERY
    SELECT false, l.expires, l.term FROM mvrefresh.lease l
    WHERE NOT mvrefresh.names_holder(l.host, l.pid, l.started, take_lease.holder)
      AND l.expires >= pg_catalog.clock_timestamp();
    IF FOUND THEN
        RETURN;
    END IF;
    PERFORM pg_catalog.set_config('lock_timeout',
                                  GREATEST(take_lease.ttl_ms / 3, 1)::pg_catalog.text, true);
    -- A renewal is worth nothing if it arrives late: it need not wait for a
    -- synchronous standby (the lease dies with this server anyway).
    PERFORM pg_catalog.set_config('synchronous_commit', 'local', true);
    -- A renewal: of a lease that has not expired, by its holder. It updates
    -- expires alone, no column of the row's key, so it does not wait for the
    -- fenced calls of its own term in progress (check_holder()); an upsert that
    -- names the key columns in its SET would, even to set them as they are.
    RETURN QUERY
    UPDATE mvrefresh.lease AS l
    SET expires = pg_catalog.clock_timestamp() + take_lease.ttl_ms * '1 ms'::pg_catalog.interval
    WHERE mvrefresh.names_holder(l.host, l.pid, l.started, take_lease.holder)
      AND l.expires >= pg_catalog.clock_timestamp() AND l.term IS NOT NULL
    RETURNING true, l.expires, l.term;
    IF FOUND THEN
        RETURN;
    END IF;
    -- Otherwise a taking, in a new term: by an insert, or by an update of a
    -- lease that expired (another daemon's, or the caller's own).
    RETURN QUERY
    INSERT INTO mvrefresh.lease AS l (host, pid, started, role, acquired, expires, term)
    VALUES (h_host, h_pid, h_started, session_user, pg_catalog.clock_timestamp(),
            pg_catalog.clock_timestamp() + take_lease.ttl_ms * '1 ms'::pg_catalog.interval,
            pg_catalog.nextval('mvrefresh.lease_term'::pg_catalog.regclass))
    ON CONFLICT (id) DO UPDATE
        SET host = EXCLUDED.host, pid = EXCLUDED.pid, started = EXCLUDED.started,
            role = EXCLUDED.role, acquired = EXCLUDED.acquired, expires = EXCLUDED.expires,
            term = EXCLUDED.term
        WHERE l.expires < pg_catalog.clock_timestamp() OR l.term IS NULL
    RETURNING true, l.expires, l.term;
    IF NOT FOUND THEN
        RETURN QUERY SELECT false, l.expires, l.term FROM mvrefresh.lease l;
    END IF;
END
$fn$;

-- A clean stop: the lease expires now if the caller holds it, so that a
-- standby takes it at its next try instead of waiting out the TTL. Returns
-- whether it did.
CREATE OR REPLACE FUNCTION mvrefresh.release_lease(holder text[])
RETURNS boolean
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '1s'
AS $fn$
    WITH released AS (
        UPDATE mvrefresh.lease l SET expires = pg_catalog.clock_timestamp()
        WHERE mvrefresh.names_holder(l.host, l.pid, l.started, release_lease.holder)
          AND l.expires > pg_catalog.clock_timestamp()
        RETURNING 1
    ), stopped AS (
        -- The daemon leaves: not alive from now on (mvrefresh.daemons), rather
        -- than for three more heartbeat intervals.
        UPDATE mvrefresh.daemon d SET status = 'stopped', active = false
        WHERE mvrefresh.names_holder(d.host, d.pid, d.started, release_lease.holder)
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM released);
$fn$;

-- The fence: the calls of a daemon that change what another daemon relies on
-- (take_changes() takes markers and disarms tables, backstop() stores
-- fingerprints, refresh_begin() starts a refresh) name their caller and the
-- term of the lease it holds, as take_lease() returned it, and go ahead only
-- while that term lasts. A daemon stops working when its own clock says its
-- lease may have run out, but a call it sent before can still reach the server
-- after another daemon, or itself in a later term, has taken the lease: sent
-- by a daemon frozen between its last look at the clock and the send, or held
-- up in the network until a partition heals. Such a call fails here (SQLSTATE
-- 55MVL), and its sender steps down. Without the fence, a late take_changes()
-- would mark views pending and disarm their tables where the leader of the
-- new term does not look until its next registry load.
-- With hold, the lease row stays locked (FOR KEY SHARE) until the caller's
-- transaction ends. A new term changes the row's key (lease_holder_term), so
-- it waits for that lock, and the new term's first registry load sees what
-- the caller marked; a renewal changes no key column and does not wait.
-- Without hold it is a read: for refresh_begin(), where a new term must only
-- keep late refreshes from starting (a refresh that began before it is one
-- more refresh; PostgreSQL serialises two of one view).
-- Expiry is not checked: a lease that ran out but was not taken again still
-- names the one daemon that may work, and what it marks, the next term's start
-- finds. holder NULL: a call made by hand (an administrator's, a test's), not
-- fenced; only mvrefresh_daemon may make these calls at all.
CREATE OR REPLACE FUNCTION mvrefresh.check_holder(holder text[], hold boolean)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    h_term bigint := check_holder.holder[4]::pg_catalog.int8;
BEGIN
    IF check_holder.holder IS NULL THEN
        RETURN;
    END IF;
    IF check_holder.hold THEN
        PERFORM FROM mvrefresh.lease l
        WHERE mvrefresh.names_holder(l.host, l.pid, l.started, check_holder.holder)
          AND l.term = h_term
        FOR KEY SHARE;
    ELSE
        PERFORM FROM mvrefresh.lease l
        WHERE mvrefresh.names_holder(l.host, l.pid, l.started, check_holder.holder)
          AND l.term = h_term;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '55MVL',
            MESSAGE = CASE WHEN check_holder.holder[1] IS NULL OR h_term IS NULL
                           THEN 'this mvrefreshd holds no lease'
                           ELSE pg_catalog.format('mvrefreshd on %s, pid %s, does not hold the '
                                                  'lease (term %s)', check_holder.holder[1],
                                                  check_holder.holder[2], h_term)
                      END,
            DETAIL = COALESCE((SELECT pg_catalog.format('The lease is held by mvrefreshd on %s, '
                                                        'pid %s, in term %s, until %s.',
                                                        l.host, l.pid, l.term, l.expires)
                               FROM mvrefresh.lease l), 'Nobody holds the lease.'),
            HINT = 'A daemon works only while it holds the lease (mvrefresh.lease); this one '
                   'stands by.';
    END IF;
END
$fn$;

-- alive: the last heartbeat is less than three intervals old (a busy server
-- or a reconnect may delay one or two), and the daemon did not say it stopped
-- (release_lease()). The last connection error can name
-- hosts, users and pg_hba.conf verdicts: only the daemon's role and
-- superusers (who hold every role) see it.
CREATE OR REPLACE VIEW mvrefresh.daemons AS
SELECT d.host, d.pid, d.version, d.role, d.started, d.heartbeat,
       d.heartbeat > pg_catalog.now() - 3 * d.interval_ms * '1 ms'::pg_catalog.interval
           AND d.status IS DISTINCT FROM 'stopped' AS alive,
       d.status, d.doorbells, d.invalid_payloads, d.connections,
       CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                         WHERE r.rolname = 'mvrefresh_daemon'
                           AND pg_catalog.pg_has_role(r.oid, 'USAGE'))
            THEN d.last_error END AS last_error,
       d.last_error_at,
       -- What it said, and what the lease says now: a leader that lost its lease
       -- connection may not have said otherwise yet.
       d.active AND EXISTS (SELECT 1 FROM mvrefresh.lease l
                            WHERE (l.host, l.pid, l.started) = (d.host, d.pid, d.started)
                              AND l.expires > pg_catalog.clock_timestamp()) AS active
FROM mvrefresh.daemon d;
GRANT SELECT ON mvrefresh.daemons TO PUBLIC;
COMMENT ON VIEW mvrefresh.daemons IS
    'The daemons working on this database, as they last said: alive while their heartbeat comes';

-- Daemons that came before the quiet triggers read the registry with this and
-- would refresh without re-arming anything, missing changes: this SQL refuses
-- them with a message that says what to do. (Recreated in this form, so that
-- grants made on an older registry() do not survive.)
DROP FUNCTION IF EXISTS mvrefresh.registry();
CREATE FUNCTION mvrefresh.registry()
RETURNS TABLE (view oid)
LANGUAGE plpgsql
AS $fn$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
        MESSAGE = pg_catalog.format('this mvrefresh SQL (%s) needs mvrefreshd %s or later',
                                    (SELECT v.version FROM mvrefresh.version() v), '0.2.0'),
        HINT = 'Upgrade mvrefreshd to the release this SQL came with.';
END
$fn$;

-- A daemon of another protocol is refused, by name and version, wherever it
-- starts its work (registry(), refresh_begin()). True otherwise.
CREATE OR REPLACE FUNCTION mvrefresh.check_protocol(protocol integer)
RETURNS boolean
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF check_protocol.protocol IS DISTINCT FROM (SELECT v.protocol FROM mvrefresh.version() v) THEN
        RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
            MESSAGE = pg_catalog.format(
                'mvrefreshd speaks protocol %s, this mvrefresh SQL (%s) protocol %s',
                check_protocol.protocol, (SELECT v.version FROM mvrefresh.version() v),
                (SELECT v.protocol FROM mvrefresh.version() v)),
            HINT = 'Run the mvrefreshd that came with this SQL, or install the SQL that came with the daemon.';
    END IF;
    RETURN true;
END
$fn$;

-- Everything the daemon needs to build its table -> views map and the graph of
-- views, in one query. Disabled views and views that no longer exist are left
-- out so the daemon never works on them; durations are converted to
-- milliseconds here so the daemon need not parse interval text. base_is_view
-- tells an edge to an upstream view (refresh after it) from a table (refresh
-- on its changes). It stays true for an upstream view that is disabled: the
-- daemon ignores edges to views it has not loaded. A view without
-- dependencies has one row with a NULL base and base_is_view false. pending:
-- the status says changes wait (or a refresh was cut short), which a daemon
-- that starts must catch up on. The daemon passes the protocol it speaks, and
-- a daemon of another protocol is refused with both named. requested: when
-- mvrefresh.refresh() asked for a refresh not served yet (epoch seconds), else
-- NULL; a paused view is loaded only while it has such a request, and paused
-- says so (the daemon then refreshes it for the request, not for changes).
-- The partitions and inheritance descendants a view reads through its tables
-- (view_tables()) are among its bases: their markers name them, and must make
-- due exactly the views that read them, not those that read the parent ONLY.
-- A partition added later changes that list, which the daemon takes for a
-- change of the view.
-- (Dropped first where its result type is an older one: it grew columns.)
DO $do$
BEGIN
    -- (NULL, so no drop, where there is no such function yet.)
    IF pg_catalog.pg_get_function_result(pg_catalog.to_regprocedure('mvrefresh.registry(integer)'))
       NOT LIKE '%, owner oid)' THEN
        DROP FUNCTION mvrefresh.registry(integer);
    END IF;
END
$do$;
CREATE OR REPLACE FUNCTION mvrefresh.registry(protocol integer)
RETURNS TABLE (view oid, name text, debounce_ms bigint, max_wait_ms bigint,
               concurrently boolean, base oid, base_is_view boolean, pending boolean,
               requested double precision, paused boolean, owner oid)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- Thousands of rows make the main query's estimated cost pass jit_above_cost,
-- and compiling it took longer than running it: at 10,000 views a load took
-- 0.6 s at a daemon's start (the first also loads LLVM), 0.14 s without.
SET jit = off
AS $fn$
DECLARE
    broken oid[];
BEGIN
    PERFORM mvrefresh.check_protocol(registry.protocol);
    -- A dump and restore changes OIDs, and the triggers then read generations
    -- named after the old ones, which the daemon cannot arm: refuse to work on
    -- such a database until the SQL is installed again (which repairs them).
    -- (OIDs may also have been permuted: each table's trigger must name the
    -- generation named after the table.)
    -- (From the trigger's argument to the sequence by OID, then its name: index
    -- look-ups only, which matters with thousands of tables.)
    -- One table without its trigger is no restore: its owner dropped or
    -- disabled it (an owner may), and that must not stop every other owner's
    -- views. Those views load all the same, with a WARNING naming the table
    -- and its owner: their other tables still ring, and the backstop finds
    -- this one's writes.
    broken := ARRAY(
        SELECT DISTINCT d.base::pg_catalog.oid FROM mvrefresh.dependency d
        JOIN pg_catalog.pg_class c ON c.oid = d.base AND c.relkind IN ('r', 'p')
        WHERE NOT EXISTS (
            SELECT 1 FROM pg_catalog.pg_trigger t
            CROSS JOIN LATERAL pg_catalog.split_part(
                pg_catalog.encode(t.tgargs, 'escape'), E'\\', 1) AS a(arg)
            JOIN pg_catalog.pg_class g
              ON g.oid = CASE WHEN a.arg ~ '^[0-9]{1,10}$'
                               AND a.arg::pg_catalog.int8 <= 4294967295
                              THEN a.arg::pg_catalog.int8 END
             AND g.relname = 'gen_' || d.base::pg_catalog.oid::pg_catalog.text
             AND g.relnamespace = 'mvrefresh'::pg_catalog.regnamespace
            WHERE t.tgrelid = d.base AND t.tgname = 'mvrefresh_notify'
              AND t.tgenabled IN ('O', 'A')
              AND pg_catalog.encode(t.tgargs, 'escape') = a.arg || E'\\000'));
    -- A restore: no table is sound, and triggers of ours name generations by
    -- other OIDs (a table whose owner dropped or disabled its triggers is no
    -- evidence of that, even when it is the only one). A broken table whose
    -- trigger of ours is there and enabled can only be one with another OID's.
    IF broken OPERATOR(pg_catalog.<>) '{}'
       AND NOT EXISTS (SELECT 1 FROM mvrefresh.dependency d
                       JOIN pg_catalog.pg_class c ON c.oid = d.base AND c.relkind IN ('r', 'p')
                       WHERE d.base::pg_catalog.oid OPERATOR(pg_catalog.<>) ALL (broken))
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                   WHERE t.tgrelid OPERATOR(pg_catalog.=) ANY (broken)
                     AND t.tgname = 'mvrefresh_notify' AND t.tgenabled IN ('O', 'A')
                     AND t.tgfoid = 'mvrefresh.notify()'::pg_catalog.regprocedure) THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = 'watched tables have no generation of their own: their OIDs changed (a dump and restore?)',
            HINT = 'Install the mvrefresh SQL again in this database; it repairs the triggers. Where mvrefresh is an extension, a superuser runs instead: SELECT mvrefresh.watch(view, debounce, max_wait, "concurrently") FROM mvrefresh.view;';
    ELSIF broken OPERATOR(pg_catalog.<>) '{}' THEN
        RAISE WARNING 'mvrefresh: % watched table(s) lost the trigger that names their generation, so their writes are found only by the backstop: %',
            pg_catalog.cardinality(broken),
            (SELECT pg_catalog.string_agg(pg_catalog.format('%s (owner %s)', b::pg_catalog.regclass,
                                                            pg_catalog.pg_get_userbyid(c.relowner)), ', ')
             FROM (SELECT b FROM pg_catalog.unnest(broken) AS b ORDER BY 1 LIMIT 10) AS x
             JOIN pg_catalog.pg_class c ON c.oid = x.b)
            USING HINT = 'The owner of a view that reads it runs mvrefresh.watch() on that view again, which puts the triggers back.';
    END IF;
    RETURN QUERY
    -- The tables of every view at once (what view_tables() gives for one): a
    -- call per view would cost tens of milliseconds per thousand views.
    WITH RECURSIVE vt(view, rel, deep) AS (
        SELECT d.view::pg_catalog.oid, d.base::pg_catalog.oid, d.with_children
        FROM mvrefresh.dependency d
        JOIN pg_catalog.pg_class c ON c.oid = d.base AND c.relkind IN ('r', 'p')
      UNION
        SELECT vt.view, i.inhrelid, true
        FROM vt JOIN pg_catalog.pg_inherits i ON i.inhparent = vt.rel
        WHERE vt.deep
    ), b(view, rel, is_view) AS (
        SELECT d.view::pg_catalog.oid, c.oid,
               EXISTS (SELECT 1 FROM mvrefresh.view u WHERE u.view = d.base)
        FROM mvrefresh.dependency d
        JOIN pg_catalog.pg_class c ON c.oid = d.base
      UNION  -- a table that is a base is not listed again
        SELECT vt.view, vt.rel, false
        FROM vt JOIN pg_catalog.pg_class c ON c.oid = vt.rel AND c.relkind IN ('r', 'p')
    ), w AS MATERIALIZED (
        -- The watched views, each named by one index look-up. Not a join with
        -- pg_class on relkind = 'm': right after a script made thousands of
        -- materialized views, pg_class's statistics still say there are next
        -- to none, the planner expects one row and loops over b once per view
        -- (1.7 s at 4,000 views, growing with the square). Materialized, the
        -- views are as many as mvrefresh.view says, whatever pg_class's
        -- statistics, and each name is looked up once.
        SELECT v.view::pg_catalog.oid AS view, v.debounce, v.max_wait, v.concurrently,
               v.enabled,
               -- What v.view::text gives under this search_path, from the rows
               -- looked up anyway (the cast looks each name up again: 10,000
               -- catalog look-ups on a session's first load)
               n.name, n.owner
        FROM mvrefresh.view v
        LEFT JOIN LATERAL (
            SELECT pg_catalog.quote_ident(vn.nspname) || '.' || pg_catalog.quote_ident(c.relname),
                   c.relowner
            FROM pg_catalog.pg_class c
            JOIN pg_catalog.pg_namespace vn ON vn.oid = c.relnamespace
            WHERE c.oid = v.view AND c.relkind = 'm') AS n(name, owner) ON true
        WHERE NOT v.unwatched
    )
    SELECT v.view,
           v.name,
           -- At most about 31 years: one row's extreme value must not stop
           -- the registry from loading for everyone. At least 1 ms: a plain
           -- UPDATE may store less (NULL alone means the daemon's default).
           (SELECT GREATEST(pg_catalog.round(LEAST(ms, 1e12)), 1)::pg_catalog.int8
            FROM mvrefresh.setting_ms(v.debounce) AS ms WHERE ms IS NOT NULL),
           (SELECT GREATEST(pg_catalog.round(LEAST(ms, 1e12)), 1)::pg_catalog.int8
            FROM mvrefresh.setting_ms(v.max_wait) AS ms WHERE ms IS NOT NULL),
           v.concurrently,
           b.rel,
           COALESCE(b.is_view, false),
           COALESCE(s.pending_since IS NOT NULL OR s.refreshing, true)
               OR EXISTS (SELECT 1 FROM mvrefresh.pending_view p WHERE p.view = v.view),
           pg_catalog.date_part('epoch', rq.requested_at),
           NOT v.enabled,
           v.owner
    FROM w AS v
    LEFT JOIN mvrefresh.refresh_request rq ON rq.view = v.view
    LEFT JOIN mvrefresh.refresh_state s ON s.view = v.view
    LEFT JOIN b ON b.view = v.view
    WHERE v.name IS NOT NULL AND (v.enabled OR rq.view IS NOT NULL)
    ORDER BY v.view, b.rel;
END
$fn$;

-- The tables a view reads, with the partitions and inheritance descendants
-- (any depth, those that can carry triggers) of the ones it reads without
-- ONLY: a write to any of them is a write to what the view reads.
CREATE OR REPLACE FUNCTION mvrefresh.view_tables(view oid)
RETURNS SETOF oid
LANGUAGE plpgsql
STABLE
ROWS 10
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        WITH RECURSIVE t(rel, deep) AS (
            SELECT d.base::pg_catalog.oid, d.with_children
            FROM mvrefresh.dependency d
            JOIN pg_catalog.pg_class c ON c.oid = d.base AND c.relkind IN ('r', 'p')
            WHERE d.view = view_tables.view::pg_catalog.regclass
          UNION
            SELECT i.inhrelid, true
            FROM t JOIN pg_catalog.pg_inherits i ON i.inhparent = t.rel
            WHERE t.deep
        )
        SELECT DISTINCT t.rel
        FROM t JOIN pg_catalog.pg_class c ON c.oid = t.rel AND c.relkind IN ('r', 'p');
END
$fn$;

-- The generation sequences of these tables (those that have one).
CREATE OR REPLACE FUNCTION mvrefresh.generations(tables oid[])
RETURNS TABLE (tbl oid, seq regclass)
LANGUAGE plpgsql
STABLE
ROWS 10
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        SELECT t.rel, c.oid::pg_catalog.regclass
        FROM pg_catalog.unnest(generations.tables) AS t(rel)
        JOIN pg_catalog.pg_class c
          ON c.relname = 'gen_' || t.rel::pg_catalog.text AND c.relkind = 'S'
         AND c.relnamespace = 'mvrefresh'::pg_catalog.regnamespace;
END
$fn$;

-- A new generation for each of these tables (docs/quiet-triggers.md): the next
-- write to it, by any session, takes the armed path again. Sequences are not
-- transactional: the new generation is seen at once, whatever the caller's
-- transaction does later. With ring, that path also rings the doorbell (odd
-- generations), which is how the daemon arms; without, a caller finds the
-- marker when it next polls. A quiet re-arm skips the tables of a view being
-- refreshed: its refresh armed them, ringing, and its next change should ring.
-- The partitions and descendants read through the tables are armed with them
-- (with_descendants()): a caller that lists only the tables it knows of still
-- arms a partition created since. Returns how many tables it re-armed.
DROP FUNCTION IF EXISTS mvrefresh.rearm(oid[]);
CREATE OR REPLACE FUNCTION mvrefresh.rearm(tables oid[], ring boolean)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
BEGIN
    RETURN (
        SELECT pg_catalog.count(pg_catalog.setval(
                   g.seq,
                   pg_catalog.nextval('mvrefresh.generation'::pg_catalog.regclass) * 2
                   + CASE WHEN rearm.ring THEN 1 ELSE 0 END))::pg_catalog.int4
        FROM mvrefresh.generations(ARRAY(SELECT mvrefresh.with_descendants(rearm.tables))) AS g
        WHERE rearm.ring
           OR NOT EXISTS (SELECT 1 FROM mvrefresh.readers(ARRAY[g.tbl]) AS r
                          JOIN mvrefresh.refresh_state s ON s.view = r.view
                          WHERE s.refreshing));
END
$fn$;

-- A 32-bit transaction id as the 64-bit one it stands for now: pg_locks shows
-- the former, pg_xact_status() takes the latter. A running transaction's id is
-- within 2^31 of the next one to be assigned, before or after it (one may be
-- assigned while we look): take the 64-bit id closest to that reference.
CREATE OR REPLACE FUNCTION mvrefresh.xid8_of(x xid)
RETURNS xid8
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT (r + CASE WHEN d >= 2147483648 THEN d - 4294967296 ELSE d END)::pg_catalog.text::pg_catalog.xid8
    FROM (SELECT r, ((x::pg_catalog.text::pg_catalog.int8 - (r & 4294967295)) % 4294967296
                     + 4294967296) % 4294967296 AS d
          FROM (SELECT pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())
                       ::pg_catalog.text::pg_catalog.int8 AS r) AS next) AS diff;
$fn$;

-- Step 2 and 3 of a refresh (docs/quiet-triggers.md): re-arm the view's tables,
-- then list the transactions, prepared ones included, that hold a write-mode
-- lock on one of them. A write that skipped its signal belongs to one of them
-- or was signalled by the session before; the daemon follows each until it
-- ends. Reads pg_locks, which takes every lock-manager partition lock: once
-- per refresh.
CREATE OR REPLACE FUNCTION mvrefresh.rearm_view(view oid)
RETURNS xid8[]
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    tables oid[] := ARRAY(SELECT mvrefresh.view_tables(rearm_view.view));
BEGIN
    PERFORM mvrefresh.rearm(tables, true);
    -- What this refresh covers, for the backstop (mvrefresh.view_fingerprint):
    -- read before the REFRESH's snapshot, and gone with it if it fails.
    INSERT INTO mvrefresh.view_fingerprint AS f (view, table_oid, fingerprint)
    SELECT rearm_view.view, n.table_oid, n.fingerprint
    FROM mvrefresh.table_fingerprints(tables) AS n
    ON CONFLICT ON CONSTRAINT view_fingerprint_pkey
    DO UPDATE SET fingerprint = EXCLUDED.fingerprint;
    RETURN ARRAY(
        SELECT DISTINCT mvrefresh.xid8_of(x.transactionid)
        FROM pg_catalog.pg_locks l
        JOIN pg_catalog.pg_locks x
          ON x.virtualtransaction = l.virtualtransaction
         AND x.locktype = 'transactionid' AND x.mode = 'ExclusiveLock' AND x.granted
        WHERE l.locktype = 'relation'
          AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                            WHERE d.datname = pg_catalog.current_database())
          AND l.relation = ANY (tables)
          AND l.granted
          AND l.mode IN ('RowExclusiveLock', 'ShareRowExclusiveLock',
                         'ExclusiveLock', 'AccessExclusiveLock')
          AND l.pid IS DISTINCT FROM pg_catalog.pg_backend_pid());
END
$fn$;

-- Mark views pending, in the caller's transaction, for changes the daemon is
-- told of (take_changes(), backstop()). A status row that another transaction
-- holds (a watch() or a partition DDL still open, an administrator's session)
-- is not waited for: waiting would hold back every other view, and a lock
-- timeout would fail them all. Such a view is marked in mvrefresh.pending_view
-- instead, as pending, durably, as the others. (PL/pgSQL for its cached plan:
-- takes are on the path of every change.)
-- With skip_refreshing (the backstop) a view whose status says refreshing is
-- not marked: its refresh notes what it covers before its snapshot
-- (rearm_view()), and the next round holds the tables against that, so a mark
-- now would only cost one more refresh. FOR UPDATE reads the row as it is now,
-- not as the statement's snapshot saw it: a refresh_begin() committed since is
-- seen. Nor is a held row marked aside then: its holder may be a
-- refresh_begin() not committed yet, whose refresh would find the mark and
-- run once more for nothing. The backstop keeps that view's tables unstored
-- instead, so its next round looks again (a mark only the backstop can make
-- waits one round longer behind a row held across it).
-- Returns the views marked, either way.
DROP FUNCTION IF EXISTS mvrefresh.mark_pending(regclass[]);
CREATE OR REPLACE FUNCTION mvrefresh.mark_pending(views regclass[], skip_refreshing boolean)
RETURNS SETOF regclass
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH free AS (
        SELECT s.view, s.refreshing FROM mvrefresh.refresh_state s
        WHERE s.view = ANY (mark_pending.views)
        ORDER BY s.view FOR UPDATE OF s SKIP LOCKED
    ), done AS (
        UPDATE mvrefresh.refresh_state s
        SET pending_since = COALESCE(s.pending_since, pg_catalog.clock_timestamp()),
            marked_at = pg_catalog.clock_timestamp()
        FROM free f
        WHERE s.view = f.view AND NOT (mark_pending.skip_refreshing AND f.refreshing)
        RETURNING s.view
    ), held AS (
        SELECT s.view FROM mvrefresh.refresh_state s
        WHERE s.view = ANY (mark_pending.views)
          AND NOT mark_pending.skip_refreshing
          AND s.view NOT IN (SELECT f.view FROM free f)
    ), aside AS (
        INSERT INTO mvrefresh.pending_view AS p (view)
        SELECT h.view::pg_catalog.oid FROM held h
        ON CONFLICT (view) DO NOTHING
    )
    SELECT d.view FROM done d
    UNION ALL
    SELECT h.view FROM held h;
END
$fn$;

-- Take every committed marker and, in the same transaction, mark the views
-- that read those tables pending (so that a daemon killed right after still
-- finds them), then disarm those tables: every view that reads them is
-- pending now, and the refresh of each arms them again before taking its
-- snapshot, so further writes need not signal until then. Disarming is not
-- transactional: should this transaction fail after it, the markers are still
-- there for the next call. Returns the tables. Markers of transactions still
-- running are not visible yet, and are taken by a later call. A marker of a
-- partition or inheritance descendant names it, not its watched ancestor: it
-- makes pending the views that read it through an ancestor (readers()), which
-- are the ones registry() lists it for.
-- A view whose status row another transaction holds is marked aside
-- (mark_pending()), and the table is returned and disarmed like any, so a
-- held row holds back no other table's markers. (Every marker is deleted first: a take still running
-- for a daemon that has gone holds the rows it deleted, and the next take
-- must wait for it; docs/quiet-triggers.md, "Start and reconnect".)
-- holder: the calling daemon and its term (check_holder(), protocol 4): no
-- default, so that a daemon of an older protocol finds no take_changes() it
-- can call. It is checked last, when there was something to take: a take
-- that finds nothing costs no transaction id (takes go every poll_interval),
-- and a take that waits (for a marker row, a status row, a generation) holds
-- no lock on the lease meanwhile, so no new term waits for it; only the
-- commit of one that got past its check is waited for. A refusal undoes the
-- DELETE and the marks, but not the disarming (setval() is not
-- transactional). That is safe: every table it disarmed has a marker back,
-- which the leader's next take (at the latest its next poll) finds, and the
-- refresh that follows arms the table again before its snapshot and follows
-- the writers in flight, as for any take (docs/quiet-triggers.md).
DROP FUNCTION IF EXISTS mvrefresh.take_changes();
CREATE OR REPLACE FUNCTION mvrefresh.take_changes(holder text[])
RETURNS SETOF oid
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    tables oid[];
BEGIN
    WITH gone AS (
        DELETE FROM mvrefresh.change_log RETURNING table_oid
    )
    SELECT pg_catalog.array_agg(DISTINCT g.table_oid ORDER BY g.table_oid) INTO tables FROM gone g;
    IF tables IS NULL THEN
        RETURN;
    END IF;
    PERFORM mvrefresh.mark_pending(ARRAY(SELECT DISTINCT x.view FROM mvrefresh.readers(tables) AS x),
                                   false);
    PERFORM pg_catalog.setval(g.seq, pg_catalog.pg_sequence_last_value(g.seq), false)
    FROM mvrefresh.generations(tables) AS g;
    PERFORM mvrefresh.check_holder(take_changes.holder, true);
    -- From here to its commit it holds off a new term: that commit need not
    -- wait for a synchronous standby, which may never come (a failover loses
    -- at most this take, whose markers are then taken again).
    PERFORM pg_catalog.set_config('synchronous_commit', 'local', true);
    RETURN QUERY SELECT pg_catalog.unnest(tables);
END
$fn$;

-- The backstop (docs/quiet-triggers.md): for each table, a fingerprint of its
-- cumulative write statistics and its storage. It changes when the table is
-- written, whether or not any trigger fired. Each table counts alone: its
-- partitions and inheritance descendants are tables of their own in the
-- backstop's list (with_descendants()), so that a write to one moves only
-- the views that read it, not those that read the parent ONLY. For a table
-- read with its children, the fingerprint also names every descendant (of
-- any kind, foreign ones too), so that attaching, detaching, creating or
-- dropping a partition moves it as well.
-- (PL/pgSQL for its cached plan: every refresh calls it, and planning this
-- query again each time, as a SQL function does, cost about 0.3 ms.)
CREATE OR REPLACE FUNCTION mvrefresh.table_fingerprints(tables oid[])
RETURNS TABLE (table_oid oid, fingerprint text)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH RECURSIVE tree(root, rel) AS (
        SELECT t, t
        FROM pg_catalog.unnest(table_fingerprints.tables) AS t
        WHERE EXISTS (SELECT 1 FROM mvrefresh.dependency d
                      WHERE d.base::pg_catalog.oid = t AND d.with_children)
      UNION
        SELECT tree.root, i.inhrelid FROM tree JOIN pg_catalog.pg_inherits i ON i.inhparent = tree.rel
    ), below(root, hash) AS (
        SELECT tree.root,
               pg_catalog.md5(pg_catalog.string_agg(tree.rel::pg_catalog.text, ',' ORDER BY tree.rel))
        FROM tree WHERE tree.rel <> tree.root
        GROUP BY tree.root
    )
    -- (The counters pg_stat_all_tables shows, read for these tables only: the
    -- view computes every table's. One group per root, joined once: a
    -- subquery per table would read the whole tree each time.)
    SELECT c.oid,
           (pg_catalog.pg_stat_get_tuples_inserted(c.oid)
            + pg_catalog.pg_stat_get_tuples_updated(c.oid)
            + pg_catalog.pg_stat_get_tuples_deleted(c.oid))::pg_catalog.text
           || '/' || c.relfilenode::pg_catalog.text
           -- (Nothing more for a table without descendants: its fingerprint
           -- stays what older releases stored.)
           || COALESCE('/' || b.hash, '')
    FROM pg_catalog.unnest(table_fingerprints.tables) AS t
    JOIN pg_catalog.pg_class c ON c.oid = t
    LEFT JOIN below b ON b.root = c.oid;
END
$fn$;

-- One round of the backstop, for the daemon: compare each table's fingerprint
-- with the one stored, store the new one, and mark as pending (in the same
-- transaction, like take_changes()) the views that read a table whose
-- fingerprint moved, unless their last refresh found it as it is now
-- (mvrefresh.view_fingerprint; a view no refresh has recorded is marked), or
-- they are refreshing (mark_pending()). Returns the views marked. A table
-- seen for the first time (newly watched, a new partition, resumed) is held
-- only against the views whose refresh recorded it: a write after that
-- refresh hides nowhere else. (Nothing recorded it after an upgrade from a
-- release without these notes: its fingerprint is only stored, no refresh
-- storm.) Tables no longer passed are forgotten. The partitions and
-- descendants read through the tables passed are looked at with them
-- (with_descendants()), so a partition the caller does not know of yet is not
-- missed for long: its parent's fingerprint moved when it came.
-- A view refreshing during the round (left alone, or not a candidate at all:
-- its refresh's notes are not committed yet) keeps all its tables' stored
-- fingerprints as they were (or none, for one seen for the first time): the
-- next round compares them again, with what that refresh recorded, which a
-- write after its snapshot differs from. (Storing them now would hide such a
-- write for good.)
-- Statistics can also move without a committed change (an aborted write, a
-- statistics reset), or reach the round after a refresh that followed the
-- write (a backend reports them up to 10 s late): then a view is refreshed
-- once more than needed.
-- holder: the calling daemon and its term (check_holder(), protocol 4; no
-- default, and checked last, as in take_changes()).
DROP FUNCTION IF EXISTS mvrefresh.backstop(oid[]);
CREATE OR REPLACE FUNCTION mvrefresh.backstop(tables oid[], holder text[])
RETURNS SETOF oid
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    tbls     oid[];
    fps      text[];
    moved    oid[];
    fresh    oid[];
    behind   regclass[];
    marked   regclass[];
    stored_n bigint;
BEGIN
    SELECT pg_catalog.array_agg(f.table_oid), pg_catalog.array_agg(f.fingerprint)
    INTO tbls, fps
    FROM mvrefresh.table_fingerprints(ARRAY(SELECT mvrefresh.with_descendants(backstop.tables))) AS f;
    SELECT COALESCE(pg_catalog.array_agg(n.table_oid) FILTER (WHERE t.table_oid IS NOT NULL), '{}'),
           COALESCE(pg_catalog.array_agg(n.table_oid) FILTER (WHERE t.table_oid IS NULL), '{}')
    INTO moved, fresh
    FROM ROWS FROM (pg_catalog.unnest(tbls), pg_catalog.unnest(fps)) AS n(table_oid, fingerprint)
    LEFT JOIN mvrefresh.table_state t ON t.table_oid = n.table_oid
    WHERE t.fingerprint <> n.fingerprint
       OR (t.table_oid IS NULL
           AND EXISTS (SELECT 1 FROM mvrefresh.view_fingerprint f WHERE f.table_oid = n.table_oid));
    behind := ARRAY(
        SELECT DISTINCT r.view
        FROM mvrefresh.readers(moved OPERATOR(pg_catalog.||) fresh) AS r
        JOIN ROWS FROM (pg_catalog.unnest(tbls), pg_catalog.unnest(fps)) AS n(table_oid, fingerprint)
          ON n.table_oid = r.tbl
        LEFT JOIN mvrefresh.view_fingerprint f
               ON f.view = r.view::pg_catalog.oid AND f.table_oid = r.tbl
        WHERE f.fingerprint IS DISTINCT FROM n.fingerprint
          AND (f.view IS NOT NULL OR r.tbl <> ALL (fresh)));
    marked := ARRAY(SELECT mvrefresh.mark_pending(behind, true));
    WITH now_ AS (
        SELECT n.table_oid, n.fingerprint
        FROM ROWS FROM (pg_catalog.unnest(tbls), pg_catalog.unnest(fps)) AS n(table_oid, fingerprint)
    ), kept AS (
        -- Every table of a view mark_pending() left alone (one with a status
        -- row that it did not mark), or refreshing now: one whose refresh has
        -- not committed its notes yet, for a table seen for the first time,
        -- was in no list above.
        SELECT k.tbl
        FROM mvrefresh.refresh_state s, mvrefresh.view_tables(s.view::pg_catalog.oid) AS k(tbl)
        WHERE (s.view = ANY (behind) AND s.view <> ALL (marked)) OR s.refreshing
    ), stored AS (
        INSERT INTO mvrefresh.table_state AS t (table_oid, fingerprint)
        SELECT n.table_oid, n.fingerprint FROM now_ n
        WHERE n.table_oid NOT IN (SELECT k.tbl FROM kept k)
        ON CONFLICT (table_oid) DO UPDATE SET fingerprint = EXCLUDED.fingerprint
        RETURNING 1
    ), forgotten AS (
        DELETE FROM mvrefresh.table_state t
        WHERE NOT EXISTS (SELECT 1 FROM now_ n WHERE n.table_oid = t.table_oid)
        RETURNING 1
    ), unread AS (
        -- Rows of views no longer watched, or of tables no longer watched (or
        -- gone); one a running refresh holds goes at a later round.
        DELETE FROM mvrefresh.view_fingerprint f
        WHERE f.ctid IN (SELECT g.ctid FROM mvrefresh.view_fingerprint g
                         WHERE NOT EXISTS (SELECT 1 FROM mvrefresh.view v
                                           WHERE v.view::pg_catalog.oid = g.view)
                            OR NOT EXISTS (SELECT 1 FROM now_ n
                                           WHERE n.table_oid = g.table_oid)
                         FOR UPDATE SKIP LOCKED)
        RETURNING 1
    )
    SELECT pg_catalog.count(*) INTO stored_n FROM stored; -- (forgotten, unread run all the same)
    PERFORM mvrefresh.check_holder(backstop.holder, true);
    -- (As take_changes(): its commit holds off a new term.)
    PERFORM pg_catalog.set_config('synchronous_commit', 'local', true);
    RETURN QUERY SELECT pg_catalog.unnest(marked)::pg_catalog.oid;
END
$fn$;

-- Before the table lease, refresh() took a per-view advisory lock whose key this made.
DROP FUNCTION IF EXISTS mvrefresh.refresh_lock_key(oid);

-- One refresh of a view, as the daemon's role (SECURITY INVOKER: REFRESH needs
-- the daemon's rights, not the installer's), in the caller's READ COMMITTED
-- transaction: lock what it reads, re-arm its tables and list the writers in
-- flight, then REFRESH, whose snapshot follows all of that. The name is read
-- here from the OID and checked again after the REFRESH, so a rename meanwhile
-- fails (and rolls back) this refresh instead of refreshing something else.
-- Returns the writers in flight (docs/quiet-triggers.md).
-- concurrently NULL: the daemon sent this in one pipeline right behind
-- refresh_begin(), without waiting for its answer; go ahead only if that
-- answer, for this view, said go (its session setting), and refresh
-- CONCURRENTLY exactly when it said so.
CREATE OR REPLACE FUNCTION mvrefresh.refresh(view oid, concurrently boolean)
RETURNS SETOF xid8
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    writers xid8[];
    nsp     name;
    rel     name;
    begun   text := pg_catalog.current_setting('mvrefresh.begun', true);
    concur  boolean := refresh.concurrently;
BEGIN
    IF concur IS NULL THEN
        IF begun IS NULL OR pg_catalog.split_part(begun, ':', 1)
                            OPERATOR(pg_catalog.<>) refresh.view::pg_catalog.text THEN
            RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
                MESSAGE = pg_catalog.format('refresh of %s not begun: refresh_begin() did not '
                                            'let it go ahead', refresh.view);
        END IF;
        concur := pg_catalog.split_part(begun, ':', 2)::boolean;
        PERFORM pg_catalog.set_config('mvrefresh.begun', '', false);
    END IF;
    -- Two refreshes of one view never overlap: REFRESH takes an EXCLUSIVE
    -- (CONCURRENTLY) or ACCESS EXCLUSIVE lock on the view, both
    -- self-conflicting, and the caller's lock_timeout bounds the wait. No
    -- advisory lock: any role may take one and so block every refresh.
    PERFORM mvrefresh.lock_sources(refresh.view);
    writers := mvrefresh.rearm_view(refresh.view);
    SELECT n.nspname, c.relname INTO nsp, rel
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = refresh.view AND c.relkind = 'm';
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_table',
            MESSAGE = pg_catalog.format('materialized view %s does not exist', refresh.view);
    END IF;
    EXECUTE pg_catalog.format('REFRESH MATERIALIZED VIEW %s%I.%I',
                              CASE WHEN concur THEN 'CONCURRENTLY ' ELSE '' END,
                              nsp, rel);
    IF pg_catalog.to_regclass(pg_catalog.format('%I.%I', nsp, rel)) IS DISTINCT FROM
       refresh.view::pg_catalog.regclass THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = pg_catalog.format('materialized view %I.%I was renamed during its refresh',
                                        nsp, rel);
    END IF;
    RETURN QUERY SELECT pg_catalog.unnest(writers);
END
$fn$;

-- Called by the daemon in the refresh's own transaction, right before the
-- REFRESH: takes ACCESS SHARE on every table the view reads (with their
-- partitions and inheritance children, unless it reads them ONLY), in OID order. TRUNCATE and table rewrites (ALTER TABLE ... SET DATA TYPE; CLUSTER
-- and VACUUM FULL keep row versions) are not MVCC-safe: a snapshot taken
-- before they commit sees the new heap as empty. A REFRESH takes its snapshot when it starts and its locks
-- as it plans, so one queued behind an ETL job's TRUNCATE + reload would read
-- the reloaded table with an old snapshot and publish an empty view. Waiting
-- here instead, in a statement of its own, means the REFRESH's snapshot is
-- taken after whatever held these relations has committed. The session's
-- lock_timeout applies to these waits like to any other. Returns how many
-- tables it locked. Upstream materialized views need no such lock: a plain
-- REFRESH writes its new rows frozen (an older snapshot sees them), and a
-- concurrent one is MVCC-safe. SECURITY DEFINER: from PostgreSQL 17 on the
-- daemon may refresh with MAINTAIN on the view alone, without rights on its
-- tables.
CREATE OR REPLACE FUNCTION mvrefresh.lock_sources(view oid)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    rel    record;
    locked integer := 0;
BEGIN
    FOR rel IN
        SELECT c.oid, n.nspname, c.relname, d.with_children
        FROM mvrefresh.dependency d
        JOIN pg_catalog.pg_class c ON c.oid = d.base
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE d.view = lock_sources.view::pg_catalog.regclass
          AND c.relkind IN ('r', 'p')
        ORDER BY c.oid
    LOOP
        -- LOCK TABLE runs no code of anyone's (it plans nothing), which is what
        -- makes it safe here with the installer's rights. A name is looked up
        -- again when it runs: if a rename swapped another relation in under
        -- it meanwhile, give up (the refresh fails and is retried).
        -- (Without ONLY it locks the descendants too, as the refresh reads them.)
        EXECUTE pg_catalog.format('LOCK TABLE %s%I.%I IN ACCESS SHARE MODE',
                                  CASE WHEN rel.with_children THEN '' ELSE 'ONLY ' END,
                                  rel.nspname, rel.relname);
        IF pg_catalog.to_regclass(pg_catalog.format('%I.%I', rel.nspname, rel.relname))
           IS DISTINCT FROM rel.oid::pg_catalog.regclass THEN
            RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
                MESSAGE = pg_catalog.format('relation %I.%I changed while it was being locked',
                                            rel.nspname, rel.relname);
        END IF;
        locked := locked + 1;
    END LOOP;
    RETURN locked;
END
$fn$;

-- refresh_begin() takes the daemon's protocol since protocol 2: a daemon of
-- protocol 1, still running while this SQL is installed, would refresh on
-- doorbells without ever re-arming a table. Its refreshes now fail, loudly,
-- instead of views going quietly stale.
DROP FUNCTION IF EXISTS mvrefresh.refresh_begin(oid, double precision);
-- It grew request and owner (see there): the three-argument one goes, or a
-- call with three would be ambiguous.
DROP FUNCTION IF EXISTS mvrefresh.refresh_begin(oid, double precision, integer);
-- And holder, the calling daemon and its term (check_holder(), protocol 4;
-- the protocol argument already refuses older daemons).
DROP FUNCTION IF EXISTS mvrefresh.refresh_begin(oid, double precision, integer, double precision, oid);

-- Why role `who` may not REFRESH materialized view `view`, with the fix; NULL
-- when it may. Ownership (as a member of the owning role) always works; from
-- PostgreSQL 17 on the MAINTAIN privilege is enough, and watch() grants it to
-- mvrefresh_daemon. (Nested CASE: has_table_privilege() only knows MAINTAIN
-- from 17 on, and CASE is what guarantees it is not asked before.)
CREATE OR REPLACE FUNCTION mvrefresh.refresh_denied(view regclass, who name)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
BEGIN
    RETURN (
        SELECT CASE
            WHEN pg_catalog.pg_has_role(refresh_denied.who, c.relowner, 'USAGE') THEN NULL
            WHEN pg_catalog.current_setting('server_version_num')::integer >= 170000 THEN
                CASE
                WHEN NOT pg_catalog.has_table_privilege(refresh_denied.who, c.oid, 'MAINTAIN') THEN
                    pg_catalog.format(
                    'role %I may not refresh %s: it needs the MAINTAIN privilege on it. '
                    'Fix: GRANT mvrefresh_daemon TO %I and run SELECT mvrefresh.watch(%L) again '
                    '(it grants MAINTAIN to mvrefresh_daemon), or GRANT MAINTAIN ON %s TO %I, '
                    'or GRANT pg_maintain TO %I',
                    refresh_denied.who, refresh_denied.view, refresh_denied.who,
                    refresh_denied.view::pg_catalog.text, refresh_denied.view, refresh_denied.who,
                    refresh_denied.who)
                -- REFRESH names the view, which needs USAGE on its schema.
                WHEN NOT pg_catalog.has_schema_privilege(refresh_denied.who, c.relnamespace, 'USAGE') THEN
                    pg_catalog.format(
                    'role %I may not refresh %s: MAINTAIN is not enough without USAGE on schema %I. '
                    'Fix: GRANT USAGE ON SCHEMA %I TO mvrefresh_daemon',
                    refresh_denied.who, refresh_denied.view, n.nspname, n.nspname)
                END
            ELSE pg_catalog.format(
                'role %I may not refresh %s: before PostgreSQL 17 only its owner can, and %I is '
                'not a member of the owning role %I. Fix: GRANT %I TO %I',
                refresh_denied.who, refresh_denied.view, refresh_denied.who, r.rolname,
                r.rolname, refresh_denied.who)
        END
        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles r ON r.oid = c.relowner
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid = refresh_denied.view);
END
$fn$;

-- Called by the daemon right before a refresh. Returning no row means "do not
-- refresh": the view was dropped, is no longer a materialized view, or was
-- unwatched; or it was paused (and this refresh is not for the request the
-- daemon passes as request, the epoch registry() gave); or its owner is no
-- longer the owner the daemon passes (ALTER ... OWNER TO, which the daemon
-- learns at its next registry load: it chose the session by owner, see
-- src/refresh.h). The daemon then loads the registry again. The names come
-- back separately so the daemon quotes them itself (PQescapeIdentifier)
-- instead of trusting a preformatted string. "denied" is
-- non-NULL when the daemon's role cannot refresh the view: the daemon records
-- it as the failure (SQLSTATE 42501) instead of trying.
CREATE OR REPLACE FUNCTION mvrefresh.refresh_begin(view oid, pending_since double precision,
                                                   protocol integer,
                                                   request double precision DEFAULT NULL,
                                                   owner oid DEFAULT NULL,
                                                   holder text[] DEFAULT NULL)
RETURNS TABLE (nspname name, relname name, concurrent_ok boolean, reason text, denied text)
LANGUAGE plpgsql
VOLATILE
ROWS 1
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
BEGIN
    -- The fence, as check_holder() without hold, read here: a PL/pgSQL call on
    -- every refresh costs about 0.2 ms on a session idle since its last one.
    -- check_holder() is called only to refuse.
    IF refresh_begin.holder IS NOT NULL AND NOT EXISTS (
           SELECT 1 FROM mvrefresh.lease l
           WHERE mvrefresh.names_holder(l.host, l.pid, l.started, refresh_begin.holder)
             AND l.term = refresh_begin.holder[4]::pg_catalog.int8) THEN
        PERFORM mvrefresh.check_holder(refresh_begin.holder, false);
    END IF;
    RETURN QUERY
        WITH target AS (
            SELECT v.view, n.nspname, c.relname,
                   -- The common case first, without refresh_denied()'s call
                   -- (about 0.2 ms of every refresh on a session idle since
                   -- the last): a member of the owning role may refresh.
                   CASE WHEN pg_catalog.pg_has_role(w.who, c.relowner, 'USAGE') THEN NULL
                        ELSE mvrefresh.refresh_denied(v.view, w.who)
                   END AS denied,
                   -- The user's explicit choice is reported before what the
                   -- catalog says, so the daemon's log names the real cause.
                   CASE
                       WHEN NOT v.concurrently THEN 'concurrently disabled'
                       -- CONCURRENTLY is refused on a never-populated view.
                       WHEN NOT c.relispopulated THEN 'not populated'
                       -- CONCURRENTLY needs a unique index on plain columns that
                       -- covers all rows (no predicate) and is usable right now.
                       WHEN NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                                        WHERE i.indrelid = c.oid
                                          AND i.indisunique AND i.indimmediate
                                          AND i.indisvalid
                                          AND i.indpred IS NULL
                                          AND i.indexprs IS NULL)
                           THEN 'no unique index'
                   END AS reason
            FROM (SELECT mvrefresh.acting_role() AS who) AS w, mvrefresh.view v
            JOIN pg_catalog.pg_class c ON c.oid = v.view AND c.relkind = 'm'
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE v.view = refresh_begin.view::pg_catalog.regclass
              AND mvrefresh.check_protocol(refresh_begin.protocol)
              -- Paused (or unwatched) since the daemon's last registry load,
              -- which may be up to 250 ms behind: no row, so the REFRESH
              -- behind this does not run, and the daemon loads again. A
              -- paused view is refreshed only for the request it was loaded
              -- for.
              AND NOT v.unwatched
              AND (v.enabled
                   OR EXISTS (SELECT 1 FROM mvrefresh.refresh_request rq
                              WHERE rq.view = v.view
                                AND pg_catalog.date_part('epoch', rq.requested_at)
                                    = refresh_begin.request))
              AND (refresh_begin.owner IS NULL OR c.relowner = refresh_begin.owner)
        ), mark AS (
            -- Upsert: a registration made by a plain INSERT has no state row yet.
            INSERT INTO mvrefresh.refresh_state AS s (view, refreshing, last_start, pending_since)
            SELECT t.view, true, pg_catalog.clock_timestamp(),
                   pg_catalog.to_timestamp(refresh_begin.pending_since)
            FROM target t
            ON CONFLICT (view) DO UPDATE
                SET refreshing = true,
                    last_start = EXCLUDED.last_start,
                    pending_since = EXCLUDED.pending_since,
                    marked_at = NULL
        ), covered AS (
            -- A take that found the status row held marked it here: the
            -- refresh that follows covers that (the daemon heard of it).
            DELETE FROM mvrefresh.pending_view p
            WHERE p.view IN (SELECT t.view::pg_catalog.oid FROM target t)
        )
        SELECT t.nspname, t.relname, t.reason IS NULL, t.reason, t.denied
        FROM target t
        -- What lets the refresh(view, NULL) sent right behind this (in the same
        -- pipeline, before the daemon has read this answer) go ahead, and how: a
        -- session setting, which outlives this transaction, is left only when the
        -- answer says go; the daemon's reset after every refresh clears it.
        WHERE CASE WHEN t.denied IS NULL
                   THEN pg_catalog.set_config('mvrefresh.begun',
                            t.view::pg_catalog.oid::pg_catalog.text || ':' ||
                            (t.reason IS NULL)::pg_catalog.text, false) IS NOT NULL
                   ELSE true END;
END
$fn$;

-- Called by the daemon after every refresh attempt. On success the previous
-- error is kept on purpose: it is history for whoever reads the status view.
-- request: the refresh request (epoch of requested_at, as registry() gave it)
-- that the daemon had loaded when this refresh began, so its snapshot follows
-- the request's commit; a successful refresh serves exactly that one. (The
-- signature grew that argument: the old one goes, or calls would be ambiguous.)
DROP FUNCTION IF EXISTS mvrefresh.refresh_end(oid, boolean, text, text, text, double precision);
-- And it grew holder in protocol 5 (below).
DROP FUNCTION IF EXISTS mvrefresh.refresh_end(oid, boolean, text, text, text, double precision,
                                              double precision);
-- Returns whether the view was marked pending since this refresh began (a
-- take_changes() or backstop(), or a pending_view row): a change the refresh
-- may not cover, and one the daemon may never have heard of (made by a
-- session of a daemon gone since: docs/quiet-triggers.md, "Start and
-- reconnect"). The daemon gives such a view one more cycle unless it heard.
CREATE OR REPLACE FUNCTION mvrefresh.refresh_end(
    view          oid,
    ok            boolean,
    mode          text,
    sqlstate      text,
    message       text,
    pending_since double precision,
    request       double precision DEFAULT NULL,
    holder        text[] DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    marked boolean;
BEGIN
    -- The fence, as in refresh_begin(): a deposed daemon's late call would
    -- overwrite the status row the next leader relies on (its pending_since
    -- with this daemon's view of it). Refused, the row stays "refreshing",
    -- which the next leader counts as pending: the view is refreshed again.
    IF refresh_end.holder IS NOT NULL AND NOT EXISTS (
           SELECT 1 FROM mvrefresh.lease l
           WHERE mvrefresh.names_holder(l.host, l.pid, l.started, refresh_end.holder)
             AND l.term = refresh_end.holder[4]::pg_catalog.int8) THEN
        PERFORM mvrefresh.check_holder(refresh_end.holder, false);
    END IF;
    UPDATE mvrefresh.refresh_state AS s
    SET refreshing    = false,
        last_finish   = now_.t,
        last_duration = now_.t - s.last_start,
        last_mode     = refresh_end.mode,
        refresh_count = s.refresh_count + CASE WHEN refresh_end.ok THEN 1 ELSE 0 END,
        failure_count = s.failure_count + CASE WHEN refresh_end.ok THEN 0 ELSE 1 END,
        last_error    = CASE WHEN refresh_end.ok THEN s.last_error ELSE refresh_end.message END,
        last_sqlstate = CASE WHEN refresh_end.ok THEN s.last_sqlstate ELSE refresh_end.sqlstate END,
        -- Changes marked in the database since this refresh began are still
        -- pending, whether or not the daemon heard of them.
        pending_since = COALESCE(pg_catalog.to_timestamp(refresh_end.pending_since), s.marked_at)
    -- One clock reading, so last_duration is exactly last_finish - last_start.
    FROM (SELECT pg_catalog.clock_timestamp() AS t) AS now_
    WHERE s.view = refresh_end.view::pg_catalog.regclass
    RETURNING s.marked_at IS NOT NULL INTO marked;
    -- The refresh request this refresh was begun for is served; one made since
    -- waits for the next. A failed refresh serves none: the request stays, and
    -- so does a paused view, retried like any failure.
    DELETE FROM mvrefresh.refresh_request AS r
    WHERE refresh_end.ok
      AND r.view = refresh_end.view::pg_catalog.regclass
      AND pg_catalog.date_part('epoch', r.requested_at) OPERATOR(pg_catalog.=) refresh_end.request;
    -- A successful refresh changed what its readers read: they are pending now,
    -- so that a daemon killed before it refreshes them still does at its next
    -- start. Marked, too: a reader's refresh running now may have taken its
    -- snapshot before this commits, and its refresh_end() must keep it pending.
    UPDATE mvrefresh.refresh_state AS s
    SET pending_since = COALESCE(s.pending_since, pg_catalog.clock_timestamp()),
        marked_at = pg_catalog.clock_timestamp()
    FROM mvrefresh.dependency d
    WHERE refresh_end.ok
      AND d.base = refresh_end.view::pg_catalog.regclass
      AND s.view = d.view;
    RETURN COALESCE(marked, false)
        OR EXISTS (SELECT 1 FROM mvrefresh.pending_view p
                   WHERE p.view = refresh_end.view::pg_catalog.oid);
END
$fn$;

-- Called by the daemon once at start-up, and whenever it becomes the active
-- daemon: a status row still marked "refreshing" belongs to a daemon that was
-- killed mid-refresh, unless that refresh still runs. Several daemons may
-- share a database (one active, but a former leader's cancelled refresh can
-- still be ending), so a row is left alone while another session is seen
-- refreshing the view: a daemon worker (application_name "... worker N")
-- running its mvrefresh.refresh('<oid>'::pg_catalog.oid, ...) call, or a
-- session holding or awaiting the view's EXCLUSIVE or ACCESS EXCLUSIVE lock
-- (what REFRESH takes). Its own refresh_end() closes the row. Both signs can
-- be faked by any role (a query text, or a lock it may take), but faking them
-- only delays this correction: it cannot block a refresh. Closed rows stay
-- pending, so the catch-up refreshes them. Returns how many rows it closed.
CREATE OR REPLACE FUNCTION mvrefresh.mark_interrupted()
RETURNS integer
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH closed AS (
        UPDATE mvrefresh.refresh_state AS s
        SET refreshing    = false,
            last_finish   = pg_catalog.clock_timestamp(),
            failure_count = s.failure_count + 1,
            last_error    = 'interrupted: the daemon stopped during this refresh',
            last_sqlstate = NULL,
            -- Still to be done: the next daemon catches up on it.
            pending_since = COALESCE(s.pending_since, pg_catalog.clock_timestamp())
        WHERE s.refreshing
          AND NOT EXISTS (
              SELECT 1 FROM pg_catalog.pg_stat_activity a
              WHERE a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()
                AND a.datname = pg_catalog.current_database()
                AND a.state OPERATOR(pg_catalog.<>) 'idle'
                -- (Not the application_name: a long one is cut before " worker N".)
                AND pg_catalog.strpos(a.query, 'mvrefresh.refresh(''' OPERATOR(pg_catalog.||)
                        s.view::pg_catalog.oid::pg_catalog.text OPERATOR(pg_catalog.||)
                        '''::pg_catalog.oid,') OPERATOR(pg_catalog.>) 0)
          AND NOT EXISTS (
              SELECT 1 FROM pg_catalog.pg_locks l
              WHERE l.locktype = 'relation'
                AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                                  WHERE d.datname = pg_catalog.current_database())
                AND l.relation = s.view::pg_catalog.oid
                AND l.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()
                AND l.mode IN ('ExclusiveLock', 'AccessExclusiveLock'))
        RETURNING 1
    )
    SELECT pg_catalog.count(*)::integer FROM closed;
$fn$;

--------------------------------------------------------------------------------
-- Dropped objects
--------------------------------------------------------------------------------

-- DROP of a watched materialized view (or of a table or upstream view, which
-- drops the views on it with CASCADE) removes the registration at once, so the
-- daemon reloads its registry instead of failing on a view that no longer
-- exists, and drops the notify triggers no remaining view needs, so tables
-- nobody watches stop sending notifications the daemon cannot use.
-- SECURITY DEFINER: whoever drops their own view need not have rights on the
-- mvrefresh tables or the base tables. It never fails the user's DROP: errors
-- become a WARNING (the daemon also skips views that no longer exist, and the
-- next watch() or unwatch() cleans up what is left).
CREATE OR REPLACE FUNCTION mvrefresh.on_sql_drop()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
-- A DROP must never wait long for mvrefresh: it may hold ACCESS EXCLUSIVE on a
-- view that readers queue behind. Past this, the cleanup is left to the lazy
-- path (a WARNING says so); function-level, so the caller's setting returns.
SET lock_timeout = '2s'
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    dropped oid[];
    freed   regclass[];
    watched oid[];
BEGIN
    -- DROP SCHEMA mvrefresh CASCADE has already removed our tables.
    IF pg_catalog.to_regclass('mvrefresh.view') IS NULL
       OR pg_catalog.to_regclass('mvrefresh.dependency') IS NULL THEN
        RETURN;
    END IF;
    SELECT pg_catalog.array_agg(o.objid) INTO dropped
    FROM pg_catalog.pg_event_trigger_dropped_objects() o
    WHERE o.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND o.objsubid = 0
      AND o.object_type IN ('materialized view', 'table');
    IF dropped IS NULL THEN
        RETURN;
    END IF;
    -- Dropped tables that were watched, bases or partitions and children read
    -- through one: their generations are left (the triggers went with them).
    watched := ARRAY(SELECT t FROM pg_catalog.unnest(dropped) AS t
                     WHERE pg_catalog.to_regclass('mvrefresh.gen_' || t::pg_catalog.text) IS NOT NULL);
    -- Most DROPs concern nothing we know: leave without taking any lock.
    IF NOT EXISTS (SELECT 1 FROM mvrefresh.view v
                   WHERE v.view::pg_catalog.oid = ANY (dropped))
       AND NOT EXISTS (SELECT 1 FROM mvrefresh.dependency d
                       WHERE d.base::pg_catalog.oid = ANY (dropped))
       AND pg_catalog.cardinality(watched) = 0 THEN
        RETURN;
    END IF;
    BEGIN
        -- Same serialization as watch()/unwatch(): a concurrent watch() must
        -- not count on a trigger that we are about to drop.
        LOCK TABLE mvrefresh.view IN SHARE UPDATE EXCLUSIVE MODE;
        -- The tables the dropped views read, before the rows naming them go.
        freed := ARRAY(SELECT d.base FROM mvrefresh.dependency d
                       WHERE d.view::pg_catalog.oid = ANY (dropped));
        -- Edges first: view_upstream_guard then sees no reader of a dropped
        -- upstream view (its readers were dropped by the same CASCADE). Only
        -- where there is a row to delete: the registry's statement triggers
        -- NOTIFY, which a DROP of a partition in a transaction to be prepared
        -- must not.
        IF EXISTS (SELECT 1 FROM mvrefresh.dependency d WHERE d.base::pg_catalog.oid = ANY (dropped)) THEN
            DELETE FROM mvrefresh.dependency d WHERE d.base::pg_catalog.oid = ANY (dropped);
        END IF;
        IF EXISTS (SELECT 1 FROM mvrefresh.view v WHERE v.view::pg_catalog.oid = ANY (dropped)) THEN
            DELETE FROM mvrefresh.view v WHERE v.view::pg_catalog.oid = ANY (dropped);
        END IF;
        PERFORM mvrefresh.release_tables(freed);
        -- A dropped partition or child: what its parent shows changed.
        IF pg_catalog.cardinality(watched) > 0 THEN
            PERFORM mvrefresh.sync_descendants('{}', watched);
        END IF;
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'mvrefresh: could not unregister dropped relations: %', SQLERRM;
    END;
END
$fn$;

-- New partitions and inheritance children of watched tables get the triggers
-- at once, and tables detached or disinherited lose them: after every CREATE
-- TABLE, ALTER TABLE and their FOREIGN TABLE forms (the event trigger's WHEN
-- clause) that names a table read through a watched one or a table that has
-- a generation, sync_descendants() puts things right (see there). Like
-- on_sql_drop(): as the installer, with a short lock_timeout, every name
-- qualified, and it never fails the user's DDL (errors become a WARNING; the
-- backstop finds the writes meanwhile, and watch() puts the triggers in place
-- again). Most DDL names nothing watched: it returns before taking any lock.
CREATE OR REPLACE FUNCTION mvrefresh.on_ddl_end()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET lock_timeout = '2s'
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    touched oid[];
BEGIN
    IF pg_catalog.to_regclass('mvrefresh.dependency') IS NULL THEN
        RETURN;
    END IF;
    SELECT pg_catalog.array_agg(DISTINCT e.objid) INTO touched
    FROM pg_catalog.pg_event_trigger_ddl_commands() e
    WHERE e.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND e.objsubid = 0;
    IF touched IS NULL
       OR (NOT EXISTS (SELECT 1 FROM mvrefresh.readers(touched))
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(touched) AS t
                           WHERE pg_catalog.to_regclass('mvrefresh.gen_' || t::pg_catalog.text)
                                 IS NOT NULL)) THEN
        RETURN;
    END IF;
    BEGIN
        PERFORM mvrefresh.sync_descendants(touched, '{}');
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'mvrefresh: could not update the triggers of partitions and inheritance children: %',
            SQLERRM
            USING HINT = 'Run mvrefresh.watch() again on the views that read them; the backstop finds their writes meanwhile.';
    END;
END
$fn$;

-- Event triggers need a superuser. Without one, dropped views are skipped by
-- the daemon (registry() and refresh_begin() only see existing views) and their
-- registrations linger until the next watch() or unwatch(); and partitions and
-- children made or attached later get their triggers only when watch() runs
-- again (the backstop finds their writes meanwhile).
DO $do$
BEGIN
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
        DROP EVENT TRIGGER IF EXISTS mvrefresh_sql_drop;
        CREATE EVENT TRIGGER mvrefresh_sql_drop ON sql_drop
            EXECUTE FUNCTION mvrefresh.on_sql_drop();
        DROP EVENT TRIGGER IF EXISTS mvrefresh_ddl_end;
        CREATE EVENT TRIGGER mvrefresh_ddl_end ON ddl_command_end
            WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE', 'CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE',
                        'CREATE SCHEMA') -- its CREATE TABLE ... PARTITION OF elements
            EXECUTE FUNCTION mvrefresh.on_ddl_end();
    ELSE
        RAISE WARNING 'mvrefresh: not installed by a superuser, so no event trigger: '
                      'registrations of dropped views are removed lazily';
        RAISE WARNING 'mvrefresh: not installed by a superuser: partitions and inheritance children '
                      'made or attached later get their triggers when watch() runs again'
            USING HINT = 'The backstop finds their writes meanwhile, within backstop_interval.';
    END IF;
END
$do$;

-- One row per registered view, for people: settings plus refresh history.
-- staleness is how long committed changes have been waiting for a refresh.
-- depends_on lists what the view waits for: watched upstream views and base
-- tables. New columns go at the end: CREATE OR REPLACE VIEW can only append.
-- A row shows only to roles that may SELECT the view itself: last_error can
-- quote the data that made a refresh fail. The view runs with its owner's
-- rights (the registry's row security does not filter for it), hence the
-- explicit test, and security_barrier so that a caller's own functions in a
-- WHERE clause cannot see the rows before it.
CREATE OR REPLACE VIEW mvrefresh.status WITH (security_barrier) AS
SELECT v.view,
       v.debounce,
       v.max_wait,
       v.concurrently,
       v.enabled,
       COALESCE(s.refreshing, false)  AS refreshing,
       s.last_start,
       s.last_finish,
       s.last_duration,
       s.last_mode,
       COALESCE(s.refresh_count, 0)   AS refresh_count,
       COALESCE(s.failure_count, 0)   AS failure_count,
       s.last_error,
       s.last_sqlstate,
       COALESCE(s.pending_since, p.marked_at) AS pending_since,
       pg_catalog.now() - COALESCE(s.pending_since, p.marked_at) AS staleness,
       ARRAY(SELECT d.base
             FROM mvrefresh.dependency d
             WHERE d.view = v.view
             ORDER BY d.base::pg_catalog.oid) AS depends_on,
       (SELECT rq.requested_at FROM mvrefresh.refresh_request rq
        WHERE rq.view = v.view) AS refresh_requested
FROM mvrefresh.view v
LEFT JOIN mvrefresh.refresh_state s ON s.view = v.view
LEFT JOIN mvrefresh.pending_view p ON p.view = v.view::pg_catalog.oid
WHERE pg_catalog.has_table_privilege(v.view::pg_catalog.oid, 'SELECT');

GRANT USAGE ON SCHEMA mvrefresh TO PUBLIC;
GRANT SELECT ON mvrefresh.status TO PUBLIC;

-- Functions: what PUBLIC may call, what only the daemon may. Every install
-- resets them, like the tables above. Functions not named here keep PUBLIC's
-- default EXECUTE: watch(), unwatch(), pause(), resume() (they run as their
-- caller), record_change() (writers' triggers call it; it checks their locks),
-- sources(), names_holder() (a comparison), and the helpers row security and
-- triggers call in the caller's name. Every trigger function that runs as the
-- installer is here: EXECUTE is what CREATE TRIGGER checks, and one attached
-- to a table of the caller's own would evaluate the caller's columns (their
-- casts, their operators) as the installer. test_security checks that record_change() is the only SECURITY
-- DEFINER function PUBLIC can call.
DO $do$
DECLARE
    f       record;
    daemon  boolean := EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                               WHERE r.rolname = 'mvrefresh_daemon');
BEGIN
    FOR f IN
        SELECT p.oid::pg_catalog.regprocedure AS fn, a.grantee
        FROM pg_catalog.pg_proc p
        CROSS JOIN LATERAL pg_catalog.aclexplode(
            COALESCE(p.proacl, pg_catalog.acldefault('f', p.proowner))) AS a
        WHERE p.oid IN (
                'mvrefresh.registry(integer)'::pg_catalog.regprocedure,
                'mvrefresh.refresh_begin(oid, double precision, integer, double precision, oid, text[])'::pg_catalog.regprocedure,
                'mvrefresh.refresh_end(oid, boolean, text, text, text, double precision, double precision, text[])'::pg_catalog.regprocedure,
                'mvrefresh.mark_interrupted()'::pg_catalog.regprocedure,
                'mvrefresh.lock_sources(oid)'::pg_catalog.regprocedure,
                'mvrefresh.release_tables(regclass[])'::pg_catalog.regprocedure,
                'mvrefresh.grant_maintain(regclass, boolean)'::pg_catalog.regprocedure,
                'mvrefresh.forget(regclass)'::pg_catalog.regprocedure,
                'mvrefresh.add_triggers(regclass[])'::pg_catalog.regprocedure,
                'mvrefresh.generation_of(regclass)'::pg_catalog.regprocedure,
                'mvrefresh.reset_grants(regclass)'::pg_catalog.regprocedure,
                'mvrefresh.revoke_all_but(text, aclitem[], oid)'::pg_catalog.regprocedure,
                'mvrefresh.generations(oid[])'::pg_catalog.regprocedure,
                'mvrefresh.warn_daemons(regclass)'::pg_catalog.regprocedure,
                'mvrefresh.sync_view(regclass)'::pg_catalog.regprocedure,
                'mvrefresh.check_dependency()'::pg_catalog.regprocedure,
                'mvrefresh.check_not_upstream()'::pg_catalog.regprocedure,
                'mvrefresh.on_registration()'::pg_catalog.regprocedure,
                'mvrefresh.ring()'::pg_catalog.regprocedure,
                -- Read the registry under row security, called only by functions
                -- that run as the installer: a view's code calling one during a
                -- REFRESH would share (and could reshape) the plan they cache.
                'mvrefresh.view_tables(oid)'::pg_catalog.regprocedure,
                'mvrefresh.admissible_sources(regclass, oid)'::pg_catalog.regprocedure,
                'mvrefresh.with_descendants(oid[])'::pg_catalog.regprocedure,
                'mvrefresh.readers(oid[])'::pg_catalog.regprocedure,
                'mvrefresh.table_fingerprints(oid[])'::pg_catalog.regprocedure,
                'mvrefresh.on_sql_drop()'::pg_catalog.regprocedure,
                'mvrefresh.on_ddl_end()'::pg_catalog.regprocedure,
                'mvrefresh.sync_descendants(oid[], oid[])'::pg_catalog.regprocedure,
                'mvrefresh.rearm(oid[], boolean)'::pg_catalog.regprocedure,
                'mvrefresh.rearm_view(oid)'::pg_catalog.regprocedure,
                'mvrefresh.refresh(oid, boolean)'::pg_catalog.regprocedure,
                'mvrefresh.take_changes(text[])'::pg_catalog.regprocedure,
                'mvrefresh.check_holder(text[], boolean)'::pg_catalog.regprocedure,
                'mvrefresh.mark_pending(regclass[], boolean)'::pg_catalog.regprocedure,
                'mvrefresh.heartbeat(text[])'::pg_catalog.regprocedure,
                'mvrefresh.take_lease(text[], bigint)'::pg_catalog.regprocedure,
                'mvrefresh.release_lease(text[])'::pg_catalog.regprocedure,
                'mvrefresh.backstop(oid[], text[])'::pg_catalog.regprocedure)
          AND a.grantee <> p.proowner
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM %s', f.fn,
            CASE f.grantee WHEN 0 THEN 'PUBLIC'
                 ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(f.grantee)) END);
    END LOOP;
    IF daemon THEN
        GRANT EXECUTE ON FUNCTION
            mvrefresh.registry(integer),
            mvrefresh.refresh_begin(oid, double precision, integer, double precision, oid, text[]),
            mvrefresh.refresh_end(oid, boolean, text, text, text, double precision, double precision,
                                  text[]),
            mvrefresh.mark_interrupted(),
            mvrefresh.lock_sources(oid),
            mvrefresh.rearm(oid[], boolean),
            mvrefresh.rearm_view(oid),
            mvrefresh.refresh(oid, boolean),
            mvrefresh.take_changes(text[]),
            mvrefresh.heartbeat(text[]),
            mvrefresh.take_lease(text[], bigint),
            mvrefresh.release_lease(text[]),
            mvrefresh.backstop(oid[], text[])
        TO mvrefresh_daemon;
    END IF;
END
$do$;

--------------------------------------------------------------------------------
-- Upgrade: bring stored dependencies up to date
--------------------------------------------------------------------------------

-- Dependencies are found when a view is watched. An installation from before
-- upstream views were edges recorded a matview-over-matview as reading the
-- inner view's tables, and a plain view replaced since the last watch() may
-- read other relations now. Re-watch (with the stored settings) every view
-- whose stored dependencies differ from what the catalog says, so the daemon
-- gets the current graph. A view that cannot be re-watched (it reads a
-- materialized view that is not watched, a foreign table, or the new edge
-- would close a cycle) keeps its rows, and the installer is told why: the
-- install must not fail because of one registration.
DO $do$
DECLARE
    r      record;
    hint   text;
BEGIN
    FOR r IN
        SELECT v.view, v.debounce, v.max_wait, v.concurrently
        FROM mvrefresh.view v
        JOIN pg_catalog.pg_class c ON c.oid = v.view AND c.relkind = 'm'
        -- (Also where a view reads a table ONLY: rows from before with_children
        -- say it reads the children.)
        WHERE ARRAY(SELECT (d.base::pg_catalog.oid, d.with_children)::pg_catalog.text
                    FROM mvrefresh.dependency d
                    WHERE d.view = v.view ORDER BY d.base::pg_catalog.oid)
              IS DISTINCT FROM
              ARRAY(SELECT (s.source::pg_catalog.oid, s.with_children)::pg_catalog.text
                    FROM mvrefresh.sources(v.view) s ORDER BY s.source::pg_catalog.oid)
        ORDER BY v.view::pg_catalog.oid
    LOOP
        BEGIN
            PERFORM mvrefresh.watch(r.view, r.debounce, r.max_wait, r.concurrently);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
            RAISE WARNING 'mvrefresh: dependencies of "%" left as they were: %', r.view, SQLERRM
                USING HINT = COALESCE(NULLIF(hint, ''), 'Fix the cause, then run mvrefresh.watch() on it again.');
        END;
    END LOOP;
END
$do$;

-- Nobody but the installer may write what the change signals rely on: markers,
-- the backstop's memory, generations (setval() on one would disarm its table).
-- Writers' triggers only read the generations.
DO $do$
DECLARE
    rel regclass;
BEGIN
    FOR rel IN
        SELECT c.oid::pg_catalog.regclass FROM pg_catalog.pg_class c
        WHERE c.relnamespace = 'mvrefresh'::pg_catalog.regnamespace
          AND (c.relname IN ('change_log', 'table_state', 'view_fingerprint', 'generation', 'daemon',
                             'pending_view')
               OR (c.relkind = 'S' AND c.relname LIKE 'gen\_%'))
    LOOP
        PERFORM mvrefresh.reset_grants(rel);
        IF rel::pg_catalog.text LIKE 'mvrefresh.gen\_%' THEN
            EXECUTE pg_catalog.format('GRANT SELECT ON SEQUENCE %s TO PUBLIC', rel);
        END IF;
    END LOOP;
END
$do$;

-- Triggers from before the quiet triggers (a NOTIFY on every statement) are
-- replaced in place, and every watched table gets its generation; so do the
-- partitions and inheritance children read through one (before this release
-- they had no triggers, and views that read them are marked pending).
DO $do$
DECLARE
    bases oid[] := ARRAY(SELECT DISTINCT d.base::pg_catalog.oid
                         FROM mvrefresh.dependency d
                         JOIN pg_catalog.pg_class c ON c.oid = d.base AND c.relkind IN ('r', 'p'));
    tbl   oid;
    lock_wait text := pg_catalog.current_setting('lock_timeout');
BEGIN
    PERFORM mvrefresh.add_triggers(bases::pg_catalog.regclass[]);
    -- One descendant that cannot take them (a lock held too long, a table this
    -- role may not put triggers on) must not fail the install: the backstop
    -- covers it, and watch() says why. "Too long" is 5 s where the installer
    -- set no wait of its own: the install holds what it has locked meanwhile.
    IF lock_wait = '0' THEN
        PERFORM pg_catalog.set_config('lock_timeout', '5s', true);
    END IF;
    FOR tbl IN SELECT t FROM mvrefresh.with_descendants(bases) AS t
               WHERE t <> ALL (bases) ORDER BY t LOOP
        BEGIN
            PERFORM mvrefresh.add_triggers(ARRAY[tbl::pg_catalog.regclass]);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'mvrefresh: no triggers on %, which watched views read through its parent: %',
                tbl::pg_catalog.regclass, SQLERRM
                USING HINT = 'Writes aimed at it are found by the backstop only. Fix the cause, then run mvrefresh.watch() on those views again.';
        END;
    END LOOP;
    PERFORM pg_catalog.set_config('lock_timeout', lock_wait, true);
END
$do$;

COMMIT;
