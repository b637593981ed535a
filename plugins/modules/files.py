#!/usr/bin/python
# Copyright: nimbus.cloud contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: files
short_description: Several files and directories of a host in one task, each changed only where it differs
version_added: 0.1.0
description:
  - Declares a list of files (with their content), directories and absent paths, compares each with the host and
    changes only what differs (content, mode, owner, group). One task and one round trip to the host, where a loop
    of M(ansible.builtin.template), M(ansible.builtin.copy) or M(ansible.builtin.file) tasks costs two or three
    module runs per item on every converge.
  - Every entry is checked before anything changes (paths, modes, owners, parents, what is in the way), so bad
    input leaves the host as it was.
  - Files are written to a sibling with their final mode and owner, then renamed into place, so a reader never sees
    half a file or new content with looser permissions; a symbolic link at a file's path is replaced, never followed.
  - Content is text given by the task; render templates with P(ansible.builtin.template#lookup).
author:
  - nimbus.cloud contributors (@nimbus-cloud)
extends_documentation_fragment:
  - nimbus.cloud.attributes
options:
  files:
    description: The paths, applied in order (a directory before the files in it).
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute, normalised path.
        type: str
        required: true
      state:
        description:
          - V(file) a regular file with O(files[].content) (its directory must exist or come from an earlier entry);
            V(directory) a directory, with the missing directories above it (given its mode and owner, as
            M(ansible.builtin.file) does); V(absent) nothing at the path (a directory is removed only when empty).
        type: str
        choices: [file, directory, absent]
        default: file
      content:
        description: Content of the file (with O(files[].state=file), where it is required).
        type: str
      mode:
        description:
          - Octal permissions as a string, such as V('0644'). Required with O(files[].state=file) and
            O(files[].state=directory); integers are refused, since YAML reads C(0644) as 420.
        type: raw
      owner:
        description: User owning the path; defaults to O(owner).
        type: str
      group:
        description: Group owning the path; defaults to O(group).
        type: str
  owner:
    description: User owning every entry that names none; when neither names one, an existing path keeps its owner.
    type: str
  group:
    description: Group of every entry that names none; when neither names one, an existing path keeps its group.
    type: str
notes:
  - Files holding secrets belong in a task of their own with C(no_log) and C(diff) off, since the task's arguments
    and diff carry the content.
  - The diff is one entry per changed path (content, then kind, mode and owner).
seealso:
  - module: ansible.builtin.template
  - module: ansible.builtin.copy
  - module: ansible.builtin.file
"""

EXAMPLES = r"""
- name: Install the service's directories, units and wrappers
  nimbus.cloud.files:
    owner: root
    group: root
    files:
      - path: /opt/nimbus-api/bin
        state: directory
        mode: "0755"
      - path: /opt/nimbus-api/bin/nimbus-api
        content: "{{ lookup('ansible.builtin.template', 'nimbus-api.j2') }}"
        mode: "0755"
      - path: /etc/systemd/system/nimbus-api.service
        content: "{{ lookup('ansible.builtin.template', 'nimbus-api.service.j2') }}"
        mode: "0644"
      - path: /etc/systemd/system/nimbus-old.service
        state: absent
  register: installed
  notify: Restart the API service

- name: Reload systemd only for a changed unit
  ansible.builtin.systemd_service:
    daemon_reload: true
  when: installed.changed_paths | select('match', '/etc/systemd/') | list | length > 0
"""

RETURN = r"""
files:
  description: Every entry, in order, with what was (or in check mode would be) done to it.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The path.
      type: str
    state:
      description: The declared state.
      type: str
    changed:
      description: Whether anything changed at the path.
      type: bool
    steps:
      description: What changed, among C(create), C(write), C(chmod), C(chown) and C(remove).
      type: list
      elements: str
    parents:
      description: The directories above a directory that were (or would be) created for it, outermost first.
      type: list
      elements: str
  sample:
    - {path: /etc/systemd/system/nimbus-api.service, state: file, changed: true, steps: [write], parents: []}
changed_paths:
  description: The paths that changed (or in check mode would change).
  returned: always
  type: list
  elements: str
  sample: [/etc/systemd/system/nimbus-api.service]
commands:
  description: What a real run would do.
  returned: in check mode
  type: list
  elements: str
  sample:
    - write /etc/systemd/system/nimbus-api.service
"""

import os

from ansible_collections.nimbus.cloud.plugins.module_utils import _files as hf
from ansible_collections.nimbus.cloud.plugins.module_utils._base import NimbusModule
from ansible_collections.nimbus.cloud.plugins.module_utils._errors import ValidationError

# A uid or gid check mode cannot resolve yet (a user an earlier task creates): a change, never a match.
NOT_YET = -2


class FilesModule(NimbusModule):
    argument_spec = dict(
        files=dict(type="list", elements="dict", required=True, options=dict(
            path=dict(type="str", required=True),
            state=dict(type="str", choices=list(hf.FILE_STATES), default="file"),
            content=dict(type="str"),
            # raw, so that an integer (YAML's reading of 0644) is refused rather than turned into "420".
            mode=dict(type="raw"),
            owner=dict(type="str"),
            group=dict(type="str"),
        )),
        owner=dict(type="str"),
        group=dict(type="str"),
    )

    def run(self):
        declared = [self._declared(entry) for entry in self.params["files"]]
        _refuse_duplicates(declared)
        plans = self._plan(declared)
        results, diffs = [], []
        for entry, found, uid, gid, steps, parents in plans:
            for parent in parents:
                # As mkdir -p and ansible.builtin.file do: the directories above get the entry's mode and owner.
                self.runner.apply("create " + parent, hf.make_directory, parent, entry.mode, uid, gid)
            if steps:
                self._apply(entry, found, uid, gid, steps)
                diffs.extend(_diff(entry, found, steps))
            results.append({"path": entry.path, "state": entry.state, "changed": bool(steps), "steps": steps,
                            "parents": parents})
        changed_paths = [r["path"] for r in results if r["changed"]]
        self.changed = bool(changed_paths)
        self.set_diffs(diffs)
        return {"files": results, "changed_paths": changed_paths}

    def _declared(self, entry):
        path = entry["path"]
        try:
            hf.check_path(path)
            mode = None if entry["mode"] is None else hf.parse_mode(entry["mode"], path)
        except ValueError as e:
            raise ValidationError(str(e))
        state = entry["state"]
        if state == "file" and entry["content"] is None:
            raise ValidationError("%s: a file needs content" % path)
        if state != "file" and entry["content"] is not None:
            raise ValidationError("%s: content is only for state=file" % path)
        if state != "absent" and mode is None:
            raise ValidationError("%s: mode is required (an octal string such as '0644')" % path)
        content = None if entry["content"] is None else entry["content"].encode("utf-8")
        return hf.DeclaredFile(path, state, content, mode,
                               entry["owner"] if entry["owner"] is not None else self.params["owner"],
                               entry["group"] if entry["group"] is not None else self.params["group"])

    def _plan(self, declared):
        """Inspect and check every entry before anything changes."""
        made_directories, plans = set(), []
        for entry in declared:
            found = hf.find(entry.path)
            _refuse_what_is_in_the_way(entry, found)
            parents = _missing_parents(entry.path, made_directories) if entry.state != "absent" else []
            if parents and entry.state != "directory":
                raise ValidationError("%s: the directory %s does not exist (declare it before the path)"
                                      % (entry.path, os.path.dirname(entry.path)))
            uid, gid = self._ids(entry)
            steps = hf.file_steps(entry, found, uid, gid)
            if entry.state == "directory" and "create" in steps:
                made_directories.update(parents + [entry.path])
            plans.append((entry, found, uid, gid, steps, parents))
        return plans

    def _ids(self, entry):
        try:
            return hf.lookup_ids(entry.owner, entry.group)
        except KeyError as e:
            if not self.check_mode:
                raise ValidationError("%s: %s" % (entry.path, e.args[0]))
        # Check mode: the user or group may come from an earlier task that did not run.
        uid = NOT_YET if entry.owner is not None else -1
        gid = NOT_YET if entry.group is not None else -1
        return uid, gid

    def _apply(self, entry, found, uid, gid, steps):
        path, mode = entry.path, entry.mode
        description = "%s %s" % ("/".join(steps), path)
        if "remove" in steps:
            self.runner.apply(description, hf.remove_path, path, found.kind)
        elif entry.state == "directory" and "create" in steps:
            self.runner.apply(description, hf.make_directory, path, mode, uid, gid)
        elif entry.state == "file" and ("create" in steps or "write" in steps):
            self.runner.apply(description, hf.replace_file, path, entry.content, mode, uid, gid)
        else:
            self.runner.apply(description, _set_attributes, path, mode if "chmod" in steps else None,
                              uid if "chown" in steps else -1, gid if "chown" in steps else -1)


def _set_attributes(path, mode, uid, gid):
    # Through a descriptor opened without following links: a link swapped in
    # since the path was inspected is refused (ELOOP), never chmod'ed through.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if uid != -1 or gid != -1:
            os.fchown(fd, uid, gid)
        if mode is not None:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)


def _missing_parents(path, made_directories):
    """The directories above ``path`` that neither exist nor come from an earlier entry, outermost first."""
    missing = []
    parent = os.path.dirname(path)
    while parent not in made_directories and not os.path.isdir(parent):
        if os.path.lexists(parent):
            raise ValidationError("%s: %s is in the way of the directory above it" % (path, parent))
        missing.insert(0, parent)
        parent = os.path.dirname(parent)
    return missing


def _refuse_duplicates(declared):
    seen = set()
    for entry in declared:
        if entry.path in seen:
            raise ValidationError("%s is declared twice" % entry.path)
        seen.add(entry.path)


def _refuse_what_is_in_the_way(entry, found):
    # A file or link may be replaced by a file; nothing else is removed to make room.
    if entry.state == "file" and found.kind in ("directory", "other"):
        raise ValidationError("%s: a %s is in the way of the file" % (entry.path, found.kind))
    if entry.state == "directory" and found.kind not in (None, "directory"):
        raise ValidationError("%s: a %s is in the way of the directory" % (entry.path, found.kind))
    if entry.state == "absent" and found.kind == "directory" and os.listdir(entry.path):
        raise ValidationError("%s: the directory is not empty, so it is not removed" % entry.path)
    if entry.state == "absent" and found.kind == "other":
        raise ValidationError("%s: not a file, link or directory, so it is not removed" % entry.path)


def _diff(entry, found, steps):
    diffs = []
    if "write" in steps or ("create" in steps and entry.state == "file"):
        diffs.append({"before_header": entry.path, "after_header": entry.path,
                      "before": hf.text_for_diff(found.content) if found.kind == "file" else "",
                      "after": hf.text_for_diff(entry.content)})
    if set(steps) - {"write"}:
        before = hf.attributes(found)
        after = {"state": "absent"} if entry.state == "absent" else dict(
            before if found.kind == entry.state else {}, state=entry.state, mode="%04o" % entry.mode,
            **{k: v for k, v in (("owner", entry.owner), ("group", entry.group)) if v is not None})
        header = entry.path + " (attributes)"
        diffs.append({"before_header": header, "after_header": header, "before": before, "after": after})
    return diffs


def main():
    FilesModule.main()


if __name__ == "__main__":
    main()
