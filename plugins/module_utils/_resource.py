# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one state machine every resource module runs: find, plan, apply, report.

A resource module (``network``, ``port``, ``router`` ...) subclasses
:class:`ResourceModule` and says:

- which options are the resource's attributes, split into ``updatable`` (a
  task may change them on an existing resource) and ``create_only`` (fixed
  once the resource exists; a task that gives another value fails before
  anything changes);
- :meth:`ResourceModule.find`: the current attributes, or None;
- :meth:`ResourceModule.plan_present` / :meth:`ResourceModule.plan_absent`:
  a :class:`Plan`, computed by pure functions in the resource's module_utils
  (tested by tables of current state + task -> steps and result).

Only the attributes a task gives are compared (as openstack.cloud's
``StateMachine`` does): a left-out option keeps the resource's value, and a
new resource takes the module's ``defaults``. Argument specs therefore give
updatable attributes no default (``None`` means "not given").

A plan is a list of typed :class:`Step` objects. Applying them goes through the
command runner's gate, so check mode runs nothing and returns the steps as
``commands``; ``changed`` is whether the plan has any step.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError
from ansible_collections.nimbus.cloud.plugins.module_utils._files import Records, atomic_write, remove, remove_tree


# --- steps ------------------------------------------------------------------------

class Step:
    """One change. ``describe()`` is what check mode reports; ``apply(runner)`` makes it."""

    def describe(self):
        raise NotImplementedError

    def apply(self, runner):
        raise NotImplementedError

    def __repr__(self):
        return "<%s %s>" % (type(self).__name__, self.describe())


@dataclass(frozen=True, repr=False, init=False)
class Command(Step):
    """A command that changes the host; ``data`` goes to its standard input."""

    argv: tuple
    data: str | None = None
    check_rc: bool = True

    def __init__(self, argv, data=None, check_rc=True):
        object.__setattr__(self, "argv", tuple(str(a) for a in argv))
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "check_rc", check_rc)

    def describe(self):
        return " ".join(self.argv)

    def apply(self, runner):
        return runner.change(list(self.argv), check_rc=self.check_rc, data=self.data)


@dataclass(frozen=True, repr=False)
class WriteFile(Step):
    path: str
    text: str
    mode: int = 0o644

    def describe(self):
        return "write %s" % self.path

    def apply(self, runner):
        return runner.apply(self.describe(), atomic_write, self.path, self.text, self.mode)


@dataclass(frozen=True, repr=False)
class RemoveFile(Step):
    path: str

    def describe(self):
        return "remove %s" % self.path

    def apply(self, runner):
        return runner.apply(self.describe(), remove, self.path)


@dataclass(frozen=True, repr=False)
class RemoveTree(Step):
    path: str

    def describe(self):
        return "remove %s" % self.path

    def apply(self, runner):
        return runner.apply(self.describe(), remove_tree, self.path)


@dataclass(frozen=True, repr=False)
class WriteRecord(Step):
    """Store a resource's record (see :class:`Records`)."""

    records: Records
    name: str
    data: dict

    def describe(self):
        return "write %s" % self.records.path(self.name)

    def apply(self, runner):
        return runner.apply(self.describe(), self.records.write, self.name, self.data)


@dataclass(frozen=True, repr=False)
class RemoveRecord(Step):
    records: Records
    name: str

    def describe(self):
        return "remove %s" % self.records.path(self.name)

    def apply(self, runner):
        return runner.apply(self.describe(), self.records.remove, self.name)


@dataclass(frozen=True, repr=False)
class Call(Step):
    """A change that is neither a command nor a file (a library call); ``func`` runs only for real."""

    description: str
    func: object
    args: tuple = ()

    def describe(self):
        return self.description

    def apply(self, runner):
        return runner.apply(self.description, self.func, *self.args)


def describe(steps):
    """Steps as check mode reports them (and as planner tables expect them)."""
    return [s.describe() for s in steps]


def apply_steps(runner, steps):
    for step in steps:
        step.apply(runner)


# --- plans ------------------------------------------------------------------------

@dataclass
class Plan:
    """What a task does: the steps, and the resource's view before and after them (no secrets)."""

    steps: list = field(default_factory=list)
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)

    @property
    def changed(self):
        return bool(self.steps)


def given(params, attributes):
    """The attributes a task set (None means left out)."""
    return {k: params[k] for k in attributes if params.get(k) is not None}


def desired(kind, name, current, task, create_only=(), defaults=None):
    """Attributes after the task: the current ones with the given ones over them, or defaults for a new resource.

    A create-only attribute the task gives with another value is an error (raised before anything changes).
    """
    if current is None:
        merged = dict(defaults or {})
        merged.update(task)
        return merged
    fixed = ["%s %r -> %r" % (k, current.get(k), task[k]) for k in create_only
             if k in task and task[k] != current.get(k)]
    if fixed:
        raise ValidationError("%s %s: %s cannot change; delete and recreate the %s"
                              % (kind, name, ", ".join(fixed), kind))
    merged = dict(current)
    merged.update(task)
    return merged


# --- the module base ------------------------------------------------------------

class ResourceModule(NimbusModule):
    """A module that keeps one resource in a state: find -> plan -> apply -> report."""

    #: key of the result that holds the resource's view
    resource = None
    #: the kind, as errors name it
    kind = None
    #: options a task may change on an existing resource
    updatable = ()
    #: options fixed once the resource exists
    create_only = ()
    #: values a new resource takes for attributes the task leaves out
    defaults = {}

    def session(self):
        """A context held across find, plan and apply (a lock on shared records); none by default."""
        return contextlib.nullcontext()

    def find(self):
        """The resource as it is, or None."""
        raise NotImplementedError

    def task(self):
        """The attributes this task sets (normalised where order does not matter)."""
        return given(self.params, tuple(self.updatable) + tuple(self.create_only))

    def desired(self, current_attributes):
        return desired(self.kind, self.params.get("name"), current_attributes, self.task(),
                       create_only=self.create_only, defaults=self.defaults)

    def plan_present(self, current):
        raise NotImplementedError

    def plan_absent(self, current):
        raise NotImplementedError

    def run(self):
        self.prepare()
        with self.session():
            current = self.find()
            if self.params.get("state", "present") == "absent":
                plan = self.plan_absent(current) if current is not None else Plan()
            else:
                plan = self.plan_present(current)
            self.apply(plan)
        self.changed = plan.changed
        self.set_diff(plan.before, plan.after)
        return {self.resource: plan.after}

    def apply(self, plan):
        """Make the plan's steps through the runner's gate; a module may wrap them (to undo a half-made plan)."""
        apply_steps(self.runner, plan.steps)

    def prepare(self):
        """Checks before anything is read (missing libraries, name rules)."""
