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
-- Rows one can see can be aimed at, and a new one proposed; check_owner()
-- then decides, so that a non-owner gets an error instead of "UPDATE 0".
DROP POLICY IF EXISTS view_retune ON mvrefresh.view;
CREATE POLICY view_retune ON mvrefresh.view FOR UPDATE
    USING (pg_catalog.has_table_privilege(view::pg_catalog.oid, 'SELECT'))
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
DO $do$
DECLARE
    g record;
BEGIN
    FOR g IN
        SELECT DISTINCT pg_catalog.format('%s %s', o.kind, o.name) AS obj, a.grantee
        FROM (SELECT 'TABLE' AS kind, c.oid::pg_catalog.regclass::pg_catalog.text AS name,
                     c.relacl AS acl, c.relowner AS owner
              FROM pg_catalog.pg_class c
              WHERE c.oid IN ('mvrefresh.view'::pg_catalog.regclass,
                              'mvrefresh.dependency'::pg_catalog.regclass,
                              'mvrefresh.refresh_state'::pg_catalog.regclass)
            UNION ALL
              SELECT 'SCHEMA', 'mvrefresh', n.nspacl, n.nspowner
              FROM pg_catalog.pg_namespace n WHERE n.nspname = 'mvrefresh') AS o
        CROSS JOIN LATERAL pg_catalog.aclexplode(o.acl) AS a
        WHERE a.grantee <> o.owner
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM %s', g.obj,
            CASE g.grantee WHEN 0 THEN 'PUBLIC'
                 ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(g.grantee)) END);
    END LOOP;
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
-- Protocol 1 was every release before version() existed.
CREATE OR REPLACE FUNCTION mvrefresh.version()
RETURNS TABLE (version text, protocol integer, change_channel text, control_channel text)
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT '0.2.0'::pg_catalog.text, 2, mvrefresh.change_channel(), mvrefresh.control_channel();
$fn$;

COMMENT ON FUNCTION mvrefresh.version() IS
    'The installed mvrefresh release and the daemon protocol it speaks';

--------------------------------------------------------------------------------
-- Change signals
--------------------------------------------------------------------------------

-- Trigger function on the base tables. It runs on the application's write
-- path, so it is kept minimal and deliberately has no SET search_path (that
-- would make every call set and restore a GUC); everything is qualified
-- instead. The payload is constant per table, which lets PostgreSQL fold
-- duplicate notifications within one transaction into one.
CREATE OR REPLACE FUNCTION mvrefresh.notify()
RETURNS trigger
LANGUAGE plpgsql
AS $fn$
BEGIN
    PERFORM pg_catalog.pg_notify(mvrefresh.change_channel(), TG_RELID::pg_catalog.text);
    RETURN NULL;
END
$fn$;

COMMENT ON FUNCTION mvrefresh.notify() IS
    'Statement trigger on base tables: NOTIFY mvrefresh, ''<table oid>''';

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
-- Limits: a partitioned table's trigger is on the parent, so writes aimed
-- directly at a partition are not seen; likewise writes to an inheritance
-- child. Tables read only inside functions called by the view are invisible
-- to the catalog. System catalogs are skipped: they cannot carry triggers.
CREATE OR REPLACE FUNCTION mvrefresh.sources(view regclass)
RETURNS TABLE (source regclass, kind "char")
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
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
    )
    SELECT c.oid::pg_catalog.regclass, c.relkind
    FROM reached r
    JOIN pg_catalog.pg_class c ON c.oid = r.rel
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid <> sources.view::pg_catalog.oid
      AND c.relkind IN ('r', 'p', 'm', 'f')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    ORDER BY c.oid;
$fn$;

COMMENT ON FUNCTION mvrefresh.sources(regclass) IS
    'Tables (r, p), materialized views (m) and foreign tables (f) a materialized view reads, through plain views only';

--------------------------------------------------------------------------------
-- Registration
--------------------------------------------------------------------------------

