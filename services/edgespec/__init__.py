"""edgespec: speculative decoding split across a network (draft on the edge, verify on a server).

Importing this package loads nothing heavy: the stubs in `edgespec.v1` stay importable by the SDK
without torch.
"""

__version__ = "0.1.0"
