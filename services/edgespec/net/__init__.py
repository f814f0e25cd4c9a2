"""User-space link emulation: `LinkSpec` (RTT, jitter, rate) and `DelayProxy`, an asyncio TCP
proxy that applies it, so the draft -> target link can be slowed without root or `tc netem`.
Knows nothing about gRPC or models; it moves bytes."""