-- Shared cleanup for watch(), unwatch() and the sql_drop event trigger.
-- Dependency rows on relations that no longer exist and registrations of
-- materialized views that were dropped are forgotten first (their OIDs point
-- nowhere and would otherwise keep triggers alive forever); then the notify
-- triggers are removed from those candidate tables that no registered view
-- reads any more. Only triggers that call mvrefresh.notify() are touched.
-- Callers hold (or, in the event trigger, take) the lock on mvrefresh.view.
CREATE OR REPLACE FUNCTION mvrefresh.release_tables(candidates regclass[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    tbl regclass;
    trg name;
BEGIN
    -- A relation gone without the event trigger noticing (installed by a
    -- non-superuser) that a view had stopped reading before it was dropped.
    DELETE FROM mvrefresh.dependency d
    WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = d.base);

    candidates := candidates || ARRAY(
        SELECT d.base
        FROM mvrefresh.dependency d
        WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                          WHERE c.oid = d.view AND c.relkind = 'm'));

    DELETE FROM mvrefresh.view v
    WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                      WHERE c.oid = v.view AND c.relkind = 'm');

    FOR tbl, trg IN
        SELECT t.tgrelid::pg_catalog.regclass, t.tgname
        FROM pg_catalog.pg_trigger t
        WHERE t.tgrelid::pg_catalog.regclass = ANY (candidates)
          AND t.tgname IN ('mvrefresh_notify', 'mvrefresh_notify_truncate')
          AND t.tgfoid = 'mvrefresh.notify()'::pg_catalog.regprocedure
          AND NOT EXISTS (SELECT 1 FROM mvrefresh.dependency d WHERE d.base = t.tgrelid)
        ORDER BY t.tgrelid, t.tgname  -- a stable lock order across sessions
    LOOP
        EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', trg, tbl);
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
    END IF;
END
$fn$;

-- Make a registered view's dependency rows, the triggers on its tables and its
-- status row agree with the catalog. Runs as the installer (it puts triggers on
-- tables the caller may not own), so it decides nothing by its caller: it only
-- follows the registry, which only owners can write, and checks privileges
-- against the view's owner. Anyone may call it; it does nothing new then. The
-- view's owner must be able to read every relation the view reads (its refresh
-- could not work otherwise, and nobody may tie a view to relations they cannot
-- read), and must hold TRIGGER on its tables: a trigger runs on every write to
-- a table, and creating one is what that privilege is for.
CREATE OR REPLACE FUNCTION mvrefresh.sync_view(view regclass)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    owner  oid;
    bases  regclass[];
    tables regclass[];
    stale  regclass[];
BEGIN
    -- Serializes every change of dependencies and triggers; taken by nobody
    -- else (no role is granted a lock mode that conflicts with it).
    LOCK TABLE mvrefresh.view IN SHARE UPDATE EXCLUSIVE MODE;
    SELECT c.relowner INTO owner
    FROM mvrefresh.view v JOIN pg_catalog.pg_class c ON c.oid = v.view AND c.relkind = 'm'
    WHERE v.view = sync_view.view AND NOT v.unwatched;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT a.bases, a.tables INTO bases, tables FROM mvrefresh.admissible_sources(view, owner) a;

    stale := ARRAY(SELECT d.base FROM mvrefresh.dependency d
                   WHERE d.view = sync_view.view AND d.base <> ALL (bases));
    -- Replace the dependency rows by difference so unchanged rows stay put.
    -- A new edge that would close a cycle fails in dependency_acyclic.
    DELETE FROM mvrefresh.dependency d WHERE d.view = sync_view.view AND d.base = ANY (stale);
    INSERT INTO mvrefresh.dependency (view, base)
    SELECT sync_view.view, b FROM pg_catalog.unnest(bases) AS b
    ON CONFLICT DO NOTHING;
    INSERT INTO mvrefresh.refresh_state (view) VALUES (sync_view.view) ON CONFLICT DO NOTHING;

    PERFORM mvrefresh.add_triggers(tables);
    PERFORM mvrefresh.release_tables(stale);
    PERFORM mvrefresh.grant_maintain(view, true);

    IF pg_catalog.cardinality(bases) = 0 THEN
        RAISE WARNING '"%" reads no table that can carry a trigger', view
            USING HINT = 'It is registered, but no change will ever notify the daemon.';
    END IF;
