"""OpenZeppelin StandardMerkleTree in Python: layout, proofs, dump/load, and a cross-check against the JS library."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from flchain.merkle import (
    PAYOUT_LEAF_ENCODING,
    MerkleError,
    StandardMerkleTree,
    hash_pair,
    leaf_hash,
    process_proof,
)
from flchain.paths import NODE_MODULES

ENCODING = list(PAYOUT_LEAF_ENCODING)


def payout(index: int, amount: int) -> tuple[int, int, int, str, int]:
    return (1, 7, index, f"0x{(index + 1) * 0x1111:040x}", amount)


def payouts(n: int) -> list[tuple[int, int, int, str, int]]:
    return [payout(i, 10**18 * (i + 1)) for i in range(n)]


def by_hand_leaf(value: tuple[int, int, int, str, int]) -> str:
    return "0x" + keccak(keccak(encode(ENCODING, list(value)))).hex()


def test_leaf_hash_is_the_double_keccak_of_the_abi_encoding() -> None:
    value = payout(0, 5)

    assert leaf_hash(value, ENCODING) == by_hand_leaf(value)


def test_hash_pair_sorts_its_children() -> None:
    low, high = "0x" + "00" * 31 + "01", "0x" + "ff" * 32

    assert hash_pair(high, low) == hash_pair(low, high) == "0x" + keccak(bytes.fromhex(low[2:] + high[2:])).hex()


def test_one_leaf_tree_is_its_leaf() -> None:
    tree = StandardMerkleTree.of([payout(0, 5)], ENCODING)

    assert tree.root == by_hand_leaf(payout(0, 5))
    assert tree.get_proof(0) == []
    assert tree.dump()["values"] == [{"value": ["1", "7", "0", f"0x{0x1111:040x}", "5"], "treeIndex": 0}]


def test_two_leaf_tree_puts_the_smaller_hash_last() -> None:
    values = payouts(2)
    low, high = sorted(by_hand_leaf(v) for v in values)

    tree = StandardMerkleTree.of(values, ENCODING)

    assert tree.tree == (hash_pair(low, high), high, low)
    assert tree.get_proof(0) == [high if by_hand_leaf(values[0]) == low else low]


def test_three_leaf_tree_layout() -> None:
    s0, s1, s2 = sorted(by_hand_leaf(v) for v in payouts(3))

    tree = StandardMerkleTree.of(payouts(3), ENCODING)

    node1 = hash_pair(s1, s0)  # children 3 and 4
    assert tree.tree == (hash_pair(node1, s2), node1, s2, s1, s0)


def test_five_leaf_tree_layout() -> None:
    s = sorted(by_hand_leaf(v) for v in payouts(5))

    tree = StandardMerkleTree.of(payouts(5), ENCODING)

    t = [""] * 4 + [s[4], s[3], s[2], s[1], s[0]]  # tree[8 - k] = sorted leaf k
    t[3] = hash_pair(t[7], t[8])
    t[2] = hash_pair(t[5], t[6])
    t[1] = hash_pair(t[3], t[4])
    t[0] = hash_pair(t[1], t[2])
    assert tree.tree == tuple(t)
    assert [entry.tree_index for entry in tree.values] == [8 - s.index(by_hand_leaf(v)) for v in payouts(5)]


def test_readme_example_root_of_the_js_library() -> None:
    values = [
        ["0x1111111111111111111111111111111111111111", "5000000000000000000"],
        ["0x2222222222222222222222222222222222222222", "2500000000000000000"],
    ]

    tree = StandardMerkleTree.of(values, ["address", "uint256"])

    assert tree.root == "0xd4dee0beab2d53f2cc83e567171bd2820e49898130a22622b10ead383e90bd77"


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_every_proof_verifies(n: int) -> None:
    tree = StandardMerkleTree.of(payouts(n), ENCODING)

    for i, value in enumerate(payouts(n)):
        proof = tree.get_proof(i)
        assert proof == tree.get_proof(value)
        assert StandardMerkleTree.verify(tree.root, ENCODING, value, proof)
        assert tree.verify_leaf(i, proof)
        assert process_proof(tree.leaf_hash(value), proof) == tree.root


def test_tampered_proofs_and_values_fail() -> None:
    tree = StandardMerkleTree.of(payouts(5), ENCODING)
    value, proof = payouts(5)[2], tree.get_proof(2)
    flipped = proof[0][:-1] + ("0" if proof[0][-1] != "0" else "1")

    assert not StandardMerkleTree.verify(tree.root, ENCODING, value, [flipped, *proof[1:]])
    assert not StandardMerkleTree.verify(tree.root, ENCODING, value, proof[:-1])
    assert not StandardMerkleTree.verify(tree.root, ENCODING, (*value[:4], value[4] + 1), proof)
    assert not StandardMerkleTree.verify(tree.root, ENCODING, payouts(5)[3], proof)


def test_dump_writes_decimal_strings_and_checksummed_addresses() -> None:
    value = (1, 2, 3, "0x52908400098527886e0f7030069857d2e4169ee7", 10**30)

    dump = StandardMerkleTree.of([value], ENCODING).dump()

    assert dump["format"] == "standard-v1" and dump["leafEncoding"] == ENCODING
    assert dump["values"] == [
        {"value": ["1", "2", "3", "0x52908400098527886E0F7030069857D2E4169EE7", str(10**30)], "treeIndex": 0}
    ]


def test_dump_load_round_trip_through_json() -> None:
    tree = StandardMerkleTree.of(payouts(5), ENCODING)

    loaded = StandardMerkleTree.load(json.loads(json.dumps(tree.dump())))

    assert loaded == tree
    assert loaded.get_proof(payouts(5)[4]) == tree.get_proof(4)


def test_load_rejects_unknown_formats_and_tampering() -> None:
    dump = StandardMerkleTree.of(payouts(3), ENCODING).dump()
    values = dump["values"]
    assert isinstance(values, list)
    tampered_value = json.loads(json.dumps(dump))
    tampered_value["values"][0]["value"][4] = "1"
    tampered_node = json.loads(json.dumps(dump))
    tampered_node["tree"][0] = "0x" + "00" * 32

    for bad in ({**dump, "format": "simple-v1"}, {**dump, "leafEncoding": None}, tampered_value, tampered_node):
        with pytest.raises(MerkleError):
            StandardMerkleTree.load(bad)


@pytest.mark.parametrize(
    ("value", "encoding"),
    [(("0x1234",), ["address"]), ((-1,), ["uint256"]), ((2**256,), ["uint256"]), ((1, 2), ["uint256"])],
    ids=["short-address", "negative-uint", "uint-overflow", "wrong-arity"],
)
def test_values_that_do_not_fit_the_encoding_are_rejected(value: tuple[object, ...], encoding: list[str]) -> None:
    with pytest.raises(MerkleError):
        StandardMerkleTree.of([value], encoding)


def test_empty_trees_and_unknown_values_are_rejected() -> None:
    tree = StandardMerkleTree.of(payouts(2), ENCODING)

    with pytest.raises(MerkleError):
        StandardMerkleTree.of([], ENCODING)
    with pytest.raises(MerkleError):
        tree.get_proof(payout(9, 1))
    with pytest.raises(MerkleError):
        tree.get_proof(2)


MIXED_ENCODING = ["bool", "bytes32", "string", "uint256[]", "int256"]
MIXED_VALUES = [
    [True, "0x" + "ab" * 32, "hello", ["1", "2"], "-5"],
    [False, "0x" + "00" * 32, "", [], "42"],
    [True, "0x" + "cd" * 32, "merkle", ["340282366920938463463374607431768211456"], "0"],
]
JS_CHECK = """
const { StandardMerkleTree } = require(process.argv[1] + '/@openzeppelin/merkle-tree');
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = cases.map(({ values, encoding }) => {
  const tree = StandardMerkleTree.of(values, encoding);
  return { root: tree.root, dump: tree.dump(), proofs: values.map((_, i) => tree.getProof(i)) };
});
process.stdout.write(JSON.stringify(out));
"""


@pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_MODULES / "@openzeppelin" / "merkle-tree").is_dir(),
    reason="node_modules/@openzeppelin/merkle-tree is not installed",
)
def test_roots_proofs_and_dumps_match_the_js_library() -> None:
    trees = [StandardMerkleTree.of(payouts(n), ENCODING) for n in (1, 2, 3, 5, 8)]
    trees.append(StandardMerkleTree.of(MIXED_VALUES, MIXED_ENCODING))
    cases = [{"values": [list(e.value) for e in t.values], "encoding": list(t.leaf_encoding)} for t in trees]

    completed = subprocess.run(
        ["node", "-e", JS_CHECK, str(NODE_MODULES)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    for tree, js in zip(trees, json.loads(completed.stdout), strict=True):
        assert js["root"] == tree.root
        assert js["dump"] == tree.dump()
        assert js["proofs"] == [tree.get_proof(i) for i in range(len(tree))]
