"""What every consensus engine shares: the signing guard, vote tallies, the validator set,
signature checks and the Decision message.  docs/adr/0016-consensus-kernel.md says what lives
here, what stays with each engine, and why."""
