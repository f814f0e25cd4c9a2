"""`edgespec sim`: a device and an edge server as two network namespaces on one Linux machine.

`netns` builds the two hosts (namespaces joined by a veth pair), `shaping` shapes the link (tc
netem where the kernel has it; else tbf rate + nftables loss + the user-space delay proxy),
`probe` measures the link, `procs` supervises the real `edgespec target` / `edgespec draft`
processes, `workload` is the SDK client run on the device, `run` / `sweep` tie them together.
It needs root and iproute2; it is NOT a simulator of models: everything runs for real.
"""
