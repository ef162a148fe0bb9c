"""A safe YAML loader as strict as Go's: a key given twice, or a key that is a list, is an error."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import yaml


class StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping (as Go's strict mode)."""


def _no_duplicates(loader: StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _value in node.value:
        key = loader.construct_object(key_node)
        problem = (
            "a key is a list or a mapping"  # `{[a]: 1}`: YAML allows it, no config has it
            if not isinstance(key, Hashable)
            else f"key {key!r} is given twice"
            if key in seen
            else ""
        )
        if problem:
            raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)
