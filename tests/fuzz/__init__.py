"""Coverage-guided fuzzing of the decoders with atheris (ADR 0023).

``python -m tests.fuzz --target NAME --time SECONDS`` fuzzes one decoder (see targets.py);
``python -m tests.fuzz.make_corpus`` regenerates the seed corpus in corpus/.  This package
imports nothing from gridchain at import time, so the fuzzer can instrument it first.
"""

from pathlib import Path

#: The committed seed corpus, one directory per target.
CORPUS = Path(__file__).resolve().parent / "corpus"
#: Every target, in the order ``--target all`` runs them (targets.py defines them).
NAMES = (
    "encoding",
    "tx",
    "block",
    "pbft",
    "pob",
    "epob",
    "meter",
    "frames",
    "keystore",
    "sealed",
    "sealed_read",
)
