"""Re-encrypt every encrypted column under the first key of FIELD_ENCRYPTION_KEYS.

Rotation: put the new key first in FIELD_ENCRYPTION_KEYS (keep the old one after
it), deploy, run this command, then remove the old key.
"""
from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import connection, transaction

from voiceplatform.crypto import ENCRYPTED_FIELD_TYPES, PREFIX, rotate


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args: Any, **options: Any) -> None:
        total = 0
        for model in apps.get_models():
            fields = [f for f in model._meta.concrete_fields if isinstance(f, ENCRYPTED_FIELD_TYPES)]
            if not fields:
                continue
            table = connection.ops.quote_name(model._meta.db_table)
            pk = connection.ops.quote_name(model._meta.pk.column)
            for field in fields:
                column = connection.ops.quote_name(field.column)
                rotated = 0
                # Raw SQL: rotate ciphertext to ciphertext, plaintext never materialises in Python objects.
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute(f"SELECT {pk}, {column} FROM {table} WHERE {column} LIKE %s FOR UPDATE",
                                   [PREFIX + "%"])
                    for row_id, stored in cursor.fetchall():
                        cursor.execute(f"UPDATE {table} SET {column} = %s WHERE {pk} = %s", [rotate(stored), row_id])
                        rotated += 1
                total += rotated
                self.stdout.write(f"{model._meta.label}.{field.name}: {rotated} rows re-encrypted")
        self.stdout.write(self.style.SUCCESS(f"done: {total} values re-encrypted under the current key"))
