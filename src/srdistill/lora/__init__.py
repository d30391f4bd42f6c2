"""Low-rank adapters (ConvLoRA) for frozen convolutional backbones, and merging them away."""
