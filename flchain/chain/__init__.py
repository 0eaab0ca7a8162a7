"""The chain layer: compiled artifacts, a typed client over web3.py, event reading, accounts and manifests."""
