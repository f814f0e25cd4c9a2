"""Suite-wide settings: one torch thread (CI has 2 cores, shared with the servers under test)."""

import torch

torch.set_num_threads(1)
