"""Model loading for edgespec: presets ("tiny", "smollm2"), `.gguf` files and HF directories.

Import the API from `edgespec.models.presets` (`load_model`, `load_tokenizer`, `LoadedModel`).
This package does NOT run or serve models; importing it loads nothing heavy.
"""
