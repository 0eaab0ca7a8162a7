"""OpenZeppelin's StandardMerkleTree (@openzeppelin/merkle-tree v1) in Python: build, proofs, JSON dump and load.

Same tree, same root, same proofs and the same `standard-v1` JSON dump as the JavaScript library, so a tree
built here can be served to `StandardMerkleTree.load` in JS and verified on-chain by OpenZeppelin `MerkleProof`:

- leaf = `keccak256(keccak256(abi.encode(leafEncoding, value)))` (double hash: no second-preimage with nodes);
- leaves are sorted by hash (bytes order) and stored at the end of the array in reverse: leaf `k` of the sorted
  list is `tree[len - 1 - k]`; node `i` has children `2i + 1` and `2i + 2`; an internal node is the keccak256
  of its two children concatenated in sorted order; `tree[0]` is the root;
- a proof is the list of siblings from the leaf up to (not including) the root.

Values are kept in the form the JS library dumps them when given JSON-friendly input: integers as decimal
strings, addresses checksummed, bytes as lowercase 0x-hex, bools and strings as they are, arrays as lists.
Tuple types and multiproofs are not implemented.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from eth_abi.abi import encode
from eth_abi.exceptions import EncodingError
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak

PAYOUT_LEAF_ENCODING: tuple[str, ...] = ("uint256", "uint256", "uint256", "address", "uint256")
"""Payout leaves: `(taskId, round, index, account, amount)` (docs/architecture.md)."""

DUMP_FORMAT = "standard-v1"

Scalar: TypeAlias = int | str | bool | bytes
LeafValue: TypeAlias = Sequence["Scalar | Sequence[Scalar]"]
"""One leaf's values, one per type of the leaf encoding (integers may be ints or decimal strings)."""

JsonScalar: TypeAlias = str | bool
JsonValue: TypeAlias = JsonScalar | list["JsonValue"]
"""A value as it appears in the dump."""

_ARRAY = re.compile(r"^(?P<inner>.+)\[(?P<size>\d*)\]$")
_INT = re.compile(r"^u?int(\d*)$")
_FIXED_BYTES = re.compile(r"^bytes(\d+)$")
_NODE = re.compile(r"^0x[0-9a-f]{64}$")


class MerkleError(ValueError):
    """Raised on a value that does not fit its type, an unknown dump format, or an invalid tree."""


def _normalize_int(value: Scalar, abi_type: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MerkleError(f"{abi_type} value must be an int or a decimal string, got {value!r}")
    try:
        if isinstance(value, int):
            number = value
        else:
            number = int(value, 16) if value.lower().startswith(("0x", "-0x")) else int(value, 10)
    except ValueError as e:
        raise MerkleError(f"{abi_type} value {value!r} is not a number") from e
    return str(number)


def _normalize_bytes(value: Scalar, abi_type: str) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, str) and re.fullmatch(r"0x([0-9a-fA-F]{2})*", value):
        return value.lower()
    raise MerkleError(f"{abi_type} value must be bytes or 0x-hex, got {value!r}")


def _normalize_scalar(value: Scalar, abi_type: str) -> JsonValue:
    if _INT.match(abi_type):
        return _normalize_int(value, abi_type)
    if abi_type == "address":
        if not isinstance(value, str) or not is_address(value):
            raise MerkleError(f"address value must be a 0x-hex address, got {value!r}")
        return str(to_checksum_address(value))
    if abi_type == "bool":
        if not isinstance(value, bool):
            raise MerkleError(f"bool value must be a bool, got {value!r}")
        return value
    if abi_type == "string":
        if not isinstance(value, str):
            raise MerkleError(f"string value must be a str, got {value!r}")
        return value
    if abi_type == "bytes" or _FIXED_BYTES.match(abi_type):
        return _normalize_bytes(value, abi_type)
    raise MerkleError(f"unsupported leaf type {abi_type!r}")


def _normalize(value: object, abi_type: str) -> JsonValue:
    array = _ARRAY.match(abi_type)
    if array is None:
        if not isinstance(value, int | str | bool | bytes):
            raise MerkleError(f"{abi_type} value must be a scalar, got {value!r}")
        return _normalize_scalar(value, abi_type)
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise MerkleError(f"{abi_type} value must be a list, got {value!r}")
    if array["size"] and len(value) != int(array["size"]):
        raise MerkleError(f"{abi_type} value must have {array['size']} elements, got {len(value)}")
    return [_normalize(item, array["inner"]) for item in value]