END
$fn$;

-- What view reads, checked against its owner: every relation it reads
-- (bases), and the tables among them (tables), which get triggers. Refuses,
-- with SQLSTATE and hint, what cannot be watched.
CREATE OR REPLACE FUNCTION mvrefresh.admissible_sources(view regclass, owner oid,
                                                       OUT bases regclass[], OUT tables regclass[])
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    src record;
BEGIN
    bases := '{}';
    tables := '{}';
    -- Ordered by OID, so concurrent callers lock tables in one order.
    FOR src IN SELECT s.source, s.kind FROM mvrefresh.sources(view) s
               ORDER BY s.source::pg_catalog.oid LOOP
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

-- The notify triggers on each table, unless there already. (No CREATE OR
-- REPLACE TRIGGER before PostgreSQL 14: check, then create.) Upstream views get
-- no trigger: a change reaches them through their own tables, and the daemon
-- cascades from their refresh.
CREATE OR REPLACE FUNCTION mvrefresh.add_triggers(tables regclass[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    tbl regclass;
BEGIN
    FOREACH tbl IN ARRAY tables LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                       WHERE t.tgrelid = tbl AND t.tgname = 'mvrefresh_notify') THEN
            EXECUTE pg_catalog.format(
                'CREATE TRIGGER mvrefresh_notify'
                ' AFTER INSERT OR UPDATE OR DELETE ON %s'
                ' FOR EACH STATEMENT EXECUTE FUNCTION mvrefresh.notify()', tbl);
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                       WHERE t.tgrelid = tbl AND t.tgname = 'mvrefresh_notify_truncate') THEN
            EXECUTE pg_catalog.format(
                'CREATE TRIGGER mvrefresh_notify_truncate'
                ' AFTER TRUNCATE ON %s'
                ' FOR EACH STATEMENT EXECUTE FUNCTION mvrefresh.notify()', tbl);
        END IF;
    END LOOP;
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
    IF NEW.unwatched THEN
        PERFORM mvrefresh.forget(NEW.view);
    ELSE
        PERFORM mvrefresh.sync_view(NEW.view);
    END IF;
    RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS view_registered ON mvrefresh.view;
CREATE TRIGGER view_registered
    AFTER INSERT ON mvrefresh.view
    FOR EACH ROW EXECUTE FUNCTION mvrefresh.on_registration();
DROP TRIGGER IF EXISTS view_unwatched ON mvrefresh.view;
CREATE TRIGGER view_unwatched
    AFTER UPDATE OF unwatched ON mvrefresh.view
    FOR EACH ROW WHEN (NEW.unwatched) EXECUTE FUNCTION mvrefresh.on_registration();

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
    IF watch.debounce <= interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'debounce must be positive',
            DETAIL = pg_catalog.format('debounce is %s.', watch.debounce);
    END IF;
    IF watch.max_wait <= interval '0' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'max_wait must be positive',
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

    -- Re-watching retunes only; "enabled" stays whatever the user set. A new
    -- row is synced by its insert trigger; an existing one here, since what
    -- it reads may have changed (CREATE OR REPLACE VIEW in between).
    INSERT INTO mvrefresh.view AS v (view, debounce, max_wait, "concurrently")
    VALUES (watch.view, watch.debounce, watch.max_wait, watch.concurrently)
    -- By constraint name: in PL/pgSQL "(view)" would clash with the parameter.
    ON CONFLICT ON CONSTRAINT view_pkey DO UPDATE
        SET debounce = EXCLUDED.debounce,
            max_wait = EXCLUDED.max_wait,
            "concurrently" = EXCLUDED.concurrently;
    PERFORM mvrefresh.sync_view(watch.view);
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

--------------------------------------------------------------------------------
-- Daemon interface
--------------------------------------------------------------------------------

