"""The chaos suite: Oneoff on parts of its own, killed and cut off on purpose (`make chaos`)."""
