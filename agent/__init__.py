"""The household's smart agent (seed 000 sec 2.3-2.7): forecast, plan, act, serve.

An optional process on the peer device beside the meter bridge (``gridchain agent run``).  It
holds the household's keystore, forecasts its PV and load for the next slots from history,
plans the battery and the EV with a linear programme under the chain's time-of-use tariffs,
places signed orders and C&D requests within the limits the user set, and serves what it did
over an HTTP API.  It reaches a node only through :mod:`gridchain.api.client`; nothing in the
node or the consensus imports it (import-linter contracts in pyproject.toml).
"""