-- A function's result columns cannot be changed in place: drop an older
-- registry() (from before base_is_view) so it can be recreated below. Kept
-- when already current, so grants made on it survive a reinstall.
DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
               WHERE p.oid = pg_catalog.to_regprocedure('mvrefresh.registry()')
                 AND p.proargnames IS DISTINCT FROM
                     ARRAY['view', 'name', 'debounce_ms', 'max_wait_ms',
                           'concurrently', 'base', 'base_is_view']::pg_catalog.text[]) THEN
        DROP FUNCTION mvrefresh.registry();
    END IF;
END
$do$;

-- Everything the daemon needs to build its table -> views map and the graph of
-- views, in one query. Disabled views and views that no longer exist are left
-- out so the daemon never works on them; durations are converted to
-- milliseconds here so the daemon need not parse interval text. base_is_view
-- tells an edge to an upstream view (refresh after it) from a table (refresh
-- on its notifications). It stays true for an upstream view that is disabled:
-- the daemon ignores edges to views it has not loaded. A view without
-- dependencies has one row with a NULL base and base_is_view false.
CREATE OR REPLACE FUNCTION mvrefresh.registry()
RETURNS TABLE (view oid, name text, debounce_ms bigint, max_wait_ms bigint,
               concurrently boolean, base oid, base_is_view boolean)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT v.view::pg_catalog.oid,
           v.view::pg_catalog.text,
           pg_catalog.round(pg_catalog.date_part('epoch', v.debounce) * 1000)::pg_catalog.int8,
           pg_catalog.round(pg_catalog.date_part('epoch', v.max_wait) * 1000)::pg_catalog.int8,
           v.concurrently,
           b.oid,
           EXISTS (SELECT 1 FROM mvrefresh.view u WHERE u.view = d.base)
    FROM mvrefresh.view v
    JOIN pg_catalog.pg_class c ON c.oid = v.view AND c.relkind = 'm'
    LEFT JOIN (mvrefresh.dependency d
               JOIN pg_catalog.pg_class b ON b.oid = d.base)
      ON d.view = v.view
    WHERE v.enabled
    ORDER BY v.view::pg_catalog.oid, b.oid;
$fn$;