def _to_abi(value: JsonValue, abi_type: str) -> object:
    array = _ARRAY.match(abi_type)
    if array is not None:
        assert isinstance(value, list)
        return [_to_abi(item, array["inner"]) for item in value]
    if _INT.match(abi_type):
        return int(str(value))
    if abi_type == "bytes" or _FIXED_BYTES.match(abi_type):
        return bytes.fromhex(str(value)[2:])
    return value


def normalize_value(value: LeafValue | Sequence[object], leaf_encoding: Sequence[str]) -> list[JsonValue]:
    """The dump form of one leaf value (checks it against the leaf encoding)."""
    if isinstance(value, str | bytes) or len(value) != len(leaf_encoding):
        raise MerkleError(f"value {value!r} does not match leaf encoding {list(leaf_encoding)}")
    return [_normalize(item, abi_type) for item, abi_type in zip(value, leaf_encoding, strict=True)]


def leaf_hash(value: LeafValue | Sequence[object], leaf_encoding: Sequence[str]) -> str:
    """`keccak256(keccak256(abi.encode(leaf_encoding, value)))` as 0x-hex."""
    normalized = normalize_value(value, leaf_encoding)
    abi_values = [_to_abi(item, abi_type) for item, abi_type in zip(normalized, leaf_encoding, strict=True)]
    try:
        encoded = encode(list(leaf_encoding), abi_values)
    except EncodingError as e:
        raise MerkleError(f"cannot abi-encode {normalized} as {list(leaf_encoding)}: {e}") from e
    return "0x" + keccak(keccak(encoded)).hex()


def hash_pair(a: str, b: str) -> str:
    """An internal node: keccak256 of the two children concatenated in sorted order."""
    low, high = sorted((a, b))
    return "0x" + keccak(bytes.fromhex(low[2:]) + bytes.fromhex(high[2:])).hex()


def process_proof(leaf: str, proof: Sequence[str]) -> str:
    """The root a leaf hash and its proof lead to."""
    node = _check_node(leaf)
    for sibling in proof:
        node = hash_pair(node, _check_node(sibling))
    return node


def _check_node(node: str) -> str:
    lowered = node.lower()
    if not _NODE.match(lowered):
        raise MerkleError(f"Merkle tree nodes must be 32-byte 0x-hex, got {node!r}")
    return lowered


def make_tree(leaves: Sequence[str]) -> list[str]:
    """The array layout of the JS `makeMerkleTree` for leaf hashes in the given order."""
    if not leaves:
        raise MerkleError("Expected non-zero number of leaves")
    size = 2 * len(leaves) - 1
    tree = [""] * size
    for i, leaf in enumerate(leaves):
        tree[size - 1 - i] = _check_node(leaf)
    for i in range(size - 1 - len(leaves), -1, -1):
        tree[i] = hash_pair(tree[2 * i + 1], tree[2 * i + 2])
    return tree


def is_valid_tree(tree: Sequence[str]) -> bool:
    """Every node is 32 bytes and every internal node hashes its children (the JS `isValidMerkleTree`)."""
    if not tree or not all(_NODE.match(node) for node in tree):
        return False
    for i, node in enumerate(tree):
        left, right = 2 * i + 1, 2 * i + 2
        if right >= len(tree):
            if left < len(tree):
                return False
        elif node != hash_pair(tree[left], tree[right]):
            return False
    return True


@dataclass(frozen=True)
class IndexedValue:
    """A leaf value (dump form) and the position of its hash in the tree array."""

    value: tuple[JsonValue, ...]
    tree_index: int


