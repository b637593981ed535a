# Run by tgt.service (python3 tgt_restore.py) once tgtd is up (the volumes role's drop-in): tgtd keeps its targets in memory only, so the
# attachments the volume records hold are exported again, through the collection's tgtd client installed beside
# this script.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import nimbus_tgt  # noqa: E402

print("exported %d volume(s) again" % nimbus_tgt.restore())
