# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Every bare-metal module reaches a machine's BMC the same way (module_utils/_ipmi.py).
    DOCUMENTATION = r"""
options:
  bmc:
    description:
      - The machine's BMC, reached over IPMI 2.0 (RMCP+, UDP) from the host the task runs on. One session is
        opened for the task and closed at its end.
    type: dict
    required: true
    suboptions:
      address:
        description: The BMC's IP address or host name.
        type: str
        required: true
      port:
        description: The BMC's UDP port.
        type: int
        default: 623
      username:
        description: The BMC user (1-16 printable ASCII characters).
        type: str
        required: true
      password:
        description:
          - The BMC user's password (1-20 printable ASCII characters, IPMI 2.0's limit). Never logged, returned
            or shown in an error.
        type: str
        required: true
      privilege:
        description: The session's privilege level; power and boot requests need V(operator) or above.
        type: str
        choices: [user, operator, administrator]
        default: administrator
      allow_insecure:
        description:
          - Accept a BMC that offers IPMI 1.5 only, or a session without authentication or integrity (cipher
            suite 0). Either lets anyone on the BMC's network act as the BMC or read what is sent; refused by
            default.
          - pyghmi's client cannot complete either kind of login on Python 3; with this set, the error says so
            instead of refusing.
        type: bool
        default: false
      timeout:
        description:
          - Seconds a login may take, retries included; a BMC that stops answering during the login (as BMCs
            do for an unknown user name) fails the task then.
        type: int
        default: 20
      retries:
        description:
          - Logins tried again after one that got no answer. A refused user name or password is never tried
            again (BMCs lock accounts out).
        type: int
        default: 2
      retry_interval:
        description: Seconds at least between two login attempts to the BMC.
        type: float
        default: 2.0
requirements:
  - pyghmi (Debian's C(python3-pyghmi)) on the host the task runs on
"""