@dataclass(frozen=True)
class StandardMerkleTree:
    """A built tree: node array (`tree[0]` is the root), values with their tree index, and the leaf encoding."""

    tree: tuple[str, ...]
    values: tuple[IndexedValue, ...]
    leaf_encoding: tuple[str, ...]

    @classmethod
    def of(
        cls, values: Sequence[LeafValue | Sequence[object]], leaf_encoding: Sequence[str], sort_leaves: bool = True
    ) -> StandardMerkleTree:
        """Build the tree of `values` (the JS `StandardMerkleTree.of`); leaves are sorted by hash by default."""
        normalized = [tuple(normalize_value(value, leaf_encoding)) for value in values]
        hashed = [(leaf_hash(value, leaf_encoding), i) for i, value in enumerate(normalized)]
        if sort_leaves:
            hashed.sort(key=lambda pair: pair[0])  # stable, like Array.prototype.sort
        tree = make_tree([leaf for leaf, _ in hashed])
        tree_index = [0] * len(normalized)
        for position, (_, value_index) in enumerate(hashed):
            tree_index[value_index] = len(tree) - 1 - position
        indexed = tuple(IndexedValue(value, tree_index[i]) for i, value in enumerate(normalized))
        return cls(tree=tuple(tree), values=indexed, leaf_encoding=tuple(leaf_encoding))

    @classmethod
    def load(cls, data: Mapping[str, object]) -> StandardMerkleTree:
        """Rebuild a tree from its `standard-v1` dump, checking every value and node (the JS `load`)."""
        if data.get("format") != DUMP_FORMAT:
            raise MerkleError(f"Unknown format {data.get('format')!r}")
        encoding, tree, values = data.get("leafEncoding"), data.get("tree"), data.get("values")
        if not isinstance(encoding, list) or not all(isinstance(t, str) for t in encoding):
            raise MerkleError("Expected leaf encoding")
        if not isinstance(tree, list) or not all(isinstance(node, str) for node in tree):
            raise MerkleError("Expected tree to be a list of hex nodes")
        if not isinstance(values, list):
            raise MerkleError("Expected values to be a list")
        indexed = []
        for entry in values:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("treeIndex"), int):
                raise MerkleError(f"bad value entry {entry!r}")
            value = entry.get("value")
            if not isinstance(value, list):
                raise MerkleError(f"bad value entry {entry!r}")
            indexed.append(IndexedValue(tuple(normalize_value(value, encoding)), entry["treeIndex"]))
        loaded = cls(tree=tuple(node.lower() for node in tree), values=tuple(indexed), leaf_encoding=tuple(encoding))
        loaded.validate()
        return loaded

    @staticmethod
    def verify(
        root: str, leaf_encoding: Sequence[str], value: LeafValue | Sequence[object], proof: Sequence[str]
    ) -> bool:
        """Whether `value` with `proof` leads to `root` (what OpenZeppelin `MerkleProof.verify` checks on-chain)."""
        return _check_node(root) == process_proof(leaf_hash(value, leaf_encoding), proof)

    @property
    def root(self) -> str:
        return self.tree[0]

    def __len__(self) -> int:
        return len(self.values)

    def dump(self) -> dict[str, object]:
        """The `standard-v1` JSON dump, as the JS `dump()` writes it."""
        return {
            "format": DUMP_FORMAT,
            "leafEncoding": list(self.leaf_encoding),
            "tree": list(self.tree),
            "values": [{"value": list(entry.value), "treeIndex": entry.tree_index} for entry in self.values],
        }

    def leaf_hash(self, value: LeafValue | Sequence[object]) -> str:
        return leaf_hash(value, self.leaf_encoding)

    def leaf_lookup(self, value: LeafValue | Sequence[object]) -> int:
        """The value index of `value` (the last one if it appears twice, as in JS)."""
        lookup = {self.tree[entry.tree_index]: i for i, entry in enumerate(self.values)}
        index = lookup.get(self.leaf_hash(value))
        if index is None:
            raise MerkleError("Leaf is not in tree")
        return index

    def get_proof(self, leaf: int | LeafValue | Sequence[object]) -> list[str]:
        """Sibling hashes from the leaf up to the root, for a value index or a value."""
        value_index = leaf if isinstance(leaf, int) else self.leaf_lookup(leaf)
        self._validate_value(value_index)
        node = self.values[value_index].tree_index
        proof = []
        while node > 0:
            proof.append(self.tree[node - (-1) ** (node % 2)])
            node = (node - 1) // 2
        if process_proof(self.tree[self.values[value_index].tree_index], proof) != self.root:
            raise MerkleError("Unable to prove value")
        return proof

    def verify_leaf(self, leaf: int | LeafValue | Sequence[object], proof: Sequence[str]) -> bool:
        """Whether the value (or value index) with `proof` leads to this tree's root."""
        value = self.values[leaf].value if isinstance(leaf, int) else leaf
        return self.root == process_proof(self.leaf_hash(value), proof)

    def validate(self) -> None:
        """Raise `MerkleError` unless every value sits at its tree index and the tree is consistent."""
        for i in range(len(self.values)):
            self._validate_value(i)
        if not is_valid_tree(self.tree):
            raise MerkleError("Merkle tree is invalid")

    def _validate_value(self, value_index: int) -> None:
        if not 0 <= value_index < len(self.values):
            raise MerkleError("Index out of bounds")
        entry = self.values[value_index]
        if not 0 <= entry.tree_index < len(self.tree):
            raise MerkleError("Index out of bounds")
        if self.tree[entry.tree_index] != self.leaf_hash(entry.value):
            raise MerkleError("Merkle tree does not contain the expected value")
