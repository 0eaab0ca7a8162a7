"""flchain: blockchain-incentivized federated learning.

This package holds what the trainer, the aggregator and the backend all use: settings helpers, the chain client
(`flchain.chain`), the IPFS storage client (`flchain.storage`), the update/model codec (`flchain.codec`), model
specs and data (`flchain.ml`), the payout Merkle tree (`flchain.merkle`), local process management
(`flchain.devnet`) and the `flchain` command line (`flchain.cli`).
"""

__version__ = "0.1.0"
