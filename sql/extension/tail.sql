
-- Appended to sql/mvrefresh.sql to make the extension scripts (see generate.sh).

-- pg_dump leaves out the contents of an extension's tables unless told otherwise. The
-- registrations, their dependencies and their refresh history are the user's data; markers,
-- the backstop's fingerprints and heartbeats name table OIDs and processes of this cluster
-- only, and the daemon rebuilds them.
SELECT pg_catalog.pg_extension_config_dump('mvrefresh.view', '');
SELECT pg_catalog.pg_extension_config_dump('mvrefresh.dependency', '');
SELECT pg_catalog.pg_extension_config_dump('mvrefresh.refresh_state', '');

-- Whatever this script made for watched tables (ALTER EXTENSION UPDATE re-syncs them, and may
-- create a table's generation sequence) belongs to the registration, like what watch() makes
-- at run time, not to the extension: unwatch() must be able to drop it, and pg_dump to keep it
-- beside the triggers that name it.
DO $ext$
DECLARE
    seq regclass;
BEGIN
    FOR seq IN
        SELECT c.oid::pg_catalog.regclass
        FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_depend d
          ON d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid
         AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e'
        JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid AND e.extname = 'mvrefresh'
        WHERE c.relnamespace = 'mvrefresh'::pg_catalog.regnamespace
          AND c.relkind = 'S' AND c.relname LIKE 'gen\_%'
    LOOP
        EXECUTE pg_catalog.format('ALTER EXTENSION mvrefresh DROP SEQUENCE %s', seq);
    END LOOP;
END
$ext$;
