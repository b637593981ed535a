"""Credential types and what a job gets from a credential (AWX's model).

The cloud admin defines a credential type: its fields, and injectors that name where each field goes, as
an environment variable of ansible-playbook or as an extra variable. Project members only fill in values.
Injectors hold names, never templates, and every name is checked when the type is saved:

- environment variables match ``ENV_NAME`` and are none of the variables that change how a program finds
  or loads code, where it writes, or how Ansible behaves (``DENIED_ENV_PREFIXES`` / ``DENIED_ENV``):
  ``PYTHONWARNINGS`` + ``BROWSER`` runs a program, ``ANSIBLE_LOG_PATH`` writes a file, ``LD_PRELOAD``
  loads a library;
- extra variables follow the launch variables' rules (variables.py) and reach Ansible unsafe.
"""

from __future__ import annotations

import json
import re

from nimbus_api.variables import name_problem

ENV_NAME = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")
FIELD_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
DENIED_ENV_PREFIXES = (
    "ANSIBLE_", "PYTHON", "PIP_", "VIRTUAL_ENV", "LD_", "DYLD_", "GCONV", "NIMBUS_", "RUNNER_", "AWX_",
    "GIT_", "SSH_", "GPG", "PERL", "RUBY", "NODE_", "NPM_", "JAVA_", "JDK_", "_JAVA", "CLASSPATH", "GEM_",
    "BASH_", "LC_", "LANG", "TERM", "XDG_", "DBUS_", "SYSTEMD_", "LISTEN_", "NOTIFY_", "INVOCATION_",
    "CELERY", "KOMBU", "SSL_", "REQUESTS_CA", "CURL_CA", "OPENSSL", "MALLOC", "GLIBC", "KRB5", "TZ",
)
DENIED_ENV = frozenset("""
PATH HOME USER LOGNAME SHELL ENV BROWSER EDITOR VISUAL PAGER MANPAGER LESS LESSOPEN LESSCLOSE IFS PS1 PS2
PS4 PROMPT_COMMAND CDPATH TMPDIR TMP TEMP HOSTALIASES RESOLV_HOST_CONF LOCALDOMAIN RES_OPTIONS NLSPATH
HTTP_PROXY HTTPS_PROXY ALL_PROXY NO_PROXY FTP_PROXY DISPLAY XAUTHORITY MAIL SUDO_ASKPASS SSH_ASKPASS
KUBECONFIG DOCKER_HOST CONTAINER_HOST OPENSSL_CONF OPENSSL_ENGINES TERMINFO EXINIT VIMINIT MYVIMRC
""".split())
MAX_FIELDS = 32
MAX_VALUE = 65536


class CredentialError(ValueError):
    """A credential type or credential that may not be saved; the message says what and why."""


def env_name_problem(name) -> str | None:
    """Why a credential may not set the environment variable ``name``, or None."""
    if not isinstance(name, str) or not ENV_NAME.match(name) or len(name) > 64:
        return "is not an upper-case environment variable name (A-Z, 0-9, single underscores)"
    upper = name.upper()
    if upper in DENIED_ENV or upper.startswith(DENIED_ENV_PREFIXES) or "PROXY" in upper:
        return "may change how programs run or load code, so a credential may not set it"
    return None


def check_type(fields, injectors) -> tuple[list[dict], dict]:
    """Normalise and check a credential type's fields and injectors; raises CredentialError."""
    if not isinstance(fields, list) or not 0 < len(fields) <= MAX_FIELDS:
        raise CredentialError("fields: a list of 1 to %d fields" % MAX_FIELDS)
    normal, ids = [], set()
    for index, field in enumerate(fields):
        if not isinstance(field, dict) or not isinstance(field.get("id"), str) or not FIELD_ID.match(field["id"]):
            raise CredentialError("fields[%d].id: an identifier (a letter, then letters, digits or _)" % index)
        if field["id"] in ids:
            raise CredentialError("fields[%d].id: %s is given twice" % (index, field["id"]))
        unknown = set(field) - {"id", "label", "secret", "required", "help_text"}
        if unknown:
            raise CredentialError("fields[%d]: unknown keys %s" % (index, ", ".join(sorted(unknown))))
        ids.add(field["id"])
        normal.append({"id": field["id"], "label": str(field.get("label") or field["id"])[:128],
                       "secret": bool(field.get("secret", True)), "required": bool(field.get("required", True)),
                       "help_text": str(field.get("help_text") or "")[:512]})
    if not isinstance(injectors, dict) or set(injectors) - {"env", "extra_vars"}:
        raise CredentialError("injectors: an object with 'env' and/or 'extra_vars'")
    env, extra_vars = injectors.get("env") or {}, injectors.get("extra_vars") or {}
    if not isinstance(env, dict) or not isinstance(extra_vars, dict) or not (env or extra_vars):
        raise CredentialError("injectors: env and extra_vars map names to field ids; give at least one")
    for kind, names, problem_of in (("env", env, env_name_problem), ("extra_vars", extra_vars, name_problem)):
        for name, field in names.items():
            problem = problem_of(name)
            if problem:
                raise CredentialError("injectors.%s: %r %s" % (kind, name, problem))
            if field not in ids:
                raise CredentialError("injectors.%s.%s: %r is not a field of this type" % (kind, name, field))
    return normal, {"env": dict(env), "extra_vars": dict(extra_vars)}


def check_inputs(fields: list[dict], inputs) -> dict:
    """A credential's values for its type's fields: strings, no unknown field, every required one given."""
    if not isinstance(inputs, dict):
        raise CredentialError("inputs: an object of field id -> value")
    ids = {f["id"] for f in fields}
    unknown = sorted(str(k) for k in set(inputs) - ids)
    if unknown:
        raise CredentialError("inputs: %s not fields of this credential type" % ", ".join(unknown[:10]))
    missing = [f["id"] for f in fields if f["required"] and not inputs.get(f["id"])]
    if missing:
        raise CredentialError("inputs: %s required" % ", ".join(missing))
    for key, value in inputs.items():
        if not isinstance(value, str) or "\x00" in value or len(value) > MAX_VALUE:
            raise CredentialError("inputs.%s: a string of at most %d characters without NUL" % (key, MAX_VALUE))
    return dict(inputs)


def injections(fields_json: str, injectors_json: str, values: dict) -> tuple[dict, dict, list[str]]:
    """(environment, extra vars, secret values) a job gets from one credential.

    Names are checked again here, not only when the type was saved: a row written past the API (or by an
    older version) still cannot set a denied variable.
    """
    fields = {f["id"]: f for f in json.loads(fields_json)}
    injectors = json.loads(injectors_json)
    env = {name: values[field] for name, field in (injectors.get("env") or {}).items()
           if field in values and env_name_problem(name) is None}
    extra = {name: values[field] for name, field in (injectors.get("extra_vars") or {}).items()
             if field in values and name_problem(name) is None}
    # Every value is masked, secret or not: a value marked non-secret is still nobody else's business.
    secrets = [v for k, v in values.items() if isinstance(v, str) and k in fields]
    return env, extra, secrets
