"""Diagnostic only: infra/emulator.py without moto's whole-table copy in TransactWriteItems.

`parley-send-bench --emulator no-tx-backup` starts this instead of infra/emulator.py, to show
what the send pipeline does when the emulator's transactions cost what its other requests do.

moto 5.2.5 deep-copies every table a transaction touches (all items and, with a stream, every
stream record) before applying it, to roll back on failure: a transaction's cost grows with the
table. Here that copy is skipped, so a cancelled transaction would NOT be rolled back; each one
is reported on stderr. The bench's transactions (create_outbound without an idempotency key,
record_submitted) never fail their conditions, and the bench checks every message afterwards.
Everything else is infra/emulator.py unchanged (DynamoDB requests still run one at a time).

Usage: python infra/send-bench/emulator_no_tx_backup.py -H 127.0.0.1 -p 4566
"""

import copy
import os
import sys
import types

import moto.dynamodb.models as models

_deepcopy = copy.deepcopy


def _deepcopy_except_tables(value, memo=None):
    if isinstance(value, models.Table):
        return value
    return _deepcopy(value, memo)


# Only the name `copy` inside moto.dynamodb.models changes; the copy module itself does not.
models.copy = types.SimpleNamespace(**{**vars(copy), "deepcopy": _deepcopy_except_tables})

_transact = models.DynamoDBBackend.transact_write_items


def _reported_transact(self, transact_items):
    try:
        return _transact(self, transact_items)
    except Exception as error:
        print(f"no-tx-backup: a transaction failed and was NOT rolled back: {error!r}",
              file=sys.stderr, flush=True)
        raise


models.DynamoDBBackend.transact_write_items = _reported_transact

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import emulator  # noqa: E402  (infra/emulator.py)

if __name__ == "__main__":
    emulator.main()
