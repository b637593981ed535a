"""The tests' broker is kombu's filesystem transport, whose sender writes a message file in place: a worker
polling the folder can take the file before its content is written, read nothing and die on the JSON error
(celery/kombu#1551). Tests only: a message is written under a name no queue reads, then renamed into place,
which is atomic on one filesystem. Production brokers (RabbitMQ) are not touched by this."""

from __future__ import annotations

import os
import uuid

from kombu.transport import filesystem


def _put(self, queue, payload, **kwargs):
    final = os.path.join(self.data_folder_out, "%d_%s.%s.msg" % (
        int(round(filesystem.monotonic() * 1000)), uuid.uuid4(), queue))
    # The reader takes names of the form <stamp>_<uuid>.<queue>.msg: this one has no dot.
    partial = os.path.join(self.data_folder_out, "partial-%s" % uuid.uuid4().hex)
    try:
        with open(partial, "wb") as f:
            f.write(filesystem.str_to_bytes(filesystem.dumps(payload)))
        os.replace(partial, final)
    except OSError as exc:
        raise filesystem.ChannelError("Cannot add file %r to directory" % final) from exc


def install():
    filesystem.Channel._put = _put


if __name__ == "__main__":
    # A worker process of the tests: `python atomic_filesystem_broker.py worker ...` is `nimbus-api worker ...`
    # with this sender.
    import sys

    from nimbus_api.cli import server_main

    install()
    sys.exit(server_main())
