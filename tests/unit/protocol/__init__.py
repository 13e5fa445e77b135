"""Tests of the lead's protocol package: encoding, signatures, addresses, Merkle trees."""
