"""Zero-cost proxies: rank untrained architectures from one minibatch (see measures.py)."""
