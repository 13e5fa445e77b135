"""Signatures of a large block checked in worker processes (ADR 0040, ADR 0056).

Why: a validator checks each transaction signature once (protocol/tx_signatures.py), mostly
at admission, spread over time.  A block whose transactions it has not seen (catching up, a
proposal that outran gossip, a restart) arrives with hundreds of unknown signatures at once,
and Ed25519 in one Python process uses one core while the block waits.  This pool splits such
a batch between ``workers`` processes and this one (which checks the last share itself rather
than wait idle).  Every process runs the same pinned verifier, protocol.crypto.verify, so the
verdicts are the serial ones; only the time differs.

It is off by default (``[mempool] verify_workers = 0``): on a host with no more cores than
validators (the bench's 2 cores for 4 processes) every core is already busy and the pool only
adds pickling.

A job names its domain (protocol/tx_signatures.py ``SignatureJob``): a block's transaction
signatures are Domain.TX jobs, its meter readings' Domain.METER_READING jobs
(protocol/reading_signatures.py); the worker passes the job to protocol.crypto.verify as it is.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor

from gridchain.protocol.crypto import verify
from gridchain.protocol.tx_signatures import SignatureJob


def verify_jobs(jobs: Sequence[SignatureJob]) -> list[bool]:
    """Each job's verdict with protocol.crypto.verify (runs in a worker, or here)."""
    return [
        verify(key, sig, domain, chain_id, payload) for key, sig, domain, chain_id, payload in jobs
    ]


class VerifyPool:
    """A batch verifier (protocol.tx_signatures.BatchVerifier) over worker processes."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("a verify pool has at least one worker")
        self.workers = workers
        # spawn: the node's event loop, sockets and LevelDB handle stay out of the workers
        self._executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn")
        )

    def __call__(self, jobs: Sequence[SignatureJob]) -> list[bool]:
        if not jobs:
            return []
        size = -(-len(jobs) // (self.workers + 1))
        chunks = [list(jobs[i : i + size]) for i in range(0, len(jobs), size)]
        futures: list[Future[list[bool]]] = [
            self._executor.submit(verify_jobs, chunk) for chunk in chunks[:-1]
        ]
        own = verify_jobs(chunks[-1])
        out: list[bool] = []
        for future in futures:
            out.extend(future.result())
        out.extend(own)
        return out

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
