"""Private updates: updates sealed for the round's readers (`envelope`), reader keys (`keys`) and client-level
differential privacy with its accounting (`dp`). docs/privacy.md states what each guarantees and what it does not.
"""
