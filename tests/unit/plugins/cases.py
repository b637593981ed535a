"""Table-driven cases (the community.general style): a YAML list of dicts, each with an ``id``.

A planner test reads its table with :func:`params` and parametrizes over it::

    @pytest.mark.parametrize("case", cases.params(__file__, "network_plan.yaml"))
    def test_plan(case): ...
"""

import os

import pytest
import yaml


def load(test_file, name):
    """The cases in ``name``, a YAML file in the ``data`` directory beside ``test_file``."""
    path = os.path.join(os.path.dirname(os.path.abspath(test_file)), "data", name)
    with open(path) as f:
        cases = yaml.safe_load(f)
    ids = [c["id"] for c in cases]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ValueError("%s: duplicated case ids %s" % (path, ", ".join(duplicated)))
    return cases


def params(test_file, name):
    return [pytest.param(case, id=case["id"]) for case in load(test_file, name)]
