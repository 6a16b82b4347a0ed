from django.db import models


class User(models.Model):
    name = models.CharField(max_length=10)
    age = models.PositiveSmallIntegerField()
    phone_num = models.CharField(max_length=10)


class UserMaterializedView(models.Model):
    """The users aged 25 and over, read from the materialized view polls_user_matt_view.

    Django does not manage the view (managed = False): migration 0002 creates it, with the
    unique index that REFRESH ... CONCURRENTLY needs, and hands it to mvrefresh, which
    refreshes it whenever polls_user changes. No scheduler, no task queue.
    """

    id = models.BigIntegerField(primary_key=True)
    name = models.CharField(max_length=10)
    age = models.PositiveSmallIntegerField()
    phone_num = models.CharField(max_length=10)

    class Meta:
        managed = False
        db_table = "polls_user_matt_view"
