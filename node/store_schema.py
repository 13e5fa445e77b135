"""Every LevelDB key the node writes, defined in one place.

One-byte-plus-colon prefixes keep the namespaces apart; heights are 8-byte big-endian so that
LevelDB's byte order is height order and a range scan walks blocks in sequence.

    M:<name>              metadata (head height, chain id, genesis document, sync base)
    B:<height>            CommittedBlock (block + certificate), canonical bytes
    H:<block hash>        height of that block
    T:<tx hash>           height (8 bytes) + index in block (4 bytes)
    S:<state key>         application state value (market/ defines the state keys)
    A:<state key>         archive: a pruned state entry's last value (market/pruning.py), served
                          by the API behind the live state, not committed by the state root
    N:<tree position>     a node of the state's sparse Merkle tree (market/state_tree.py):
                          2-byte depth + path prefix -> b"L"/b"I" record (ADR 0027)
    W:<engine key>        consensus write-ahead records (votes sent, view, last signed)
    P:<peer public key>   peer book entry
"""

from __future__ import annotations

META = b"M:"
BLOCK = b"B:"
BLOCK_BY_HASH = b"H:"
TX_INDEX = b"T:"
STATE = b"S:"
TREE = b"N:"
ARCHIVE = b"A:"
CONSENSUS = b"W:"
PEER = b"P:"

HEAD_HEIGHT = META + b"head_height"
CHAIN_ID = META + b"chain_id"
GENESIS_DOC = META + b"genesis"
SCHEMA_VERSION = META + b"schema_version"
#: Height of the state snapshot the ledger was last started from (state sync, ADR 0039): no
#: block below it is stored, and the archive (A:) holds only what was pruned after it.
SYNC_BASE = META + b"sync_base"
#: 2: the state root is the sparse Merkle tree of ADR 0027 and its nodes are stored (N:).
CURRENT_SCHEMA_VERSION = b"2"


def u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def from_u64(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


def block_key(height: int) -> bytes:
    return BLOCK + u64(height)


def block_hash_key(block_hash: bytes) -> bytes:
    return BLOCK_BY_HASH + block_hash


def tx_key(tx_hash: bytes) -> bytes:
    return TX_INDEX + tx_hash


def tx_location(height: int, index: int) -> bytes:
    return u64(height) + index.to_bytes(4, "big")


def parse_tx_location(raw: bytes) -> tuple[int, int]:
    return from_u64(raw[:8]), int.from_bytes(raw[8:12], "big")


def state_key(key: bytes) -> bytes:
    return STATE + key


def archive_key(key: bytes) -> bytes:
    return ARCHIVE + key


def tree_key(position: bytes) -> bytes:
    return TREE + position


def consensus_key(key: bytes) -> bytes:
    return CONSENSUS + key


def peer_key(public_key: bytes) -> bytes:
    return PEER + public_key
