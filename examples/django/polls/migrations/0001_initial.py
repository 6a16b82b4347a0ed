from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="User",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                           verbose_name="ID")),
                ("name", models.CharField(max_length=10)),
                ("age", models.PositiveSmallIntegerField()),
                ("phone_num", models.CharField(max_length=10)),
            ],
        ),
        migrations.CreateModel(
            name="UserMaterializedView",
            fields=[
                ("id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("name", models.CharField(max_length=10)),
                ("age", models.PositiveSmallIntegerField()),
                ("phone_num", models.CharField(max_length=10)),
            ],
            options={"managed": False, "db_table": "polls_user_matt_view"},
        ),
    ]
