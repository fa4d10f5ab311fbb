"""The MobileNetV2-based mobile space (ImageNet): MB blocks and the space."""
