-- Prepended to sql/mvrefresh.sql to make the extension scripts (see generate.sh).

\echo Use "CREATE EXTENSION mvrefresh" (or ALTER EXTENSION mvrefresh UPDATE) to load this file. \quit

-- One install path per database. A schema mvrefresh that the extension does not own was made
-- by psql -f mvrefresh.sql (or by hand): PostgreSQL would refuse to take its objects over
-- anyway (an extension script may not replace what it does not own), but with less to go on.
DO $ext$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n
               WHERE n.nspname = 'mvrefresh'
                 AND NOT EXISTS (
                     SELECT 1 FROM pg_catalog.pg_depend d
                     JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
                     WHERE d.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
                       AND d.objid = n.oid
                       AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                       AND e.extname = 'mvrefresh'
                       AND d.deptype = 'e')) THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = 'schema mvrefresh already exists and does not belong to extension mvrefresh',
            DETAIL = 'mvrefresh was installed in this database with psql -f mvrefresh.sql (or the schema was made by hand). A database is installed and upgraded one way only.',
            HINT = 'Keep upgrading it with psql -f mvrefresh.sql. To switch to the extension: unwatch every view, DROP SCHEMA mvrefresh CASCADE, CREATE EXTENSION mvrefresh, and watch the views again.';
    END IF;
END
$ext$;

-- sql/mvrefresh.sql follows, without its BEGIN and COMMIT: CREATE EXTENSION and ALTER
-- EXTENSION UPDATE run the script in their own transaction.
