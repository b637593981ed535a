"""Masking secrets in what a job prints and records.

A secret rarely appears only as itself: Ansible and ansible-runner print values JSON-encoded (quotes and
backslashes escaped, non-ASCII as ``\\u00e9``), sometimes JSON inside JSON, Python's repr, YAML's
double-quoted style (``\\xE9``), and a multi-line secret (a key file) one line at a time. Text is searched
for every one of those forms of every secret; structured data is walked and each string masked on its own,
so no encoding of the whole can split a secret.
"""

from __future__ import annotations

import json

import yaml

MASK = "********"
# A line of a multi-line secret is masked on its own when at least this long; shorter ones say too little.
MIN_LINE = 4


def _quoted_forms(value: str) -> set[str]:
    forms = {value}
    for ensure_ascii in (True, False):
        once = json.dumps(value, ensure_ascii=ensure_ascii)[1:-1]
        forms.add(once)
        forms.add(json.dumps(once, ensure_ascii=ensure_ascii)[1:-1])
    forms.add(repr(value)[1:-1])
    forms.add(ascii(value)[1:-1])
    for allow_unicode in (True, False):
        dumped = yaml.safe_dump(value, default_style='"', allow_unicode=allow_unicode, width=2 ** 31)
        forms.add(dumped.strip().removesuffix("...").strip()[1:-1])
    return {f for f in forms if f}


class Masker:
    def __init__(self, secrets):
        needles: set[str] = set()
        for secret in secrets:
            if not isinstance(secret, str) or not secret:
                continue
            needles |= _quoted_forms(secret)
            lines = secret.splitlines()
            if len(lines) > 1:
                for line in lines:
                    if len(line.strip()) >= MIN_LINE:
                        needles |= _quoted_forms(line.strip())
        # Longest first, so a secret is masked whole before any line or shorter secret inside it.
        self.needles = sorted(needles, key=len, reverse=True)

    def __bool__(self):
        return bool(self.needles)

    def text(self, text: str) -> str:
        for needle in self.needles:
            if needle in text:
                text = text.replace(needle, MASK)
        return text

    def data(self, value):
        """``value`` with every string (keys included) masked, at any depth."""
        if not self.needles:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.data(k) if isinstance(k, str) else k: self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        return value
