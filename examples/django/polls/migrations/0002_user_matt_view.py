"""The materialized view, its unique index, and its registration with mvrefresh.

Needs the mvrefresh SQL installed in the database first (psql -f mvrefresh.sql, once, as a
superuser). Reversible: unwatch, then drop.
"""
from django.db import migrations

CREATE = """
CREATE MATERIALIZED VIEW polls_user_matt_view AS
    SELECT id, name, age, phone_num FROM polls_user WHERE age >= 25;
CREATE UNIQUE INDEX polls_user_matt_view_id ON polls_user_matt_view (id);
SELECT mvrefresh.watch('polls_user_matt_view', debounce => '200 ms', max_wait => '5 s');
"""

DROP = """
SELECT mvrefresh.unwatch('polls_user_matt_view');
DROP MATERIALIZED VIEW polls_user_matt_view;
"""


class Migration(migrations.Migration):
    dependencies = [("polls", "0001_initial")]

    operations = [migrations.RunSQL(CREATE, reverse_sql=DROP)]
