"""Joins h18b's 0011 (splits, tokenizers) and main's 0013 (hint confirmation): both follow 0010."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("curation", "0011_splits_tokenizers"),
        ("curation", "0013_hint_confirmation"),
    ]

    operations = []
