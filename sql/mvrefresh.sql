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
-- Requires PostgreSQL 13 or later.

BEGIN;

-- Resolve every unqualified type name in this script from pg_catalog only, so a
-- hostile or merely unusual search_path of the installing session cannot
-- change what gets created. SET LOCAL ends with this transaction.
SET LOCAL search_path = pg_catalog, pg_temp;
-- Re-running the script would otherwise print a NOTICE per existing object.
SET LOCAL client_min_messages = warning;

CREATE SCHEMA IF NOT EXISTS mvrefresh;

COMMENT ON SCHEMA mvrefresh IS
    'mvrefresh: materialized views refreshed by mvrefreshd when their base tables change';

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

-- Checks live on the table (not only in watch()) because users retune with
-- plain UPDATEs. Added by name so an older installation gains them on upgrade.
DO $do$
DECLARE
    chk record;
BEGIN
    FOR chk IN
        SELECT *
        FROM (VALUES
            ('view_debounce_positive',    'debounce > interval ''0''' ),
            ('view_max_wait_positive',    'max_wait > interval ''0''' ),
            ('view_max_wait_ge_debounce', 'max_wait >= debounce'      )
        ) AS c(name, expr)
    LOOP
        IF NOT EXISTS (SELECT 1
                       FROM pg_catalog.pg_constraint k
                       WHERE k.conrelid = 'mvrefresh.view'::pg_catalog.regclass
                         AND k.conname = chk.name) THEN
            EXECUTE pg_catalog.format('ALTER TABLE mvrefresh.view ADD CONSTRAINT %I CHECK (%s)',
                                      chk.name, chk.expr);
        END IF;
    END LOOP;
END
$do$;

-- Base tables (relkind r or p) each watched view reads, found by watch().
-- This is what the daemon uses to map a notifying table to its views.
CREATE TABLE IF NOT EXISTS mvrefresh.dependency (
    view regclass NOT NULL REFERENCES mvrefresh.view ON DELETE CASCADE,
    base regclass NOT NULL,
    PRIMARY KEY (view, base)
);

-- "Does any view still need this table?" is asked by base, not by view.
CREATE INDEX IF NOT EXISTS dependency_base_idx ON mvrefresh.dependency (base);

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
    PERFORM pg_catalog.pg_notify('mvrefresh', TG_RELID::pg_catalog.text);
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
    PERFORM pg_catalog.pg_notify('mvrefresh_control', 'reload');
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

-- The tables a view or materialized view ultimately reads. A view's query is
-- stored as its "_RETURN" rule, and pg_depend records every relation that rule
-- references. We follow those references through plain views and other
-- materialized views (a change to an inner matview's tables is what eventually
-- changes the outer one) and keep ordinary and partitioned tables.
--
-- Limits: a partitioned table gets its trigger on the parent, so writes aimed
-- directly at a partition are not seen; likewise writes to an inheritance
-- child. Tables read only inside functions called by the view are invisible
-- to the catalog. System catalogs are skipped: they cannot carry triggers.
CREATE OR REPLACE FUNCTION mvrefresh.base_tables(view regclass)
RETURNS SETOF regclass
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH RECURSIVE reached(rel) AS (
        SELECT base_tables.view::pg_catalog.oid
      UNION  -- not UNION ALL: a relation reached twice is expanded once
        SELECT dep.refobjid
        FROM reached r
        JOIN pg_catalog.pg_class src
          ON src.oid = r.rel AND src.relkind IN ('v', 'm')
        JOIN pg_catalog.pg_rewrite rule
          ON rule.ev_class = src.oid AND rule.rulename = '_RETURN'
        JOIN pg_catalog.pg_depend dep
          ON dep.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
         AND dep.objid = rule.oid
         AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
         AND dep.refobjid <> src.oid  -- the rule also "depends" on its own view
    )
    SELECT c.oid::pg_catalog.regclass
    FROM reached r
    JOIN pg_catalog.pg_class c ON c.oid = r.rel
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    ORDER BY c.oid;
$fn$;

COMMENT ON FUNCTION mvrefresh.base_tables(regclass) IS
    'Base tables (relkind r, p) a view reads, through plain and materialized views';

--------------------------------------------------------------------------------
-- Registration
--------------------------------------------------------------------------------

