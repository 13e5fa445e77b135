"""The node's HTTP contract (models, routes, the OpenAPI document) and its one client.

The node (gridchain.node.api) serves these models and the clients (wallet, meter bridge,
testnet launcher, benchmarks) parse them, so the contract is written once.  Nothing here
imports gridchain.node: a client never loads the node to talk to it.
"""
