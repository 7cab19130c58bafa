"""The node id an app sees: a salted hash, never the node's real id.

Golem hashes the provider's key without a salt, so any app can link a
provider across requestors; here the salt is a secret of this node's work
dir: stable across restarts (an app that refused a node keeps refusing it),
meaningless anywhere else.
"""

import hashlib
import secrets

SALT_META_KEY = "opaque_node_id_salt"


def new_salt() -> str:
    return secrets.token_hex(32)


class OpaqueIds:
    def __init__(self, salt: str) -> None:
        if not salt:
            raise ValueError("an opaque id salt must not be empty")
        self._salt = salt.encode()
        self._cache: dict[str, str] = {}

    def of(self, node_id: str) -> str:
        """sha3_256(salt + node id), hex (64 characters)."""
        opaque = self._cache.get(node_id)
        if opaque is None:
            opaque = hashlib.sha3_256(self._salt + node_id.encode()).hexdigest()
            self._cache[node_id] = opaque
        return opaque


__all__ = ["SALT_META_KEY", "OpaqueIds", "new_salt"]