-- Shared cleanup for watch() and unwatch(). Registrations of materialized
-- views that were dropped are forgotten first (their OIDs point nowhere and
-- they would otherwise keep triggers alive forever); then the notify triggers
-- are removed from those candidate tables that no registered view reads any
-- more. Only triggers that call mvrefresh.notify() are touched.
CREATE OR REPLACE FUNCTION mvrefresh.release_tables(candidates regclass[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    tbl regclass;
    trg name;
BEGIN
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

CREATE OR REPLACE FUNCTION mvrefresh.watch(
    view         regclass,
    debounce     interval DEFAULT '1 second',
    max_wait     interval DEFAULT '30 seconds',
    concurrently boolean  DEFAULT true)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    bases regclass[];
    stale regclass[];
    tbl   regclass;
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

    -- Serialize watch()/unwatch(): deciding which triggers are still needed
    -- must not race with another session registering a view on the same table.
    -- This mode still lets the daemon read the registry.
    LOCK TABLE mvrefresh.view IN SHARE ROW EXCLUSIVE MODE;

    bases := ARRAY(SELECT b FROM mvrefresh.base_tables(watch.view) AS b);
    stale := ARRAY(SELECT d.base FROM mvrefresh.dependency d
                   WHERE d.view = watch.view AND d.base <> ALL (bases));

    -- Re-watching retunes only; "enabled" stays whatever the user set.
    INSERT INTO mvrefresh.view AS v (view, debounce, max_wait, "concurrently")
    VALUES (watch.view, watch.debounce, watch.max_wait, watch.concurrently)
    -- By constraint name: in PL/pgSQL "(view)" would clash with the parameter.
    ON CONFLICT ON CONSTRAINT view_pkey DO UPDATE
        SET debounce = EXCLUDED.debounce,
            max_wait = EXCLUDED.max_wait,
            "concurrently" = EXCLUDED.concurrently;

    -- Replace the dependency rows by difference so unchanged rows stay put.
    DELETE FROM mvrefresh.dependency d
    WHERE d.view = watch.view AND d.base <> ALL (bases);
    INSERT INTO mvrefresh.dependency (view, base)
    SELECT watch.view, b FROM pg_catalog.unnest(bases) AS b
    ON CONFLICT DO NOTHING;

    INSERT INTO mvrefresh.refresh_state (view) VALUES (watch.view)
    ON CONFLICT DO NOTHING;

    -- No CREATE OR REPLACE TRIGGER before PostgreSQL 14: check, then create.
    -- bases is ordered by OID, so concurrent callers lock tables in one order.
    FOREACH tbl IN ARRAY bases LOOP
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

    PERFORM mvrefresh.release_tables(stale);

    IF pg_catalog.cardinality(bases) = 0 THEN
        RAISE WARNING '"%" reads no table that can carry a trigger', watch.view
            USING HINT = 'It is registered, but no change will ever notify the daemon.';
    END IF;
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
    stale regclass[];
BEGIN
    IF unwatch.view IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'view must not be NULL';
    END IF;

    -- Same serialization as watch().
    LOCK TABLE mvrefresh.view IN SHARE ROW EXCLUSIVE MODE;

    stale := ARRAY(SELECT d.base FROM mvrefresh.dependency d WHERE d.view = unwatch.view);

    -- dependency and refresh_state rows go with it (ON DELETE CASCADE).
    DELETE FROM mvrefresh.view v WHERE v.view = unwatch.view;
    IF NOT FOUND THEN
        RAISE NOTICE '"%" is not watched', unwatch.view;
    END IF;

    PERFORM mvrefresh.release_tables(stale);
END
$fn$;

COMMENT ON FUNCTION mvrefresh.unwatch(regclass) IS
    'Forget a watched view and drop notify triggers no remaining view needs';

--------------------------------------------------------------------------------
-- Daemon interface
--------------------------------------------------------------------------------

-- Everything the daemon needs to build its table -> views map, in one query.
-- Disabled views and views that no longer exist are left out so the daemon
-- never works on them; durations are converted to milliseconds here so the
-- daemon need not parse interval text.
CREATE OR REPLACE FUNCTION mvrefresh.registry()
RETURNS TABLE (view oid, name text, debounce_ms bigint, max_wait_ms bigint,
               concurrently boolean, base oid)
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT v.view::pg_catalog.oid,
           v.view::pg_catalog.text,
           pg_catalog.round(pg_catalog.date_part('epoch', v.debounce) * 1000)::pg_catalog.int8,
           pg_catalog.round(pg_catalog.date_part('epoch', v.max_wait) * 1000)::pg_catalog.int8,
           v.concurrently,
           b.oid
    FROM mvrefresh.view v
    JOIN pg_catalog.pg_class c ON c.oid = v.view AND c.relkind = 'm'
    LEFT JOIN (mvrefresh.dependency d
               JOIN pg_catalog.pg_class b ON b.oid = d.base)
      ON d.view = v.view
    WHERE v.enabled
    ORDER BY v.view::pg_catalog.oid, b.oid;
$fn$;

-- Called by the daemon right before a refresh. Returning no row means "do not
-- refresh": the view was dropped, is no longer a materialized view, or was
-- unwatched. The names come back separately so the daemon quotes them itself
-- (PQescapeIdentifier) instead of trusting a preformatted string.
CREATE OR REPLACE FUNCTION mvrefresh.refresh_begin(view oid, pending_since double precision)
RETURNS TABLE (nspname name, relname name, concurrent_ok boolean, reason text)
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH target AS (
        SELECT v.view, n.nspname, c.relname,
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
    SELECT t.nspname, t.relname, t.reason IS NULL, t.reason
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

-- DROP of a watched materialized view (or of a base table, which drops the
-- views on it with CASCADE) removes the registration at once, so the daemon
-- reloads its registry instead of failing on a view that no longer exists.
-- SECURITY DEFINER: whoever drops their own view need not have rights on the
-- mvrefresh tables. It never fails the user's DROP: errors become a WARNING
-- (the daemon also skips views that no longer exist).
CREATE OR REPLACE FUNCTION mvrefresh.on_sql_drop()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    dropped oid[];
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
    BEGIN
        DELETE FROM mvrefresh.dependency d WHERE d.base::pg_catalog.oid = ANY (dropped);
        DELETE FROM mvrefresh.view v WHERE v.view::pg_catalog.oid = ANY (dropped);
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
CREATE OR REPLACE VIEW mvrefresh.status AS
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
       pg_catalog.now() - s.pending_since AS staleness
FROM mvrefresh.view v
LEFT JOIN mvrefresh.refresh_state s ON s.view = v.view;

-- Anyone may look at the status; changing the registry stays with the owner
-- and whoever the owner grants it to.
GRANT USAGE ON SCHEMA mvrefresh TO PUBLIC;
GRANT SELECT ON mvrefresh.status TO PUBLIC;

COMMIT;
