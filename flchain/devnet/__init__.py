"""Local processes for development, tests and `flchain up`: an Anvil chain and an IPFS daemon on free ports.

Every process is started by us, its PID held, and stopped by that PID; nothing relies on fixed ports.
"""
