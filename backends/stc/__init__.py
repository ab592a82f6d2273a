"""NVIDIA A100/H100-class sparse tensor cores: 2:4 sparse vs dense mma, wave by wave."""
