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

Since schema 3 the ledger is two LevelDBs (ADR 0050): the *live* one at the data directory
holds M:, S:, N:, W: and P: (bounded by the live state), the *history* one in its
``history/`` subdirectory holds B:, H:, T: and A: (which only grow) and its own M:history_head
and M:history_undo (node/store.py writes the history first and rolls a block back from it on
start when the live write did not follow).
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
#: 3: blocks, indexes and the archive in a second LevelDB (ADR 0050); a 2 is migrated on open.
CURRENT_SCHEMA_VERSION = b"3"
SINGLE_DB_SCHEMA_VERSION = b"2"


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


# --- the history LevelDB (schema 3, ADR 0050) -------------------------------------------------

HISTORY_DIR = "history"
#: Prefixes that live in the history LevelDB: they grow with the chain's age.
HISTORY_PREFIXES = (BLOCK, BLOCK_BY_HASH, TX_INDEX, ARCHIVE)
#: The height of the last block written to the history (the live head, or one above it after
#: a crash between the two writes).
HISTORY_HEAD = META + b"history_head"
#: height + the archive keys that block wrote: what a roll-back of that block deletes.
HISTORY_UNDO = META + b"history_undo"


def encode_undo(height: int, keys: list[bytes]) -> bytes:
    return u64(height) + b"".join(len(key).to_bytes(4, "big") + key for key in keys)


def decode_undo(raw: bytes) -> tuple[int, list[bytes]]:
    keys, at = [], 8
    while at < len(raw):
        size = int.from_bytes(raw[at : at + 4], "big")
        keys.append(raw[at + 4 : at + 4 + size])
        at += 4 + size
    return from_u64(raw[:8]), keys
