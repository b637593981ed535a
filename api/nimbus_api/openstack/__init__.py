"""The OpenStack APIs on top of the service: Keystone v3 (more to come on the same pattern).

Each API lives under the path prefix a devstack cloud gives it (``/identity`` for Keystone), answers with
OpenStack's shapes and error bodies, and reuses the service's own identity, policy and jobs underneath.
"""
