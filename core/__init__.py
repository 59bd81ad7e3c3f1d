"""The floor every stage stands on: contracts and mechanisms that import nothing else of this repository."""