-- Called by the daemon in the refresh's own transaction, right before the
-- REFRESH: takes ACCESS SHARE on every table the view reads (with their
-- partitions and inheritance children), in OID order. TRUNCATE and table rewrites (ALTER TABLE ... SET DATA TYPE; CLUSTER
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
        SELECT c.oid, n.nspname, c.relname
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
        EXECUTE pg_catalog.format('LOCK TABLE %I.%I IN ACCESS SHARE MODE',
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

-- refresh_begin() gained "denied": drop the older one so it can be recreated.
DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
               WHERE p.oid = pg_catalog.to_regprocedure('mvrefresh.refresh_begin(oid, double precision)')
                 AND NOT ('denied' = ANY (p.proargnames))) THEN
        DROP FUNCTION mvrefresh.refresh_begin(oid, double precision);
    END IF;
END
$do$;

-- Why role `who` may not REFRESH materialized view `view`, with the fix; NULL
-- when it may. Ownership (as a member of the owning role) always works; from
-- PostgreSQL 17 on the MAINTAIN privilege is enough, and watch() grants it to
-- mvrefresh_daemon. (Nested CASE: has_table_privilege() only knows MAINTAIN
-- from 17 on, and CASE is what guarantees it is not asked before.)
CREATE OR REPLACE FUNCTION mvrefresh.refresh_denied(view regclass, who name)
RETURNS text
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT CASE
        WHEN pg_catalog.pg_has_role(refresh_denied.who, c.relowner, 'USAGE') THEN NULL
        WHEN pg_catalog.current_setting('server_version_num')::integer >= 170000 THEN
            CASE WHEN pg_catalog.has_table_privilege(refresh_denied.who, c.oid, 'MAINTAIN') THEN NULL
            ELSE pg_catalog.format(
                'role %I may not refresh %s: it needs the MAINTAIN privilege on it. '
                'Fix: GRANT mvrefresh_daemon TO %I and run SELECT mvrefresh.watch(%L) again '
                '(it grants MAINTAIN to mvrefresh_daemon), or GRANT MAINTAIN ON %s TO %I, '
                'or GRANT pg_maintain TO %I',
                refresh_denied.who, refresh_denied.view, refresh_denied.who,
                refresh_denied.view::pg_catalog.text, refresh_denied.view, refresh_denied.who,
                refresh_denied.who)
            END
        ELSE pg_catalog.format(
            'role %I may not refresh %s: before PostgreSQL 17 only its owner can, and %I is '
            'not a member of the owning role %I. Fix: GRANT %I TO %I',
            refresh_denied.who, refresh_denied.view, refresh_denied.who, r.rolname,
            r.rolname, refresh_denied.who)
    END
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles r ON r.oid = c.relowner
    WHERE c.oid = refresh_denied.view;
$fn$;

-- Called by the daemon right before a refresh. Returning no row means "do not
-- refresh": the view was dropped, is no longer a materialized view, or was
-- unwatched. The names come back separately so the daemon quotes them itself
-- (PQescapeIdentifier) instead of trusting a preformatted string. "denied" is
-- non-NULL when the daemon's role cannot refresh the view: the daemon records
-- it as the failure (SQLSTATE 42501) instead of trying.
CREATE OR REPLACE FUNCTION mvrefresh.refresh_begin(view oid, pending_since double precision)
RETURNS TABLE (nspname name, relname name, concurrent_ok boolean, reason text, denied text)
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH target AS (
        SELECT v.view, n.nspname, c.relname,
               mvrefresh.refresh_denied(v.view, mvrefresh.acting_role()) AS denied,
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
        FROM mvrefresh.view v
        JOIN pg_catalog.pg_class c ON c.oid = v.view AND c.relkind = 'm'
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE v.view = refresh_begin.view::pg_catalog.regclass
    ), mark AS (
        -- Upsert: a registration made by a plain INSERT has no state row yet.
        INSERT INTO mvrefresh.refresh_state AS s (view, refreshing, last_start, pending_since)
        SELECT t.view, true, pg_catalog.clock_timestamp(),
               pg_catalog.to_timestamp(refresh_begin.pending_since)
        FROM target t
        ON CONFLICT (view) DO UPDATE
            SET refreshing = true,
                last_start = EXCLUDED.last_start,
                pending_since = EXCLUDED.pending_since
    )
    SELECT t.nspname, t.relname, t.reason IS NULL, t.reason, t.denied
    FROM target t;
$fn$;

-- Called by the daemon after every refresh attempt. On success the previous
-- error is kept on purpose: it is history for whoever reads the status view.
CREATE OR REPLACE FUNCTION mvrefresh.refresh_end(
    view          oid,
    ok            boolean,
    mode          text,
    sqlstate      text,
    message       text,
    pending_since double precision)
RETURNS void
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
    UPDATE mvrefresh.refresh_state AS s
    SET refreshing    = false,
        last_finish   = now_.t,
        last_duration = now_.t - s.last_start,
        last_mode     = refresh_end.mode,
        refresh_count = s.refresh_count + CASE WHEN refresh_end.ok THEN 1 ELSE 0 END,
        failure_count = s.failure_count + CASE WHEN refresh_end.ok THEN 0 ELSE 1 END,
        last_error    = CASE WHEN refresh_end.ok THEN s.last_error ELSE refresh_end.message END,
        last_sqlstate = CASE WHEN refresh_end.ok THEN s.last_sqlstate ELSE refresh_end.sqlstate END,
        pending_since = pg_catalog.to_timestamp(refresh_end.pending_since)
    -- One clock reading, so last_duration is exactly last_finish - last_start.
    FROM (SELECT pg_catalog.clock_timestamp() AS t) AS now_
    WHERE s.view = refresh_end.view::pg_catalog.regclass;
$fn$;

-- Called by the daemon once at start-up: a status row still marked
-- "refreshing" belongs to a daemon that was killed mid-refresh (one daemon per
-- database). Its changes stay pending; the daemon's start-up catch-up
-- refreshes every view anyway. Returns how many rows it closed.
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
            last_sqlstate = NULL
        WHERE s.refreshing
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
    -- Most DROPs concern nothing we know: leave without taking any lock.
    IF NOT EXISTS (SELECT 1 FROM mvrefresh.view v
                   WHERE v.view::pg_catalog.oid = ANY (dropped))
       AND NOT EXISTS (SELECT 1 FROM mvrefresh.dependency d
                       WHERE d.base::pg_catalog.oid = ANY (dropped)) THEN
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
        -- upstream view (its readers were dropped by the same CASCADE).
        DELETE FROM mvrefresh.dependency d WHERE d.base::pg_catalog.oid = ANY (dropped);
        DELETE FROM mvrefresh.view v WHERE v.view::pg_catalog.oid = ANY (dropped);
        PERFORM mvrefresh.release_tables(freed);
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'mvrefresh: could not unregister dropped relations: %', SQLERRM;
    END;
END
$fn$;

-- Event triggers need a superuser. Without one, dropped views are skipped by
-- the daemon (registry() and refresh_begin() only see existing views) and their
-- registrations linger until the next watch() or unwatch().
DO $do$
BEGIN
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
        DROP EVENT TRIGGER IF EXISTS mvrefresh_sql_drop;
        CREATE EVENT TRIGGER mvrefresh_sql_drop ON sql_drop
            EXECUTE FUNCTION mvrefresh.on_sql_drop();
    ELSE
        RAISE WARNING 'mvrefresh: not installed by a superuser, so no event trigger: '
                      'registrations of dropped views are removed lazily';
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
       s.pending_since,
       pg_catalog.now() - s.pending_since AS staleness,
       ARRAY(SELECT d.base
             FROM mvrefresh.dependency d
             WHERE d.view = v.view
             ORDER BY d.base::pg_catalog.oid) AS depends_on
FROM mvrefresh.view v
LEFT JOIN mvrefresh.refresh_state s ON s.view = v.view
WHERE pg_catalog.has_table_privilege(v.view::pg_catalog.oid, 'SELECT');

GRANT USAGE ON SCHEMA mvrefresh TO PUBLIC;
GRANT SELECT ON mvrefresh.status TO PUBLIC;

-- Functions: what PUBLIC may call, what only the daemon may. Every install
-- resets them, like the tables above. Functions not named here keep PUBLIC's
-- default EXECUTE: watch(), unwatch() (they run as their caller), sync_view()
-- (it does nothing but make things agree), sources(), and the helpers row
-- security and triggers call in the caller's name.
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
                'mvrefresh.registry()'::pg_catalog.regprocedure,
                'mvrefresh.refresh_begin(oid, double precision)'::pg_catalog.regprocedure,
                'mvrefresh.refresh_end(oid, boolean, text, text, text, double precision)'::pg_catalog.regprocedure,
                'mvrefresh.mark_interrupted()'::pg_catalog.regprocedure,
                'mvrefresh.lock_sources(oid)'::pg_catalog.regprocedure,
                'mvrefresh.release_tables(regclass[])'::pg_catalog.regprocedure,
                'mvrefresh.grant_maintain(regclass, boolean)'::pg_catalog.regprocedure,
                'mvrefresh.forget(regclass)'::pg_catalog.regprocedure,
                'mvrefresh.add_triggers(regclass[])'::pg_catalog.regprocedure)
          AND a.grantee <> p.proowner
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM %s', f.fn,
            CASE f.grantee WHEN 0 THEN 'PUBLIC'
                 ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(f.grantee)) END);
    END LOOP;
    IF daemon THEN
        GRANT EXECUTE ON FUNCTION
            mvrefresh.registry(),
            mvrefresh.refresh_begin(oid, double precision),
            mvrefresh.refresh_end(oid, boolean, text, text, text, double precision),
            mvrefresh.mark_interrupted(),
            mvrefresh.lock_sources(oid)
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
        WHERE ARRAY(SELECT d.base::pg_catalog.oid FROM mvrefresh.dependency d
                    WHERE d.view = v.view ORDER BY 1)
              IS DISTINCT FROM
              ARRAY(SELECT s.source::pg_catalog.oid FROM mvrefresh.sources(v.view) s ORDER BY 1)
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

COMMIT;
