"""The pure core: recipe model, hashing, format checks. No network, no terminal, no file opening."""
